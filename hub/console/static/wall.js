"use strict";
// The monitors' wall: a tile for every live session of the jurisdiction (the server's `live`
// snapshots), each playing the box's video watch-only: `watch`, then a subscribe offer for the
// box's upstream; a monitor never publishes and the participants are not told. Clicking a
// tile enlarges it with both sides (a second subscription, to the official). Every view is
// audited by the hub; the session page lists them.
const TEXT = {
  zh: { title: "视频接访 · 实时监看", cases: "案件", logout: "退出", sessions: "路接访进行中",
        silent: "监看不会通知接访双方；每次监看均记录在案。", empty: "辖区内暂无进行中的接访",
        session_page: "接访详情", close: "关闭", box: "终端（信访人）", official: "接访人",
        connecting: "连接中…", live: "实时", started: "开始于",
        states: { connecting: "连接中", connected: "已连接", reconnecting: "重连中", lost: "已中断" },
        replaced: "已在其他窗口打开，本页不再更新", not_monitor: "只有督查人员可以监看" },
  en: { title: "Video Reception · Monitoring wall", cases: "Cases", logout: "Sign out",
        sessions: "live receptions", silent: "Watching is silent to both sides; every view is recorded.",
        empty: "No live reception in your jurisdiction", session_page: "Session", close: "Close",
        box: "Box (petitioner)", official: "Official", connecting: "connecting…", live: "live",
        started: "started",
        states: { connecting: "connecting", connected: "connected", reconnecting: "reconnecting",
                  lost: "lost" },
        replaced: "Opened in another window; this page no longer updates",
        not_monitor: "Only monitors watch live receptions" },
};
const { el } = XFV;
const { MediaLink } = XFV.live;
const LIGHTS = { connected: "green", connecting: "amber", reconnecting: "amber", lost: "red" };
const tiles = new Map();  // session_id -> {info, node, link, generation, framesDecoded}
let sessions = [];
let generation = 0;       // counts welcomes: views end with the socket, so watch again
let focus = null;         // {id, official: MediaLink}
let problem = "";

function t(key) { return TEXT[XFV.lang][key]; }

function tileState(tile) {
  if (!signaling.open) return tile.link?.state === "connected" ? "connected" : "reconnecting";
  return tile.link?.state || "connecting";
}

function makeTile(info) {
  const video = el("video", { autoplay: "", playsinline: "", muted: "" });
  video.muted = true;
  const node = el("div", { class: "video-tile", "data-session": info.session_id, tabindex: "0",
                           role: "button" },
    video,
    el("div", { class: "tile-info" },
      el("span", { class: "light amber" }), el("b", { class: "tile-place" }),
      el("span", { class: "state" })),
    el("div", { class: "tile-sub" }, el("span", { class: "mono tile-case" }),
      el("span", { class: "since" })),
    el("div", { class: "tile-sub" }, el("span", { class: "official" })));
  return { info, node, video, link: null, generation: -1, framesDecoded: 0 };
}

function renderTile(tile) {
  const { info, node } = tile;
  const state = tileState(tile);
  node.dataset.state = state;
  node.dataset.framesDecoded = String(tile.framesDecoded);
  node.querySelector(".light").className = "light " + LIGHTS[state];
  node.querySelector(".tile-place").textContent = info.township_name || info.township;
  node.querySelector(".tile-case").textContent = info.case_no;
  node.querySelector(".state").textContent = t("states")[state];
  node.querySelector(".official").textContent = `${t("official")}: ${info.official}`;
  node.querySelector(".since").textContent = `${t("started")} ${XFV.ago(info.started_at)}`;
}

function render() {
  const root = document.getElementById("tiles");
  const order = sessions.map((s) => tiles.get(s.session_id)).filter(Boolean);
  for (const tile of order) renderTile(tile);
  if ([...root.children].some((n, i) => n !== order[i]?.node) || root.children.length !== order.length) {
    root.replaceChildren(...order.map((x) => x.node));
  }
  document.getElementById("n-live").textContent = sessions.length;
  document.getElementById("empty").hidden = sessions.length > 0;
  const err = document.getElementById("wall-error");
  err.textContent = problem;
  err.hidden = !problem;
  renderFocus();
}

