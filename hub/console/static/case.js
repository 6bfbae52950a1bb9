"use strict";
// One case: the registered fields, the photos, the session recordings (录像), the workflow (办理) panel with its deadlines and
// the steps the user may take now, likely duplicates, and the timeline with every step taken.
const TEXT = {
  zh: { title: "案件详情", list: "案件列表", logout: "退出", photos: "证明材料", timeline: "办理过程",
        reveal: "显示完整身份证号（将记录查看）", name: "信访人", id: "身份证号", phone: "手机号码",
        address: "住址", category: "类别", unit: "涉及单位或地点", content: "诉求内容",
        township: "登记地点", registered: "登记时间", nophoto: "无", waiting: "上传中",
        kinds: { registered: "登记", photo_added: "补充材料", photos_verified: "材料已全部核验",
                 reply_returned: "发回重办", recording_added: "接访录像已登记",
                 recording_verified: "接访录像已核验" },
        recordings: "录像", norecording: "无", rec_verified: "已核验",
        rec_waiting: "上传中，核验后可播放", duration: "时长", session: "接访会话",
        started: "开始时间", sides: { box: "信访人（乡镇）", official: "接访领导" },
        workflow: "办理", supervised: "督办", merged_into: "已并入", deadline: "期限", due: "到期日",
        day_kind: "计算方式", left: "剩余", no_actions: "当前状态下您没有可办理的操作",
        duplicates: "可能重复", case_no: "案件编号", score: "相似度", reasons: "依据", dup_state: "状态",
        track: "办理程序", resp_unit: "责任单位", assignee: "承办人", none: "—",
        day_kinds: { calendar: "自然日", working: "工作日" }, estimated: "预估",
        estimated_hint: "节假日安排尚未收录，到期日按周末推算",
        days_left: (n) => `剩 ${n} 天`, due_today: "今日到期", days_over: (n) => `超期 ${n} 天`,
        extended: (n) => `已延期 ${n} 天`,
        ended: { met: "按期办结", missed: "超期办结", stopped: "已停止" }, no_deadlines: "暂无期限",
        lights: { green: "正常", yellow: "临期", red: "超期", none: "已结束" },
        note: "办理意见", reason: "延期理由（必填）", instruction: "督办意见（必填）",
        route_unit: "责任单位", choose_unit: "请选择责任单位", route_assignee: "承办人（可选）",
        days: "延期天数（1–30）", into: "并入的原案件编号", suggestions: "系统发现的可能重复案件：",
        submit: "提交", cancel: "取消", sending: "提交中…",
        missing: "答复缺少以下要素，已发回重办：", failed: "操作未成功：",
        by: "办理人", missing_elements: "缺少：",
        roles: { petition_office: "信访部门", unit: "责任单位", official: "接访领导", monitor: "督查",
                 admin: "管理员", trainer: "培训讲师", petitioner: "信访人" },
        actions: {} },
  en: { title: "Case", list: "Cases", logout: "Sign out", photos: "Documents", timeline: "Timeline",
        reveal: "Show full ID number (the view is logged)", name: "Petitioner", id: "ID number",
        phone: "Phone", address: "Address", category: "Category", unit: "Unit or place concerned",
        content: "Request", township: "Registered at", registered: "Registered", nophoto: "none",
        waiting: "uploading",
        kinds: { registered: "registered", photo_added: "photo added", photos_verified: "all photos verified",
                 reply_returned: "reply returned for redo", recording_added: "session recording added",
                 recording_verified: "session recording verified" },
        recordings: "Recordings", norecording: "none", rec_verified: "verified",
        rec_waiting: "uploading; plays once verified", duration: "Duration", session: "Session",
        started: "Started", sides: { box: "petitioner (township box)", official: "official" },
        workflow: "Workflow", supervised: "Supervised", merged_into: "Merged into", deadline: "Deadline",
        due: "Due", day_kind: "Counted in", left: "Left", no_actions: "You have no step to take in this state",
        duplicates: "Possible duplicates", case_no: "Case no.", score: "Score", reasons: "Why",
        dup_state: "State", track: "Track", resp_unit: "Responsible unit", assignee: "Handler", none: "—",
        day_kinds: { calendar: "calendar days", working: "working days" }, estimated: "estimated",
        estimated_hint: "the holiday calendar does not cover this year yet; counted with weekends only",
        days_left: (n) => `${n} d left`, due_today: "due today", days_over: (n) => `${n} d overdue`,
        extended: (n) => `extended by ${n} d`,
        ended: { met: "met", missed: "missed", stopped: "stopped" }, no_deadlines: "No deadlines",
        lights: { green: "in time", yellow: "due soon", red: "overdue", none: "ended" },
        note: "Note", reason: "Reason (required)", instruction: "Instruction (required)",
        route_unit: "Responsible unit", choose_unit: "Choose a unit", route_assignee: "Handler (optional)",
        days: "Extra days (1–30)", into: "Original case number", suggestions: "Likely duplicates found:",
        submit: "Submit", cancel: "Cancel", sending: "Submitting…",
        missing: "The reply lacks these elements and was returned:", failed: "The step failed: ",
        by: "by", missing_elements: "missing: ",
        roles: { petition_office: "petition office", unit: "responsible unit", official: "official",
                 monitor: "monitor", admin: "admin", trainer: "trainer", petitioner: "petitioner" },
        actions: { route: "Route to unit", accept: "Accept", not_accept: "Decline", merge: "Merge",
                   start: "Start handling", extend: "Extend", reply: "Reply", return: "Return for redo",
                   evaluate: "Evaluate", request_review: "Request review", answer_review: "Answer review",
                   request_recheck: "Request recheck", answer_recheck: "Answer recheck",
                   archive: "Archive", supervise: "Supervise" } },
};
const caseNo = decodeURIComponent(location.pathname.split("/").pop());
const caseUrl = `/api/v1/cases/${encodeURIComponent(caseNo)}`;
let data = null;      // the case (fields, photos, timeline)
let recordings = [];  // its session recordings, each with a playback URL per side once verified
let flow = null;      // its workflow: state, deadlines, steps, the actions open to the user
let duplicates = [];  // likely duplicates, best first
let units = [];       // units the user may route to
const labels = { states: {}, actions: {} };  // Chinese labels of every state and action
let open = null;      // the action whose form is shown
let failure = null;   // the last refused step: {message, missing}
let sending = false;

