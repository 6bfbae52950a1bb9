"use strict";
// The official's live queue: every box of the jurisdiction waiting for a reception, live from
// the signaling server (`queue` snapshots). Accepting one starts a session; the call page
// (/live/call/{session_id}) takes over the session on its own socket.
const TEXT = {
  zh: { title: "视频接访 · 待接访", cases: "案件", logout: "退出", waiting: "个终端等待接访",
        longest: "最长等待", township: "乡镇（街道）", case_no: "案件编号", category: "类别",
        summary: "诉求摘要", waited: "已等待", accept: "接访", empty: "暂无等待接访的终端",
        connecting: "连接中…", live: "实时", accepting: "正在接通…", refused: "接访未成功：",
        replaced: "已在其他窗口打开，本页不再更新", in_session: "您正在接访中：",
        back_to_call: "返回通话", not_official: "只有接访领导和信访部门可以接访" },
  en: { title: "Video Reception · Waiting queue", cases: "Cases", logout: "Sign out",
        waiting: "boxes waiting", longest: "longest wait", township: "Township", case_no: "Case no.",
        category: "Category", summary: "Summary", waited: "Waiting", accept: "Accept",
        empty: "No box is waiting", connecting: "connecting…", live: "live",
        accepting: "Connecting…", refused: "Could not accept: ",
        replaced: "Opened in another window; this page no longer updates",
        in_session: "You are in a call: ", back_to_call: "Back to the call",
        not_official: "Only officials and the petition office take receptions" },
};
const { el } = XFV;
let entries = [];
let accepting = null;  // request_id being accepted
let problem = "";
let session = null;    // a session this official is in (resumed)

function t(key) { return TEXT[XFV.lang][key]; }
function seconds(iso) { return Math.max(0, (Date.now() - Date.parse(iso)) / 1000); }

function render() {
  document.getElementById("rows").replaceChildren(...entries.map((e) => el("tr",
    { "data-request": e.request_id, "data-case": e.case_no, "data-node": e.node },
    el("td", {}, e.township_name || e.township),
    el("td", { class: "mono" }, el("a", { href: `/cases/${encodeURIComponent(e.case_no)}` }, e.case_no)),
    el("td", {}, XFV.category[XFV.lang][e.category] || e.category),
    el("td", { class: "summary-text" }, e.summary),
    el("td", { class: "waited", "data-since": e.waiting_since }, XFV.duration(seconds(e.waiting_since))),
    el("td", {}, el("button", { type: "button", class: "action", "data-accept": e.request_id,
      ...(accepting || session ? { disabled: "" } : {}) },
      accepting === e.request_id ? t("accepting") : t("accept"))))));
  document.getElementById("n-waiting").textContent = entries.length;
  document.getElementById("longest").textContent = entries.length
    ? XFV.duration(Math.max(...entries.map((e) => seconds(e.waiting_since)))) : "–";
  document.getElementById("empty").hidden = entries.length > 0;
  const box = document.getElementById("live-error");
  box.replaceChildren();
  if (session) {
    box.append(t("in_session"), session.case_no, " ",
      el("a", { href: callUrl(session.session_id) }, t("back_to_call")));
  } else if (problem) {
    box.append(problem);
  }
  box.hidden = !session && !problem;
}

function tick() {  // the waiting times, every second, without rebuilding the rows
  for (const cell of document.querySelectorAll("td.waited")) {
    cell.textContent = XFV.duration(seconds(cell.dataset.since));
  }
  if (entries.length) {
    document.getElementById("longest").textContent =
      XFV.duration(Math.max(...entries.map((e) => seconds(e.waiting_since))));
  }
}

function callUrl(id) { return `/live/call/${encodeURIComponent(id)}`; }

// The video codecs boxes can send that this browser decodes, for `accept.video_codecs`: the box
// then publishes one of them (H.264 when listed; the relay never transcodes). Names boxes do
// not send are left out; without getCapabilities the field is left out (= both).
const BOX_CODECS = { "video/h264": "H264", "video/vp8": "VP8" };
function videoCodecs() {
  const caps = window.RTCRtpReceiver?.getCapabilities?.("video");
  if (!caps) return undefined;
  const names = caps.codecs.map((c) => BOX_CODECS[c.mimeType.toLowerCase()]).filter(Boolean);
  return [...new Set(names)];
}

const signaling = new XFV.live.Signaling({
  onState(state) {
    XFV.showLive(state === "open", t);
    if (state === "refused") { problem = t("replaced"); render(); }
  },
  onFrame(frame) {
    if (frame.type === "queue") {
      entries = frame.entries;
      if (accepting && !entries.some((e) => e.request_id === accepting)) accepting = null;
      render();
    } else if (frame.type === "session_started" && frame.role === "official") {
      if (accepting === frame.request_id) {
        signaling.stop();  // the call page resumes the session on its own socket
        location.href = callUrl(frame.session_id);
        return;
      }
      session = frame;  // resumed: a call already runs
      render();
    } else if (frame.type === "session_ended") {
      session = null;
      render();
    } else if (frame.type === "error" && frame.frame_type === "accept") {
      accepting = null;
      problem = t("refused") + frame.message;
      render();
    }
  },
});

document.getElementById("rows").addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-accept]");
  if (!button || accepting) return;
  accepting = button.dataset.accept;
  problem = "";
  const frame = { type: "accept", request_id: accepting };
  const codecs = videoCodecs();
  if (codecs) frame.video_codecs = codecs;  // [] is refused by the server, with the reason
  if (!signaling.send(frame)) accepting = null;
  render();
});

XFV.setup(TEXT, () => {
  document.title = t("title");
  XFV.showLive(signaling.open, t);
  render();
});
XFV.whoami().then((me) => {
  if (!["official", "petition_office"].includes(me.role)) { problem = t("not_official"); render(); }
}).catch(console.warn);
XFV.inboxBadge();
signaling.start();
setInterval(tick, 1000);