function renderFocus() {
  const box = document.getElementById("focus");
  const tile = focus && tiles.get(focus.id);
  box.hidden = !tile;
  if (!tile) return;
  box.dataset.session = focus.id;
  box.dataset.official = focus.official?.state || "connecting";
  document.getElementById("focus-title").textContent =
    `${tile.info.township_name || tile.info.township} · ${tile.info.case_no}`;
  document.getElementById("focus-session").href = `/live/sessions/${encodeURIComponent(focus.id)}`;
  document.getElementById("focus-official-name").textContent = `${t("official")}: ${tile.info.official}`;
}

// The `live` snapshot: add tiles (and watch them), drop the tiles of ended sessions.
function update(list) {
  sessions = list;
  const ids = new Set(list.map((s) => s.session_id));
  for (const [id, tile] of tiles) if (!ids.has(id)) dropTile(id, tile);
  for (const info of list) {
    let tile = tiles.get(info.session_id);
    if (!tile) {
      tile = makeTile(info);
      tiles.set(info.session_id, tile);
    }
    tile.info = info;
    if (tile.generation !== generation && signaling.send({ type: "watch", session_id: info.session_id })) {
      tile.generation = generation;
    }
  }
  render();
}

function dropTile(id, tile) {
  tile.link?.close();
  tiles.delete(id);
  if (focus?.id === id) closeFocus();
}

// `session_started` for a session this monitor watches: subscribe to the box.
function watching(frame) {
  const tile = tiles.get(frame.session_id);
  if (!tile) {
    signaling.send({ type: "leave", session_id: frame.session_id });  // the tile went meanwhile
    return;
  }
  const box = frame.peers.find((p) => p.part === "box");
  const source = box ? box.sub : tile.info.node;
  // the same socket: keep a working downstream; after a rejoin the relay dropped the old one
  if (tile.link && !tile.link.closed && tile.link.state !== "lost"
      && tile.linkGeneration === generation) return;
  tile.link?.close();
  tile.linkGeneration = generation;
  tile.link = new MediaLink(signaling, {
    sessionId: frame.session_id, direction: "subscribe", source,
    onState: () => render(),
    onTrack(stream) {
      if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
      if (focus?.id === frame.session_id) document.getElementById("focus-box").srcObject = stream;
    },
  });
  tile.link.start();
}

function openFocus(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  if (focus) closeFocus();
  focus = { id, official: null };
  document.getElementById("focus-box").srcObject = tile.link?.remote || null;
  focus.official = new MediaLink(signaling, {
    sessionId: id, direction: "subscribe", source: tile.info.official,
    onState: () => renderFocus(),
    onTrack(stream) { document.getElementById("focus-official").srcObject = stream; },
  });
  focus.official.start();
  render();
}

function closeFocus() {
  if (!focus) return;
  focus.official?.close();
  focus = null;
  for (const id of ["focus-box", "focus-official"]) document.getElementById(id).srcObject = null;
  render();
}

async function sampleTiles() {
  for (const tile of tiles.values()) {
    const pc = tile.link?.pc;
    if (!pc) continue;
    try {
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") tile.framesDecoded = r.framesDecoded || 0;
      });
    } catch (err) {
      console.warn("getStats:", err);
    }
  }
  render();
}

const signaling = new XFV.live.Signaling({
  onState(state) {
    XFV.showLive(state === "open", t);
    if (state === "open") generation += 1;
    if (state === "refused") problem = t("replaced");
    render();
  },
  onFrame(frame) {
    if (frame.type === "live") update(frame.sessions);
    else if (frame.type === "session_started" && frame.role === "monitor") watching(frame);
    else if (frame.type === "session_ended") {
      const tile = tiles.get(frame.session_id);
      if (tile) dropTile(frame.session_id, tile);
      sessions = sessions.filter((s) => s.session_id !== frame.session_id);
      render();
    }
  },
});

document.getElementById("tiles").addEventListener("click", (ev) => {
  const node = ev.target.closest(".video-tile");
  if (node) openFocus(node.dataset.session);
});
document.getElementById("tiles").addEventListener("keydown", (ev) => {
  const node = ev.target.closest(".video-tile");
  if (node && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); openFocus(node.dataset.session); }
});
document.getElementById("focus-close").addEventListener("click", closeFocus);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeFocus(); });
window.addEventListener("pagehide", () => signaling.stop());

XFV.setup(TEXT, () => {
  document.title = t("title");
  XFV.showLive(signaling.open, t);
  render();
});
XFV.whoami().then((me) => {
  if (me.role !== "monitor") { problem = t("not_monitor"); render(); }
}).catch(console.warn);
signaling.start();
setInterval(sampleTiles, 1000);
