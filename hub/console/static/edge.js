"use strict";
// One box at a glance: who and where it is, whether it is online, and above all whether its
// cases reach the hub (the sync card), then its health and its recent cases. Live from
// /api/v1/edges/stream: the box's birth, will and telemetry (every few seconds) each bring its
// row with the hub's stream state; the cases and the resync count are fetched when that moves.
const TEXT = {
  zh: {
    title: "视频接访 · 终端详情", wall: "终端监控", cases: "案件", logout: "退出",
    connecting: "连接中…", live: "实时", online: "在线", offline: "离线",
    online_since: "上线于", offline_since: "离线于",
    township: "乡镇（街道）", county: "区县", box_no: "终端编号", version: "软件版本",
    first_seen: "首次接入",
    sync: "数据同步", synced: "平台已同步事件", synced_hint: "已接收并校验",
    waiting: "终端待上传", as_of: "截至最后上报", acked: "已确认至", last_event: "最后事件",
    chain: "数据链", chain_ok: "完整", chain_ok_hint: "逐条哈希校验通过，无篡改",
    broken_at: (n) => `第 ${n} 号起中断`,
    held: "缺号暂存", held_hint: "等待终端补传", resyncs: "补传请求", resyncs_hint: "平台已发出",
    head_ok: "同步正常，全部已上传", head_waiting: (n) => `${n} 条事件等待上传`,
    head_held: (n) => `${n} 条事件因缺号暂存，等待补传`,
    head_broken: (n) => `数据链在第 ${n} 号中断，已暂停接收`,
    head_offline: "终端离线，恢复连接后自动续传", head_unknown: "等待终端上报",
    health: "运行状态", load: "负载", load_hint: (a, b) => `5 分钟 ${a} · 15 分钟 ${b}`,
    memory: "内存占用", disk: "剩余空间", of: (v) => `共 ${v}`, temp: "CPU 温度",
    no_temp: "无传感器", uptime: "开机时长", process: "程序运行", reported: "最后上报",
    no_report: "终端尚未上报运行状态",
    recent: "最近案件", total: (n) => `共 ${n} 件`, no_cases: "尚无案件",
    refused: "您的辖区内没有这台终端", back: "返回终端监控",
  },
  en: {
    title: "Video Reception · Box", wall: "Box wall", cases: "Cases", logout: "Sign out",
    connecting: "connecting…", live: "live", online: "online", offline: "offline",
    online_since: "online since", offline_since: "offline since",
    township: "Township", county: "County", box_no: "Box no.", version: "Version",
    first_seen: "First seen",
    sync: "Sync", synced: "Events synced at the hub", synced_hint: "received and verified",
    waiting: "Waiting upload on the box", as_of: "as of the last report", acked: "Acked through",
    last_event: "Last event",
    chain: "Hash chain", chain_ok: "intact", chain_ok_hint: "every event's hash verified",
    broken_at: (n) => `broken at seq ${n}`,
    held: "Held behind a gap", held_hint: "waiting for the box to resend",
    resyncs: "Resync requests", resyncs_hint: "sent by the hub",
    head_ok: "In sync: everything uploaded", head_waiting: (n) => `${n} events waiting upload`,
    head_held: (n) => `${n} events held behind a gap, waiting for a resend`,
    head_broken: (n) => `Chain broken at seq ${n}: the stream is held`,
    head_offline: "Box offline: it resumes uploading when it reconnects",
    head_unknown: "Waiting for the box's first report",
    health: "Health", load: "Load", load_hint: (a, b) => `5 min ${a} · 15 min ${b}`,
    memory: "Memory used", disk: "Disk free", of: (v) => `of ${v}`, temp: "CPU temp",
    no_temp: "no sensor", uptime: "Box uptime", process: "Software uptime",
    reported: "Last report", no_report: "The box has not reported its health yet",
    recent: "Recent cases", total: (n) => `${n} in all`, no_cases: "No cases yet",
    refused: "There is no such box in your jurisdiction:", back: "Back to the box wall",
  },
};
const LIGHT = { ok: "green", warn: "amber", bad: "red", off: "grey", unknown: "grey" };
const { el } = XFV;
const node = decodeURIComponent(location.pathname.split("/").pop());
let edge = null, stream = null, cases = null, live = false;