const pretty = (v) => (v ? v.charAt(0).toUpperCase() + v.slice(1).replace(/_/g, " ") : "");
const stateLabel = (s) => (XFV.lang === "en" ? pretty(s) : labels.states[s] || s);
const actionLabel = (a) => (XFV.lang === "en"
  ? TEXT.en.actions[a] || pretty(a) : labels.actions[a] || a);
const lightClass = (l) => ({ green: "green", yellow: "amber", red: "red" })[l] || "grey";

async function load(reveal = false) {
  data = await XFV.json(caseUrl + (reveal ? "?reveal=id_number" : ""));
  render();
}

async function loadRecordings() {
  const r = await XFV.json(caseUrl + "/recordings").catch(() => ({ recordings: [] }));
  recordings = r.recordings || [];
  render();
}

async function loadFlow() {
  const [f, d] = await Promise.all([
    XFV.json(caseUrl + "/workflow"),
    XFV.json(caseUrl + "/duplicates").catch(() => ({ suggestions: [] })),
  ]);
  flow = f;
  duplicates = d.suggestions || [];
  if (open && !flow.actions.some((a) => a.action === open)) open = null;
  render();
}

async function loadLabels() {
  const [machine, u] = await Promise.all([
    XFV.json("/api/v1/workflow/states").catch(() => ({ states: [], actions: [] })),
    XFV.json("/api/v1/units").catch(() => ({ units: [] })),
  ]);
  for (const s of machine.states) labels.states[s.state] = s.label_zh;
  for (const a of machine.actions) labels.actions[a.action] = a.label_zh;
  units = u.units;
  render();
}

// Whole days from today (China's date) to an ISO date; negative once it has passed.
function daysUntil(due) {
  const today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
  return Math.round((Date.parse(due) - Date.parse(today)) / 86400e3);
}

function render() {
  renderCase();
  renderRecordings();
  renderFlow();
  renderDuplicates();
  renderTimeline();
}

