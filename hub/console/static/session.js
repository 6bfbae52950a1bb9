"use strict";
// One live session (GET /api/v1/live/sessions/{id}): who took part, when, how long, and every
// monitor view of it (who watched, from, to). Refreshed while the session is live.
const TEXT = {
  zh: { title: "视频接访 · 接访详情", cases: "案件", logout: "退出", session: "接访", views: "监看记录",
        monitor: "监看人", from: "开始", to: "结束", duration: "时长", no_views: "暂无监看记录",
        watching: "监看中", live: "进行中", ended: "已结束", case_no: "案件编号", node: "终端",
        township: "乡镇（街道）", official: "接访人", requested: "申请时间", accepted: "接通时间",
        started: "开始时间", ended_at: "结束时间", length: "接访时长", reason: "结束原因",
        ended_by: "结束人", not_found: "无法读取该接访：", views_hidden: "您的角色不能查看监看记录",
        reasons: { completed: "正常结束", peer_lost: "对方连接中断", shutdown: "服务器关闭" } },
  en: { title: "Video Reception · Session", cases: "Cases", logout: "Sign out", session: "Session",
        views: "Monitor views", monitor: "Monitor", from: "From", to: "To", duration: "Duration",
        no_views: "Nobody watched this session", watching: "watching", live: "live", ended: "ended",
        case_no: "Case no.", node: "Box", township: "Township", official: "Official",
        requested: "Requested", accepted: "Accepted", started: "Started", ended_at: "Ended",
        length: "Length", reason: "Ended because", ended_by: "Ended by",
        not_found: "Cannot read this session: ",
        views_hidden: "Your role does not see who watched",
        reasons: { completed: "completed", peer_lost: "the other side dropped", shutdown: "server shutdown" } },
};
const { el } = XFV;
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
let data = null;
let problem = "";

function t(key) { return TEXT[XFV.lang][key]; }

async function load() {
  const r = await fetch(`/api/v1/live/sessions/${encodeURIComponent(sessionId)}`);
  if (r.status === 401) { location.href = "/login"; return; }
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (r.ok && body) {
    data = body;
    problem = "";
  } else {
    problem = t("not_found") + ((body && body.error) || `HTTP ${r.status}`);
  }
  render();
}

function render() {
  document.getElementById("session-id").textContent = sessionId;
  const err = document.getElementById("session-error");
  err.textContent = problem;
  err.hidden = !problem;
  if (!data) return;
  const s = data.session || data;
  const hidden = !("views" in s) && !("views" in data);  // the API leaves them out for this role
  const views = data.views || s.views || [];
  const live = s.live ?? !s.ended_at;
  const badge = document.getElementById("session-state");
  badge.textContent = live ? t("live") : t("ended");
  badge.className = "badge " + (live ? "red" : "");
  document.getElementById("session").dataset.live = String(live);
  const caseLink = s.case_no ? el("a", { href: `/cases/${encodeURIComponent(s.case_no)}` }, s.case_no) : "–";
  const rows = [["case_no", caseLink], ["township", s.township_name || s.township], ["node", s.node],
    ["official", s.official], ["requested", XFV.time(s.requested_at)],
    ["accepted", XFV.time(s.accepted_at)], ["started", XFV.time(s.started_at)],
    ["ended_at", XFV.time(s.ended_at)],
    ["length", s.duration_s != null ? XFV.duration(s.duration_s) : "–"],
    ["reason", s.end_reason ? (t("reasons")[s.end_reason] || s.end_reason) : "–"],
    ["ended_by", s.ended_by]];
  document.getElementById("session-fields").replaceChildren(...rows.flatMap(([k, v]) =>
    [el("dt", {}, t(k)), el("dd", { "data-field": k }, v || "–")]));
  document.getElementById("views").replaceChildren(...views.map((v) => el("tr",
    { "data-monitor": v.monitor, "data-from": v.from_at || "" },
    el("td", {}, v.monitor), el("td", {}, XFV.time(v.from_at)),
    el("td", {}, v.to_at ? XFV.time(v.to_at) : t("watching")),
    el("td", {}, v.duration_s != null ? XFV.duration(v.duration_s) : "–"))));
  const none = document.getElementById("no-views");
  none.textContent = hidden ? t("views_hidden") : t("no_views");
  none.hidden = views.length > 0;
}

XFV.setup(TEXT, () => {
  document.title = t("title");
  render();
});
XFV.whoami().catch(console.warn);
load();
setInterval(() => { if (!data || !(data.session || data).ended_at) load(); }, 5000);
