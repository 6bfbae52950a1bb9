"use strict";
// The petitioner's query page: case number + query code → what happened, in plain words;
// after a reply, one rating of the petition office and one of the responsible unit.
const TEXT = {
  zh: { title: "信访事项查询", case_no: "案件编号", code: "查询码",
        hint: "案件编号和查询码印在您登记时拿到的回执上。", look: "查询",
        rate_intro: "您的事项已经答复。请告诉我们您对办理的看法（只能评价一次）。",
        q_office: "您对信访部门的工作满意吗？", q_unit: "您对办理单位（责任单位）的工作满意吗？",
        satisfied: "满意", basically_satisfied: "基本满意", dissatisfied: "不满意",
        comment: "还想说的话（可以不填）", send: "提交评价",
        state: "目前状态：", missing: "请填写案件编号和查询码。",
        wrong: "案件编号或查询码不对，请对照回执再试一次。",
        limited: (min) => `输错次数太多，请 ${min} 分钟后再查询。`,
        rated_already: "这件事项已经评价过了，每件只能评价一次。",
        not_ready: "这件事项还没有答复，答复后才能评价。",
        busy: "系统暂时无法查询，请稍后再试。",
        thanks: "谢谢您的评价！",
        followup: "谢谢您的评价！您不满意的地方已转给有关部门，他们会再联系您。",
        rated: (o, u) => `您的评价：信访部门「${o}」，责任单位「${u}」。` },
  en: { title: "Check your petition", case_no: "Case number", code: "Query code",
        hint: "The case number and query code are printed on the receipt you got when you registered.",
        look: "Check",
        rate_intro: "Your petition has been answered. Please tell us what you think of how it was handled (you can rate once).",
        q_office: "Are you satisfied with the petition office?",
        q_unit: "Are you satisfied with the unit that handled it?",
        satisfied: "Satisfied", basically_satisfied: "Mostly satisfied", dissatisfied: "Not satisfied",
        comment: "Anything else to say (optional)", send: "Send my rating",
        state: "Now: ", missing: "Please enter the case number and the query code.",
        wrong: "The case number or the query code is not right. Please check your receipt and try again.",
        limited: (min) => `Too many wrong tries. Please try again in ${min} minutes.`,
        rated_already: "This petition has already been rated; it can be rated once.",
        not_ready: "This petition has not been answered yet; you can rate it after the answer.",
        busy: "The service is not available right now. Please try again later.",
        thanks: "Thank you for your rating!",
        followup: "Thank you for your rating! What you were not satisfied with has been passed on; they will contact you again.",
        rated: (o, u) => `Your rating: petition office "${o}", responsible unit "${u}".` },
};
const $ = (id) => document.getElementById(id);
let asked = null;     // {case_no, code} of the case shown (kept only in this page)
let view = null;      // the last answer of /api/v1/public/query
let notice = null;    // [key, ...args] of the message shown, re-rendered on a language switch
let thanks = null;    // "thanks" | "followup" after a rating
const chosen = { office: null, unit: null };

function t(key, ...args) {
  const v = TEXT[XFV.lang][key];
  return typeof v === "function" ? v(...args) : v;
}

function say(key, ...args) {
  notice = key ? [key, ...args] : null;
  render();
}

async function post(url, body) {
  let r;
  try {
    r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                           body: JSON.stringify(body) });
  } catch {
    return { status: 0, body: {} };
  }
  const retry = Number(r.headers.get("Retry-After") || 0);
  return { status: r.status, body: await r.json().catch(() => ({})), retry };
}

// The message for a refused request; true when the answer was a refusal.
function refused(res) {
  if (res.status === 404) say("wrong");
  else if (res.status === 429) say("limited", Math.max(1, Math.ceil(res.retry / 60)));
  else if (res.status === 422) say("missing");
  else if (res.status === 409) say(res.body.reason === "already_rated" ? "rated_already" : "not_ready");
  else if (res.status < 200 || res.status >= 300) say("busy");
  else return false;
  return true;
}

async function look(ev) {
  ev.preventDefault();
  const q = { case_no: $("case_no").value.trim(), code: $("code").value.trim() };
  if (!q.case_no || !q.code) { say("missing"); return; }
  $("look").disabled = true;
  const res = await post("/api/v1/public/query", q);
  $("look").disabled = false;
  view = null; asked = null; thanks = null;
  chosen.office = chosen.unit = null;
  if (refused(res)) return;
  view = res.body; asked = q;
  say(null);
}

async function send(ev) {
  ev.preventDefault();
  if (!asked || !chosen.office || !chosen.unit) return;
  $("send").disabled = true;
  const res = await post("/api/v1/public/rate",
    { ...asked, office: chosen.office, unit: chosen.unit, comment: $("comment").value.trim() });
  if (res.status === 409) {  // rated meanwhile (another phone?): show the case as it is now
    const again = await post("/api/v1/public/query", asked);
    if (again.status === 200) view = again.body;
  }
  if (refused(res)) return;
  view = res.body;
  thanks = res.body.rating.followup ? "followup" : "thanks";
  say(null);
}

function render() {
  const { el } = XFV;
  const m = $("message");
  m.hidden = !notice;
  m.textContent = notice ? t(...notice) : "";
  $("result").hidden = !view;
  $("rating").hidden = !(view && view.can_rate);
  if (view) {
    $("state").textContent = t("state") + view.state_label[XFV.lang];
    $("timeline").replaceChildren(...view.timeline.map((e) =>
      el("li", { "data-kind": e.kind }, el("time", { datetime: e.date }, e.date), e[XFV.lang])));
  }
  for (const set of document.querySelectorAll("#rating fieldset")) {
    for (const b of set.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(chosen[set.dataset.question] === b.dataset.value));
    }
  }
  $("send").disabled = !(chosen.office && chosen.unit);
  const th = $("thanks");
  const rating = view && view.rating;
  th.hidden = !(thanks || rating);
  th.textContent = [thanks ? t(thanks) : "",
    rating ? t("rated", t(rating.office), t(rating.unit)) : ""].filter(Boolean).join(" ");
}

for (const set of document.querySelectorAll("#rating fieldset")) {
  for (const b of set.querySelectorAll("button")) {
    b.addEventListener("click", () => { chosen[set.dataset.question] = b.dataset.value; render(); });
  }
}
$("ask").addEventListener("submit", look);
$("rating").addEventListener("submit", send);
const given = new URLSearchParams(location.search).get("case");
if (given) $("case_no").value = given;
XFV.setup(TEXT, render);