function renderCase() {
  if (!data) return;
  const { el } = XFV, t = TEXT[XFV.lang];
  document.getElementById("case-no").textContent = data.case_no;
  const rows = [["name", data.name], ["id", data.id_number || data.id_masked], ["phone", data.phone],
    ["address", data.address], ["category", XFV.category[XFV.lang][data.category]],
    ["unit", data.concerned_unit], ["content", data.content],
    ["township", data.township_name], ["registered", XFV.time(data.registered_at)]];
  document.getElementById("fields").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", {}, t[k]), el("dd", { "data-field": k }, v || "–")]));
  document.getElementById("reveal").hidden = Boolean(data.id_number);
  const photos = document.getElementById("photos");
  photos.replaceChildren(...data.photos.map((p) => p.verified
    ? el("a", { href: `/api/v1/blobs/${p.sha256}`, target: "_blank" },
        el("img", { src: `/api/v1/blobs/${p.sha256}`, alt: p.sha256.slice(0, 12) }))
    : el("span", { class: "pending" }, t.waiting)));
  if (!data.photos.length) photos.append(t.nophoto);
}

const clock = (seconds) => {
  const s = Math.round(seconds || 0);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

// One block per recording file: when, how long, whether the hub verified it, and a <video>
// per side (the township box, the official). Every playback is logged by the hub.
function renderRecordings() {
  const { el } = XFV, t = TEXT[XFV.lang];
  const box = document.getElementById("recordings");
  box.replaceChildren(...recordings.map((r) => el("div",
    { class: "recording", "data-sha256": r.sha256, "data-verified": String(r.verified) },
    el("div", { class: "meta" },
      `${t.started}: ${XFV.time(r.started_at)} · ${t.duration}: ${clock(r.duration_s)} · `,
      el("span", { class: r.verified ? "verified" : "pending" },
        r.verified ? t.rec_verified : t.rec_waiting)),
    ...r.sides.map((s) => el("figure", { "data-side": s.side },
      el("figcaption", {}, `${t.sides[s.side] || s.side} · ${clock(s.duration_s)}`),
      s.url ? el("video", { src: s.url, controls: "", preload: "metadata", width: "320" })
        : el("span", { class: "pending" }, t.rec_waiting))))));
  if (!recordings.length) box.append(t.norecording);
}

function unitName(id) {
  const u = units.find((x) => x.id === id);
  if (!u) return id;
  return XFV.lang === "en" ? u.name_en : u.name_zh;
}

function renderFlow() {
  if (!flow) return;
  const { el } = XFV, t = TEXT[XFV.lang];
  const state = document.getElementById("workflow-state");
  state.textContent = XFV.lang === "en" ? pretty(flow.state) : flow.state_label;
  state.dataset.state = flow.state;
  const badge = document.getElementById("supervised");
  badge.hidden = !flow.supervised_at;
  badge.title = flow.supervised_at ? XFV.time(flow.supervised_at) : "";
  document.getElementById("merged").hidden = !flow.merged_into;
  const into = document.getElementById("merged-into");
  into.textContent = flow.merged_into || "";
  into.href = flow.merged_into ? `/cases/${encodeURIComponent(flow.merged_into)}` : "#";
  const facts = [["track", XFV.lang === "en" ? pretty(flow.track || "") || flow.track_name : flow.track_name],
    ["resp_unit", flow.unit_id ? unitName(flow.unit_id) : ""], ["assignee", flow.assignee]];
  document.getElementById("workflow-fields").replaceChildren(...facts.flatMap(([k, v]) =>
    [el("dt", {}, t[k]), el("dd", { "data-workflow": k }, v || t.none)]));

  const rows = flow.deadlines.map((d) => deadlineRow(d, t));
  document.getElementById("deadlines").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "4", class: "empty" }, t.no_deadlines))]));

  document.getElementById("actions").replaceChildren(...flow.actions.map((a) => el("button",
    { type: "button", class: "action" + (open === a.action ? " active" : ""), "data-action": a.action,
      "aria-expanded": String(open === a.action) }, actionLabel(a.action))));
  document.getElementById("no-actions").hidden = flow.actions.length > 0;
  renderFailure(t);
  renderForm(t);
}

function deadlineRow(d, t) {
  const { el } = XFV;
  const light = d.state === "open" ? d.light || "none" : "none";
  let left;
  if (d.state !== "open") left = t.ended[d.state] || d.state;
  else {
    const n = daysUntil(d.due);
    left = n > 0 ? t.days_left(n) : n === 0 ? t.due_today : t.days_over(-n);
  }
  return el("tr", { "data-deadline": d.kind, "data-state": d.state },
    el("td", {}, el("span", { class: "light " + lightClass(light), "data-light": light, role: "img",
                              "aria-label": t.lights[light] || light }),
      " ", XFV.lang === "en" ? d.label_en : d.label_zh),
    el("td", { "data-due": d.due }, d.due,
      d.estimated ? el("span", { class: "badge amber", "data-estimated": "true", title: t.estimated_hint },
        t.estimated) : "",
      d.extended_days ? el("small", {}, " " + t.extended(d.extended_days)) : ""),
    el("td", {}, t.day_kinds[d.day_kind] || d.day_kind),
    el("td", { class: d.state === "open" && daysUntil(d.due) < 0 ? "overdue" : "" }, left));
}