function t(key) { return TEXT[XFV.lang][key]; }
function gb(bytes) { return (bytes / 1e9).toFixed(1) + " GB"; }
function name(e, key) { return XFV.lang === "en" ? e[key + "_en"] : e[key]; }

// One big number with its label, an optional hint below and a state (ok, warn, bad).
function stat(key, value, { hint = "", state = "", meter = null } = {}) {
  const box = el("div", { class: "stat " + state, "data-stat": key },
    el("span", { class: "label" }, t(key)), el("b", { class: "value" }, String(value)));
  if (meter != null) {
    const bar = el("div", { class: "meter" }, el("div"));
    bar.firstChild.style.width = Math.min(100, Math.max(0, meter)).toFixed(0) + "%";
    box.append(bar);
  }
  if (hint) box.append(el("small", { class: "hint" }, hint));
  return box;
}

// The sync headline: red for a broken chain, amber for anything waiting, green when all is in.
function syncState(e) {
  const s = e.sync;
  if (!s.chain_ok) return ["bad", t("head_broken")(s.break_seq)];
  if (s.held) return ["warn", t("head_held")(s.held)];
  if (!e.online) return ["off", t("head_offline")];
  if (s.outbox_depth == null) return ["unknown", t("head_unknown")];
  if (s.outbox_depth > 0) return ["warn", t("head_waiting")(s.outbox_depth)];
  return ["ok", t("head_ok")];
}

function renderIdentity(e) {
  document.title = `${t("title")} · ${e.node}`;
  document.getElementById("light").className = "light big " + (e.online ? "green" : "red");
  document.getElementById("node").textContent = e.node;
  document.getElementById("place").textContent =
    `${name(e, "county_name")} · ${name(e, "township_name")}`;
  const presence = document.getElementById("presence");
  presence.dataset.online = String(e.online);
  document.getElementById("state").textContent = t(e.online ? "online" : "offline");
  const since = e.online ? e.last_birth_at : e.offline_at;
  document.getElementById("since").textContent =
    `${t(e.online ? "online_since" : "offline_since")} ${XFV.time(since)} (${XFV.ago(since)})`;
  // The box number is not in the registry; every case number carries it (township-NN-...).
  const boxNo = cases && cases.cases.length ? cases.cases[0].case_no.split("-")[1] : "–";
  const rows = [["township", `${name(e, "township_name")} (${e.township})`],
    ["county", `${name(e, "county_name")} (${e.county})`], ["box_no", boxNo],
    ["version", e.version || "–"], ["first_seen", XFV.time(e.first_seen_at)]];
  document.getElementById("identity").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", { "data-field": k }, v)]));
}

function renderSync(e) {
  const s = e.sync;
  const [state, headline] = syncState(e);
  const card = document.getElementById("sync");
  card.dataset.state = state;
  document.getElementById("sync-light").className = "light " + LIGHT[state];
  document.getElementById("sync-headline").textContent = headline;
  const depth = s.outbox_depth;
  const chain = s.chain_ok
    ? stat("chain", t("chain_ok"), { state: "ok", hint: t("chain_ok_hint") })
    : stat("chain", t("broken_at")(s.break_seq), { state: "bad", hint: s.break_reason || "" });
  chain.dataset.ok = String(s.chain_ok);
  const light = el("span", { class: "light " + (s.chain_ok ? "green" : "red") });
  chain.querySelector(".value").prepend(light, " ");
  document.getElementById("sync-main").replaceChildren(
    stat("synced", s.acked_through, { hint: t("synced_hint"), state: "ok" }),
    stat("waiting", depth == null ? "–" : depth,
         { state: depth == null ? "" : depth ? "warn" : "ok", hint: e.online ? "" : t("as_of") }),
    chain);
  document.getElementById("sync-detail").replaceChildren(
    stat("acked", "#" + s.acked_through),
    stat("last_event", XFV.ago(s.last_event_at), { hint: s.last_event_at ? XFV.time(s.last_event_at) : "" }),
    stat("held", s.held, { state: s.held ? "warn" : "", hint: s.held ? t("held_hint") : "" }),
    stat("resyncs", stream ? stream.resyncs : "–", { hint: t("resyncs_hint") }));
}

