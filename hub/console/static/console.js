"use strict";
// The box wall: a snapshot and live updates from /api/v1/edges/stream (server-sent events).
const TEXT = {
  zh: { title: "视频接访 · 终端监控", cases: "案件", connecting: "连接中…", live: "实时", online: "在线",
        offline: "离线", total: "终端总数", logout: "退出", empty: "辖区内尚无终端接入",
        version: "版本", temp: "CPU 温度", disk: "剩余空间", load: "负载",
        seen: "最后上报", since: "离线于", synced: "已同步案件事件", waiting: "待上传",
        chain: "数据链", broken: "校验中断，已暂停接收", ago: (s) => fmtAgo(s, "秒前", "分钟前", "小时前", "天前") },
  en: { title: "Video Reception · Box Wall", cases: "Cases", connecting: "connecting…", live: "live",
        online: "online", offline: "offline", total: "boxes", logout: "Sign out",
        empty: "No boxes in your jurisdiction yet", version: "version",
        temp: "CPU temp", disk: "disk free", load: "load", seen: "last report",
        since: "offline since", synced: "events synced", waiting: "waiting upload",
        chain: "chain", broken: "broken, stream held at", ago: (s) => fmtAgo(s, "s ago", "min ago", "h ago", "d ago") },
};
function fmtAgo(s, sec, min, hr, day) {
  if (s < 60) return Math.max(0, Math.round(s)) + " " + sec;
  if (s < 3600) return Math.round(s / 60) + " " + min;
  if (s < 86400) return Math.round(s / 3600) + " " + hr;
  return Math.round(s / 86400) + " " + day;
}
const { el } = XFV;
const edges = new Map();
let live = false;

function t(key) { return TEXT[XFV.lang][key]; }
function gb(bytes) { return (bytes / 1e9).toFixed(1) + " GB"; }
function ageSeconds(iso) { return iso ? (Date.now() - Date.parse(iso)) / 1000 : null; }
function name(e, key) { return XFV.lang === "en" ? e[key + "_en"] : e[key]; }

function tile(e) {
  const tel = e.telemetry || {};
  const dl = el("dl");
  const row = (k, v) => dl.append(el("dt", {}, t(k)), el("dd", {}, v));
  row("version", e.version || "–");
  if (tel.cpu_temp_c != null) row("temp", tel.cpu_temp_c.toFixed(1) + " °C");
  if (tel.disk_total) {
    const dd = el("dd", {}, gb(tel.disk_free));
    const meter = el("div", { class: "meter" }, el("div"));
    meter.firstChild.style.width = (100 * (1 - tel.disk_free / tel.disk_total)).toFixed(0) + "%";
    dd.append(meter);
    dl.append(el("dt", {}, t("disk")), dd);
  }
  if (tel.load1 != null) row("load", tel.load1.toFixed(2));
  const sync = e.sync || {};
  row("synced", String(sync.acked_through || 0));
  if (sync.outbox_depth) row("waiting", String(sync.outbox_depth));
  if (!sync.chain_ok) {
    dl.append(el("dt", {}, t("chain")),
              el("dd", { class: "chain-broken" }, t("broken") + " #" + sync.break_seq));
  }
  if (e.online) {
    const age = ageSeconds(e.last_seen_at);
    if (age != null) row("seen", t("ago")(age));
  } else if (e.offline_at) {
    row("since", XFV.time(e.offline_at));
  }
  return el("div", { class: "tile", "data-node": e.node, "data-online": String(e.online),
                     "data-chain-ok": String(sync.chain_ok !== false) },
    el("div", { class: "name" }, el("span", { class: "light " + (e.online ? "green" : "red") }),
       el("a", { href: `/edges/${encodeURIComponent(e.node)}` }, e.node),
       el("span", { class: "state" }, e.online ? t("online") : t("offline"))),
    dl);
}

function render() {
  const all = [...edges.values()];
  const online = all.filter((e) => e.online).length;
  document.getElementById("n-online").textContent = online;
  document.getElementById("n-offline").textContent = all.length - online;
  document.getElementById("n-total").textContent = all.length;
  document.getElementById("bar-online").style.width =
    (all.length ? (100 * online) / all.length : 0) + "%";
  document.getElementById("empty").hidden = all.length > 0;
  const counties = new Map();
  for (const e of all.sort((a, b) => (a.township + a.node).localeCompare(b.township + b.node))) {
    if (!counties.has(e.county)) counties.set(e.county, new Map());
    const towns = counties.get(e.county);
    if (!towns.has(e.township)) towns.set(e.township, []);
    towns.get(e.township).push(e);
  }
  const root = document.getElementById("counties");
  root.replaceChildren();
  for (const [county, towns] of counties) {
    const boxes = [...towns.values()].flat();
    const up = boxes.filter((e) => e.online).length;
    const sec = el("section", { class: "county", "data-county": county },
      el("h2", {}, name(boxes[0], "county_name"), el("small", {}, `${up}/${boxes.length} ${t("online")}`)));
    for (const [town, list] of towns) {
      sec.append(el("div", { class: "township", "data-township": town },
        el("h3", {}, name(list[0], "township_name")),
        el("div", { class: "tiles" }, ...list.map(tile))));
    }
    root.append(sec);
  }
}

function showLive(on) {
  live = on;
  XFV.showLive(on, t);
}

function connect() {
  XFV.edgeStream({
    snapshot(list) {
      edges.clear();
      for (const e of list) edges.set(e.node, e);
      render();
    },
    edge(e) {
      edges.set(e.node, e);
      render();
    },
    live: showLive,
  });
}

XFV.setup(TEXT, () => {
  document.title = t("title");
  showLive(live);
  render();
  XFV.whoami().catch(console.warn);
});
connect();
setInterval(render, 10000);  // keep "seconds ago" fresh