function renderFailure(t) {
  const { el } = XFV;
  const box = document.getElementById("step-error");
  box.hidden = !failure;
  if (!failure) { box.replaceChildren(); return; }
  const parts = [el("p", {}, failure.missing.length ? t.missing : t.failed, " ",
    el("span", { class: "server" }, failure.message))];
  if (failure.missing.length) {
    parts.push(el("ul", { id: "step-missing" },
      ...failure.missing.map((m) => el("li", { "data-missing": m }, m))));
  }
  box.replaceChildren(...parts);
}

function field(label, control) {
  return XFV.el("label", { class: "field" }, XFV.el("span", {}, label), control);
}

function renderForm(t) {
  const { el } = XFV;
  const slot = document.getElementById("step-form-slot");
  const kept = {};  // what the user typed survives a re-render (language switch, reload)
  for (const n of slot.querySelectorAll("[name]")) kept[n.name] = n.value;
  if (!open) { slot.replaceChildren(); return; }
  const form = el("form", { id: "step-form", class: "step-form", "data-action": open });
  form.append(el("h3", {}, actionLabel(open)));
  if (open === "route") {
    form.append(
      field(t.route_unit, el("select", { name: "unit_id", required: "" },
        el("option", { value: "" }, t.choose_unit),
        ...units.map((u) => el("option", { value: u.id }, `${XFV.lang === "en" ? u.name_en : u.name_zh} (${u.id})`)))),
      field(t.route_assignee, el("input", { name: "assignee", type: "text", maxlength: "64" })));
  } else if (open === "extend") {
    form.append(field(t.days, el("input", { name: "days", type: "number", min: "1", max: "30",
                                             step: "1", required: "" })));
  } else if (open === "merge") {
    const input = el("input", { name: "into", type: "text", required: "", maxlength: "64" });
    form.append(field(t.into, input));
    if (duplicates.length) {
      form.append(el("p", { class: "hint" }, t.suggestions), el("div", { class: "choices" },
        ...duplicates.map((s) => {
          const b = el("button", { type: "button", class: "choice", "data-into": s.case_no },
            el("b", {}, s.case_no), ` · ${s.score.toFixed(2)} · `,
            s.reasons.map((r) => (XFV.lang === "en" ? r.label_en : r.label_zh)).join(XFV.lang === "en" ? ", " : "、"));
          b.addEventListener("click", () => { input.value = s.case_no; input.focus(); });
          return b;
        })));
    }
  } else if (open === "reply") {
    const missing = failure ? failure.missing : [];
    for (const e of flow.reply_elements) {
      const bad = missing.includes(e);
      form.append(field(e, el("textarea", { name: "element:" + e, "data-element": e, rows: "2",
        class: bad ? "invalid" : "", "aria-invalid": String(bad) })));
    }
  }
  const reasonNeeded = open === "extend" || open === "supervise";
  const noteLabel = open === "extend" ? t.reason : open === "supervise" ? t.instruction : t.note;
  const note = el("textarea", { name: "note", rows: "3", maxlength: "4000" });
  if (reasonNeeded) note.required = true;
  form.append(field(noteLabel, note));
  const cancel = el("button", { type: "button", class: "secondary" }, t.cancel);
  cancel.addEventListener("click", () => { open = null; failure = null; render(); });
  form.append(el("div", { class: "form-buttons" },
    el("button", { type: "submit", class: "primary" }, sending ? t.sending : t.submit), cancel));
  form.addEventListener("submit", submit);
  for (const n of form.querySelectorAll("[name]")) if (n.name in kept) n.value = kept[n.name];
  slot.replaceChildren(form);
}