function renderHealth(e) {
  const tel = e.telemetry;
  const root = document.getElementById("health");
  if (!tel) { root.replaceChildren(el("p", { class: "empty" }, t("no_report"))); return; }
  const memUsed = 100 * (1 - tel.mem_available / tel.mem_total);
  const diskFree = tel.disk_total ? tel.disk_free / tel.disk_total : 1;
  const temp = tel.cpu_temp_c;
  root.replaceChildren(
    stat("load", tel.load1.toFixed(2), { hint: t("load_hint")(tel.load5.toFixed(2), tel.load15.toFixed(2)) }),
    stat("memory", memUsed.toFixed(0) + "%", { meter: memUsed, hint: t("of")(gb(tel.mem_total)),
                                                state: memUsed > 90 ? "warn" : "" }),
    stat("disk", gb(tel.disk_free), { meter: 100 * (1 - diskFree), hint: t("of")(gb(tel.disk_total)),
                                      state: diskFree < 0.05 ? "bad" : diskFree < 0.1 ? "warn" : "" }),
    stat("temp", temp == null ? t("no_temp") : temp.toFixed(1) + " °C",
         { state: temp > 85 ? "bad" : temp > 70 ? "warn" : "" }),
    stat("uptime", XFV.duration(tel.uptime_s)),
    stat("process", XFV.duration(tel.process_uptime_s)),
    stat("reported", XFV.ago(e.telemetry_at), { hint: XFV.time(e.telemetry_at) }));
}

function renderCases() {
  if (!cases) return;
  document.getElementById("case-total").textContent = t("total")(cases.total);
  document.getElementById("no-cases").hidden = cases.cases.length > 0;
  document.getElementById("recent").replaceChildren(...cases.cases.map((c) =>
    el("li", { "data-case": c.case_no, "data-complete": String(c.complete) },
      el("span", { class: "light " + (c.complete ? "green" : "amber") }),
      el("a", { href: `/cases/${encodeURIComponent(c.case_no)}`, class: "mono" }, c.case_no),
      el("span", {}, XFV.category[XFV.lang][c.category] || c.category),
      el("span", { class: "when" }, XFV.time(c.registered_at)))));
}

function render() {
  showLive(live);
  if (!edge) return;
  renderIdentity(edge);
  renderSync(edge);
  renderHealth(edge);
  renderCases();
}

async function loadCases() {
  cases = await XFV.json(`/api/v1/cases?node=${encodeURIComponent(node)}&limit=10`);
  render();
}

async function loadStream() {
  const body = await XFV.json("/api/v1/streams");
  stream = body.streams.find((s) => s.node === node) || null;
  render();
}

// A new row of the box: draw it, and fetch what only moves when its stream moves.
function update(e) {
  const before = edge ? edge.sync : null, after = e.sync;
  edge = e;
  render();
  const moved = !before || before.acked_through !== after.acked_through;
  if (moved) loadCases().catch(console.warn);
  if (moved || after.held || before.held !== after.held || before.chain_ok !== after.chain_ok) {
    loadStream().catch(console.warn);
  }
}

function showLive(on) {
  live = on;
  XFV.showLive(on, t);
}

function connect() {
  XFV.edgeStream({
    snapshot(list) {
      const mine = list.find((e) => e.node === node);
      if (mine) update(mine);
    },
    edge(e) {
      if (e.node === node) update(e);
    },
    live: showLive,
  });
}

if (document.body.dataset.refused === "true") {
  // The hub refused this box (404, as the API does): say so, fetch nothing of it.
  document.getElementById("refused-node").textContent = node;
  XFV.setup(TEXT, () => { document.title = t("title"); showLive(false); });
} else {
  XFV.setup(TEXT, render);
  XFV.json(`/api/v1/edges/${encodeURIComponent(node)}`).then(update, console.warn);
  connect();
  setInterval(render, 10000);  // keep "seconds ago" fresh
}
XFV.whoami().catch(console.warn);