async function submit(ev) {
  ev.preventDefault();
  if (sending) return;
  const form = ev.target;
  const body = { action: open, note: form.elements.note.value };
  if (open === "route") {
    body.unit_id = form.elements.unit_id.value;
    const assignee = form.elements.assignee.value.trim();
    if (assignee) body.assignee = assignee;
  } else if (open === "extend") {
    body.days = Number(form.elements.days.value);
  } else if (open === "merge") {
    body.into = form.elements.into.value.trim();
  } else if (open === "reply") {
    body.elements = {};
    for (const n of form.querySelectorAll("textarea[data-element]")) body.elements[n.dataset.element] = n.value;
  }
  sending = true;
  form.querySelector("button[type=submit]").disabled = true;
  let r;
  try {
    r = await XFV.post(caseUrl + "/steps", body);
  } catch (err) {
    r = { ok: false, status: 0, body: { error: String(err) } };
  }
  sending = false;
  if (r.ok) {
    open = null;
    failure = null;
    document.getElementById("step-form-slot").replaceChildren();
    await Promise.all([load(), loadFlow()]);
    XFV.inboxBadge();
    return;
  }
  failure = { message: r.body.error || `HTTP ${r.status}`,
              missing: r.status === 422 && Array.isArray(r.body.missing) ? r.body.missing : [] };
  render();
  if (failure.missing.length) await load().catch(() => {});  // the timeline shows 发回重办
  document.getElementById("step-error").scrollIntoView({ block: "nearest" });
}

function renderDuplicates() {
  const { el } = XFV;
  document.getElementById("duplicates-card").hidden = duplicates.length === 0;
  document.getElementById("duplicates").replaceChildren(...duplicates.map((s) => el("tr",
    { "data-duplicate": s.case_no },
    el("td", {}, el("a", { href: `/cases/${encodeURIComponent(s.case_no)}` }, s.case_no),
      el("br"), el("small", {}, `${s.name || ""} ${s.id_masked || ""} · ${XFV.time(s.registered_at)}`)),
    el("td", { "data-score": String(s.score) }, s.score.toFixed(2)),
    el("td", {}, s.reasons.map((r) => (XFV.lang === "en" ? r.label_en : r.label_zh))
      .join(XFV.lang === "en" ? ", " : "、")),
    el("td", {}, XFV.lang === "en" ? pretty(s.state) : s.state_label_zh))));
}

function detailOf(e) {
  if (e.detail && typeof e.detail === "object") return e.detail;
  try { return JSON.parse(e.detail || "{}") || {}; } catch { return {}; }
}

// The case's own events (registration, photos, returned replies) and the workflow's steps,
// in time order. The timeline's bare "transition" entries are shown as the steps they are.
function renderTimeline() {
  if (!data) return;
  const { el } = XFV, t = TEXT[XFV.lang];
  const items = data.timeline.filter((e) => e.kind !== "transition").map((e) => {
    const li = el("li", { "data-kind": e.kind }, el("b", {}, t.kinds[e.kind] || e.kind), " ",
      el("span", {}, XFV.time(e.ts)));
    if (e.kind === "reply_returned") {
      const missing = detailOf(e).missing || [];
      li.append(" ", el("span", { class: "by" }, e.actor || ""),
        el("div", { class: "missing" }, t.missing_elements,
          missing.join(XFV.lang === "en" ? ", " : "、")));
    }
    return { ts: e.ts, li };
  });
  for (const s of flow ? flow.steps : []) {
    const li = el("li", { "data-kind": "step", "data-action": s.action },
      el("b", {}, actionLabel(s.action)), " ",
      el("span", { class: "move" }, `${stateLabel(s.from_state)} → ${stateLabel(s.to_state)}`), " ",
      el("span", { class: "by" }, `${s.actor} (${t.roles[s.role] || s.role})`), " ",
      el("span", {}, XFV.time(s.ts)));
    const d = s.detail || {};
    if (d.unit_id) li.append(el("div", {}, `${t.resp_unit}: ${unitName(d.unit_id)}`));
    if (d.into) li.append(el("div", {}, `${t.merged_into} ${d.into}`));
    if (d.days) li.append(el("div", {}, t.extended(d.days)));
    if (s.note) li.append(el("div", { class: "note" }, s.note));
    items.push({ ts: s.ts, li });
  }
  items.sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  document.getElementById("timeline").replaceChildren(...items.map((i) => i.li));
}

document.getElementById("reveal").addEventListener("click", () => load(true));
document.getElementById("actions").addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-action]");
  if (!button) return;
  open = open === button.dataset.action ? null : button.dataset.action;
  failure = null;
  document.getElementById("step-form-slot").replaceChildren();
  render();
  const first = document.querySelector("#step-form select, #step-form input, #step-form textarea");
  if (first) first.focus();
});
XFV.setup(TEXT, render);
load();
loadRecordings();
loadFlow();
loadLabels();
XFV.inboxBadge();
