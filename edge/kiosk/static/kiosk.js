// The township box's case-capture flow: consent → person → matter → photos → review → done,
// then, from the receipt, live video reception (视频接访): waiting (queue position, live) →
// the official full screen with a small self view → ended. The live state comes from
// GET /api/v1/live/state, long-polled (see edge/kiosk/live_api.py and docs/kiosk-live.md); the
// official's voice comes on the /api/v1/live/speaker WebSocket and plays through an
// AudioWorklet (speaker-worklet.js), with a volume control on the call screen.
// Everything talks to the box itself (works with the uplink down). The server's 422 answer is
// authoritative; the checks here only give instant feedback with the same rules.
"use strict";

const T = {
  zh: {
    title: "视频接访 · 信访登记", lang: "English",
    step_consent: "阅读须知", step_person: "本人信息", step_matter: "反映事项",
    step_photos: "拍摄材料", step_review: "核对提交", step_done: "登记完成",
    progress: (n, name) => `第 ${n} 步，共 5 步：${name}`,
    consent_h: "登记前请了解",
    purpose_h: "登记做什么用",
    purpose: "您填写的信息只用于登记和办理您反映的事情，会转给负责处理的部门。",
    recorded_h: "会记下哪些内容",
    recorded: "姓名、身份证号码、手机号码、住址、您反映的事情，以及您同意拍下的材料照片。",
    kept_h: "保存多久",
    kept: "按国家信访档案管理规定的期限保存，期满后按规定处理。屏幕和回执上的身份证号码只显示前 6 位和后 4 位。",
    agree: "同意并继续",
    person_h: "请填写本人信息", person_short: "本人信息",
    name: "姓名", id_number: "身份证号码", id_hint: "（18 位，最后一位可能是 X）",
    phone: "手机号码", address: "住址",
    matter_h: "您要反映什么事情", matter_short: "反映事项",
    category: "信访类别",
    cat_suggestion: "建议意见", cat_suggestion_sub: "对工作提出建议、意见",
    cat_accusation: "检举控告", cat_accusation_sub: "检举、控告违法违纪行为",
    cat_claim: "申诉求决", cat_claim_sub: "请求解决自己的实际问题",
    concerned_unit: "涉及单位或地点", content: "诉求内容",
    content_hint: "（什么事、什么时候、希望怎样解决）",
    photos_h: "拍摄材料照片", photos_short: "材料照片",
    photos_hint: "把材料平放在镜头下，画面清楚后按“拍照”。最多 6 张；没有材料可以跳过。",
    preview_alt: "摄像头画面", shoot: "拍照", shooting: "正在拍照…",
    photo_count: (n) => `已拍 ${n} 张，最多 6 张`, photo_n: (n) => `第 ${n} 张`,
    delete: "删除", skip: "跳过",
    camera_error: "摄像头暂时不能用。可以按“跳过”继续登记。",
    review_h: "请核对以下信息", edit: "修改", photos_none: "没有拍照",
    submit: "确认提交", submitting: "正在提交…",
    done_h: "✓ 登记成功", case_no: "案件编号", query_code: "查询码", registered_at: "登记时间",
    qr_caption: "二维码里是案件编号",
    done_note: "请记好查询码，不要告诉别人。凭案件编号和查询码可以查询办理进度。",
    print: "打印回执", again: "办理下一件", back: "上一步", next: "下一步",
    idle_title: "您还在吗？", idle_stay: "继续办理", idle_clear: "结束并清空",
    idle_text: (s) => `${s} 秒后将清空本页填写的信息，回到首页。`,
    ok: "已连接", down: "离线（案件已保存在本机，恢复后自动上传）",
    pending: (n) => `待上传 ${n} 条`,
    submit_failed: "提交没有成功，请再按一次“确认提交”。如果还不行，请联系工作人员。",
    time: (y, mo, d, h, mi) => `${y}年${mo}月${d}日 ${h}:${mi}（北京时间）`,
    step_live: "视频接访",
    live_request: "视频接访", live_hint: "按下后，接访人员会通过视频和您面对面交谈。",
    live_unavailable: "视频接访暂时不能用，请稍后再试，或联系工作人员。",
    live_waiting_h: "正在等待接访人员…",
    live_position: (n) => n <= 1 ? "下一位就是您，请稍候" : `您前面还有 ${n - 1} 位`,
    live_requesting: "正在排队…", live_case: (c) => `案件编号 ${c}`,
    live_cancel: "取消等待", live_end: "结束", live_connecting: "正在接通…",
    live_remote_alt: "接访人员画面", live_self_alt: "本人画面",
    live_ended_h: "视频接访已结束", live_back: "返回",
    volume_down: "音量−", volume_up: "音量+", volume_level: (n) => `音量 ${n}`,
    live_duration: (m, s) => `通话时长 ${m} 分 ${s} 秒。`,
    live_lost: "连接中断，视频接访没有完成。可以再按一次“视频接访”。",
    live_errors: {
      unavailable: "视频接访暂时不能用，请稍后再试，或联系工作人员。",
      unknown_case: "本机找不到这件案件，请联系工作人员。",
      wrong_state: "已经在排队或通话中。",
    },
    err: {
      required: "请填写这一项", required_category: "请选择一个信访类别",
      too_long: (n) => `内容太长，最多 ${n} 个字`, not_text: "请填写文字",
      unknown_category: "请选择一个信访类别",
      invalid_phone: "手机号码应为 11 位数字，以 13 至 19 开头",
      length: "身份证号码应为 18 位", characters: "身份证号码应为 17 位数字，最后一位是数字或 X",
      region: "身份证号码前两位不是有效的省份代码，请核对",
      birth_date: "身份证号码中的出生日期不正确，请核对",
      birth_in_future: "身份证号码中的出生日期晚于今天，请核对",
      check_digit: "身份证号码校验位不正确，请核对最后一位",
      unknown_photo: "有照片已失效，请删除后重新拍照", other: "这一项有误，请核对",
    },
  },
  en: {
    title: "Video Petition Reception · Registration", lang: "中文",
    step_consent: "Notice", step_person: "Your details", step_matter: "Your matter",
    step_photos: "Photos", step_review: "Check and submit", step_done: "Done",
    progress: (n, name) => `Step ${n} of 5: ${name}`,
    consent_h: "Before we start",
    purpose_h: "Why we ask",
    purpose: "What you tell us is used only to register and handle your matter. It is passed to the office responsible for it.",
    recorded_h: "What is recorded",
    recorded: "Your name, ID number, mobile number, address, your matter, and photos of your papers if you agree.",
    kept_h: "How long it is kept",
    kept: "For the period set by the national rules on petition records, then disposed of as they require. Screens and receipts show only the first 6 and last 4 characters of your ID number.",
    agree: "Agree and continue",
    person_h: "Your details", person_short: "Your details",
    name: "Name", id_number: "ID number", id_hint: "(18 characters; the last may be X)",
    phone: "Mobile number", address: "Address",
    matter_h: "What is your matter?", matter_short: "Your matter",
    category: "Category",
    cat_suggestion: "Suggestion", cat_suggestion_sub: "Ideas or opinions on public work",
    cat_accusation: "Report", cat_accusation_sub: "Report wrongdoing by officials or offices",
    cat_claim: "Request", cat_claim_sub: "Ask for a problem of your own to be solved",
    concerned_unit: "Office or place concerned", content: "Your request",
    content_hint: "(what happened, when, and what you want done)",
    photos_h: "Photos of your papers", photos_short: "Photos",
    photos_hint: "Lay each paper flat under the camera and press “Take photo” when the picture is clear. Up to 6; you may skip.",
    preview_alt: "Camera picture", shoot: "Take photo", shooting: "Taking…",
    photo_count: (n) => `${n} of 6 photos taken`, photo_n: (n) => `Photo ${n}`,
    delete: "Delete", skip: "Skip",
    camera_error: "The camera is not working. Press “Skip” to carry on.",
    review_h: "Please check", edit: "Change", photos_none: "No photos",
    submit: "Submit", submitting: "Submitting…",
    done_h: "✓ Registered", case_no: "Case number", query_code: "Query code",
    registered_at: "Registered", qr_caption: "The QR code holds the case number",
    done_note: "Keep the query code to yourself. With the case number and the query code you can check progress.",
    print: "Print receipt", again: "Next person", back: "Back", next: "Next",
    idle_title: "Are you still there?", idle_stay: "Continue", idle_clear: "Finish and clear",
    idle_text: (s) => `In ${s} s what was entered here is cleared and the kiosk starts again.`,
    ok: "Connected", down: "Offline (cases are saved on this box and upload when the line is back)",
    pending: (n) => `${n} waiting to upload`,
    submit_failed: "Submitting did not work. Press “Submit” again; if it still fails, ask the staff.",
    time: (y, mo, d, h, mi) => `${y}-${mo}-${d} ${h}:${mi} (Beijing time)`,
    step_live: "Video reception",
    live_request: "Talk to an official by video", live_hint: "An official will talk with you face to face over video.",
    live_unavailable: "Video reception is not available right now. Please try again later or ask the staff.",
    live_waiting_h: "Waiting for an official…",
    live_position: (n) => n <= 1 ? "You are next, please wait" : `${n - 1} ahead of you`,
    live_requesting: "Joining the queue…", live_case: (c) => `Case number ${c}`,
    live_cancel: "Stop waiting", live_end: "End", live_connecting: "Connecting…",
    live_remote_alt: "The official", live_self_alt: "You",
    live_ended_h: "The video reception has ended", live_back: "Back",
    volume_down: "Volume −", volume_up: "Volume +", volume_level: (n) => `Volume ${n}`,
    live_duration: (m, s) => `The call lasted ${m} min ${s} s.`,
    live_lost: "The connection was lost before the reception finished. You may press the video button again.",
    live_errors: {
      unavailable: "Video reception is not available right now. Please try again later or ask the staff.",
      unknown_case: "This case is not on this box; please ask the staff.",
      wrong_state: "You are already waiting or in a call.",
    },
    err: {
      required: "Please fill this in", required_category: "Please choose a category",
      too_long: (n) => `Too long: at most ${n} characters`, not_text: "Please enter text",
      unknown_category: "Please choose a category",
      invalid_phone: "A mobile number has 11 digits and starts with 13 to 19",
      length: "An ID number has 18 characters",
      characters: "An ID number is 17 digits followed by a digit or X",
      region: "The first two digits are not a province code; please check",
      birth_date: "The birth date in the ID number is not a real date; please check",
      birth_in_future: "The birth date in the ID number is after today; please check",
      check_digit: "The check digit is wrong; please check the last character",
      unknown_photo: "A photo is no longer valid; delete it and take it again",
      other: "Please check this",
    },
  },
};

const STEPS = ["consent", "person", "matter", "photos", "review", "done"];
const FIELDS = {
  person: ["name", "id_number", "phone", "address"],
  matter: ["category", "concerned_unit", "content"],
  photos: ["photos"],
};
const TEXT_FIELDS = ["name", "id_number", "phone", "address", "concerned_unit", "content"];
const LIMITS = {name: 50, address: 200, concerned_unit: 100, content: 5000};
const MAX_PHOTOS = 6;
const PROVINCES = new Set(("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 " +
  "50 51 52 53 54 61 62 63 64 65 71 81 82").split(" "));
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let lang = "zh";
let state = fresh();
let previewRun = 0;
let busy = false;
let township = "";

function fresh() {
  // submitKey: the Idempotency-Key of this registration; kept while a submit may have reached
  // the box unanswered (a retry must not register it twice), new once the fields can change.
  return {step: "consent", category: "", photos: [], errors: {}, receipt: null, submitKey: null};
}

// -- rules (mirrors contracts/ids.py, contracts/phone.py, contracts/cases.py) ----------------

function idNumberError(value) {
  const n = value.replace(/ /g, "").toUpperCase();
  if (n.length !== 18) return "length";
  if (!/^\d{17}[\dX]$/.test(n)) return "characters";
  if (!PROVINCES.has(n.slice(0, 2))) return "region";
  const y = +n.slice(6, 10), m = +n.slice(10, 12), d = +n.slice(12, 14);
  const born = new Date(Date.UTC(y, m - 1, d));
  if (born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d ||
      born < Date.UTC(1880, 0, 1)) return "birth_date";
  const now = new Date();
  if (born > Date.UTC(now.getFullYear(), now.getMonth(), now.getDate())) return "birth_in_future";
  const sum = ID_WEIGHTS.reduce((s, w, i) => s + w * +n[i], 0);
  return "10X98765432"[sum % 11] === n[17] ? null : "check_digit";
}

function phoneError(value) {
  let n = value.replace(/[\s\-()]/g, "");
  for (const p of ["+86", "0086", "86"]) {
    if (n.startsWith(p) && n.length === 11 + p.length) { n = n.slice(p.length); break; }
  }
  return /^1[3-9]\d{9}$/.test(n) ? null : "invalid_phone";
}

function fieldError(field) {
  if (field === "category") return state.category ? null : {code: "required"};
  if (field === "photos") return null;
  const raw = $(field).value, value = raw.trim();
  if (!value) return {code: "required"};
  if (LIMITS[field] && [...value].length > LIMITS[field]) return {code: "too_long"};
  const code = field === "id_number" ? idNumberError(value)
    : field === "phone" ? phoneError(value) : null;
  return code ? {code} : null;
}

function errorText(field, error) {
  const e = T[lang].err;
  if (error.code === "required" && field === "category") return e.required_category;
  if (error.code === "too_long") return e.too_long(LIMITS[field]);
  return e[error.code] || error.message || e.other;
}

function showErrors() {
  for (const field of [...Object.values(FIELDS).flat()]) {
    const error = state.errors[field];
    $("err-" + field).textContent = error ? errorText(field, error) : "";
    const input = field === "category" ? null : $(field);
    if (input && "value" in input) input.setAttribute("aria-invalid", error ? "true" : "false");
  }
}

function validate(step) {
  let ok = true;
  for (const field of FIELDS[step] || []) {
    const error = fieldError(field);
    if (error) { state.errors[field] = error; ok = false; } else delete state.errors[field];
  }
  showErrors();
  return ok;
}

// -- rendering ------------------------------------------------------------------------------

function applyText() {
  const t = T[lang];
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t.title;
  for (const el of document.querySelectorAll("[data-t]")) {
    if (typeof t[el.dataset.t] === "string") el.textContent = t[el.dataset.t];
  }
  $("preview").alt = t.preview_alt;
  $("lang").textContent = t.lang;
  $("lang").lang = lang === "zh" ? "en" : "zh-CN";
  render();
  showErrors();
  refreshStatus();
}

function render() {
  const t = T[lang], step = state.step, n = STEPS.indexOf(step) + 1;
  document.body.dataset.step = step;
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.dataset.step !== step;
  $("progress").textContent = step === "done" ? t.step_done
    : step === "live" ? t.step_live : t.progress(n, t["step_" + step]);
  const done = step === "done", inLive = step === "live";
  $("back").hidden = step === "consent" || done || inLive;
  $("print").hidden = !done;
  $("again").hidden = !done;
  $("next").hidden = done || inLive;
  $("next").disabled = busy;
  $("back").disabled = busy;
  $("next").textContent = {
    consent: t.agree, review: busy ? t.submitting : t.submit,
    photos: state.photos.length ? t.next : t.skip,
  }[step] || t.next;
  for (const b of document.querySelectorAll(".cat")) {
    b.setAttribute("aria-checked", String(b.dataset.category === state.category));
  }
  renderPhotos();
  if (step === "review") renderReview();
  if (done) renderReceipt();
  renderLive();
}

function renderPhotos() {
  const t = T[lang], list = $("thumbs");
  list.replaceChildren(...state.photos.map((p, i) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = p.url; img.alt = t.photo_n(i + 1);
    const del = document.createElement("button");
    del.type = "button"; del.className = "secondary del"; del.textContent = t.delete;
    del.onclick = () => { state.photos.splice(i, 1); delete state.errors.photos; render(); showErrors(); };
    li.append(img, del);
    return li;
  }));
  $("photo-count").textContent = t.photo_count(state.photos.length);
  $("shoot").disabled = busy || state.photos.length >= MAX_PHOTOS;
  $("shoot").textContent = busy && state.step === "photos" ? t.shooting : t.shoot;
}

function row(label, value, field) {
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = label; dd.textContent = value; dd.dataset.field = field;
  return [dt, dd];
}

function maskId(value) {
  const n = value.replace(/ /g, "").toUpperCase();
  return n.length === 18 ? n.slice(0, 6) + "********" + n.slice(14) : "******";
}

function renderReview() {
  const t = T[lang], v = (id) => $(id).value.trim();
  $("review-person").replaceChildren(
    ...row(t.name, v("name"), "name"),
    ...row(t.id_number, maskId(v("id_number")), "id_number"),
    ...row(t.phone, v("phone"), "phone"),
    ...row(t.address, v("address"), "address"));
  $("review-matter").replaceChildren(
    ...row(t.category, t["cat_" + state.category] || "", "category"),
    ...row(t.concerned_unit, v("concerned_unit"), "concerned_unit"),
    ...row(t.content, v("content"), "content"));
  const photos = $("review-photos");
  if (!state.photos.length) {
    const li = document.createElement("li");
    li.className = "none"; li.textContent = t.photos_none;
    photos.replaceChildren(li);
  } else {
    photos.replaceChildren(...state.photos.map((p, i) => {
      const li = document.createElement("li"), img = document.createElement("img");
      img.src = p.url; img.alt = t.photo_n(i + 1);
      li.append(img);
      return li;
    }));
  }
}

function beijingTime(iso) {
  const d = new Date(Date.parse(iso) + 8 * 3600e3), p = (x) => String(x).padStart(2, "0");
  return T[lang].time(d.getUTCFullYear(), p(d.getUTCMonth() + 1), p(d.getUTCDate()),
    p(d.getUTCHours()), p(d.getUTCMinutes()));
}

function renderReceipt() {
  const r = state.receipt;
  $("case-no").textContent = r.case_no;
  $("query-code").textContent = r.query_code;
  $("registered-at").textContent = beijingTime(r.registered_at);
}

async function showQr(caseNo) {
  const r = await fetch("/api/v1/qr?text=" + encodeURIComponent(caseNo));
  if (!r.ok) return;
  const doc = new DOMParser().parseFromString(await r.text(), "image/svg+xml");
  $("qr").replaceChildren(document.importNode(doc.documentElement, true));
}

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

function go(step) {
  state.step = step;
  banner("");
  render();
  $("main").scrollTop = 0;
  const heading = document.querySelector(`section[data-step="${step}"] h2`);
  if (heading) heading.focus({preventScroll: true});
  if (step === "photos") previewLoop(++previewRun); else previewRun++;
}

// -- camera ---------------------------------------------------------------------------------

async function previewLoop(run) {
  const img = $("preview");
  while (run === previewRun) {
    try {
      const r = await fetch("/api/v1/camera/preview", {cache: "no-store"});
      if (!r.ok) throw new Error("camera " + r.status);
      const url = URL.createObjectURL(await r.blob());
      if (run !== previewRun) { URL.revokeObjectURL(url); break; }
      const old = img.src;
      img.src = url;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      $("camera-error").hidden = true;
      await sleep(150);
    } catch (e) {
      $("camera-error").hidden = false;
      await sleep(2000);
    }
  }
}

async function shoot() {
  if (busy || state.photos.length >= MAX_PHOTOS) return;
  busy = true; render();
  try {
    const r = await fetch("/api/v1/photos", {method: "POST"});
    if (!r.ok) throw new Error("photo " + r.status);
    const photo = await r.json();
    if (!state.photos.some((p) => p.sha256 === photo.sha256)) state.photos.push(photo);
    $("camera-error").hidden = true;
  } catch (e) {
    $("camera-error").hidden = false;
  } finally {
    busy = false; render();
  }
}

// -- submitting -----------------------------------------------------------------------------

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function submit() {
  if (busy) return;
  const body = {category: state.category, photos: state.photos.map((p) => p.sha256)};
  for (const f of TEXT_FIELDS) body[f] = $(f).value;
  busy = true; banner(""); render();
  state.submitKey = state.submitKey || newKey();
  let r, answer;
  try {
    r = await fetch("/api/v1/cases", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Idempotency-Key": state.submitKey},
      body: JSON.stringify(body),
    });
    answer = await r.json();
  } catch (e) {
    busy = false; render(); banner(T[lang].submit_failed);
    return;
  }
  busy = false;
  state.submitKey = null;  // answered: the next submit is a new registration
  if (r.status === 201) {
    state.receipt = {...answer, township_name: township};
    sessionStorage.setItem("xfv-receipt", JSON.stringify(state.receipt));
    go("done");
    showQr(answer.case_no);
  } else if (r.status === 422) {
    state.errors = answer.errors || {};
    const step = ["person", "matter", "photos"].find((s) => FIELDS[s].some((f) => state.errors[f]));
    go(step || "review");
    showErrors();
    const known = new Set(Object.values(FIELDS).flat());
    const other = Object.entries(state.errors).filter(([f]) => !known.has(f));
    if (other.length) banner(other.map(([f, e]) => `${f}: ${e.message}`).join("; "));
  } else {
    render(); banner(answer && answer.error ? answer.error : T[lang].submit_failed);
  }
}

function next() {
  const step = state.step;
  if (step === "review") { submit(); return; }
  if (FIELDS[step] && !validate(step)) {
    const first = FIELDS[step].find((f) => state.errors[f]);
    const el = first === "category" ? document.querySelector(".cat") : $(first);
    if (el) el.focus();
    return;
  }
  go(STEPS[STEPS.indexOf(step) + 1]);
}

function startOver() {
  previewRun++;
  sessionStorage.removeItem("xfv-receipt");
  for (const f of TEXT_FIELDS) $(f).value = "";
  for (const id of ["case-no", "query-code", "registered-at"]) $(id).textContent = "";
  $("qr").replaceChildren();
  state = fresh();
  lang = "zh";
  localStorage.setItem("xfv-lang", lang);
  applyText();
  go("consent");
}

// -- idle reset -----------------------------------------------------------------------------
// A petitioner who walks away must not leave their name, ID number or query code on the screen
// for the next person: after idle.seconds (the box's kiosk_idle_seconds) without a touch the
// page asks whether they are still there, and IDLE_GRACE later clears everything and shows the
// notice again. Never during live reception, and not on an untouched first page.

const IDLE_GRACE = 30;
const idle = {seconds: 180, last: Date.now()};

function idleGrace() {
  return Math.min(IDLE_GRACE, idle.seconds);
}

function somethingToClear() {
  return state.step !== "consent" || TEXT_FIELDS.some((f) => $(f).value) || !!state.category;
}

function touched() {
  idle.last = Date.now();
  if ($("idle").open) $("idle").close();
}

function idleTick() {
  if (state.step === "live" || busy || !somethingToClear()) { touched(); return; }
  const quiet = (Date.now() - idle.last) / 1000, left = idle.seconds + idleGrace() - quiet;
  if (left <= 0) { touched(); startOver(); return; }
  if (quiet < idle.seconds) return;
  $("idle-text").textContent = T[lang].idle_text(Math.ceil(left));
  if (!$("idle").open) $("idle").showModal();
}

// -- live video reception -------------------------------------------------------------------

const live = {version: null, state: null, busy: false};

async function liveLoop() {
  // Follows the box's live state for as long as the page is open (long poll: the answer
  // comes when something changes, or after 20 s).
  for (;;) {
    try {
      const q = live.version === null ? "" : "?after=" + live.version;
      const r = await fetch("/api/v1/live/state" + q, {cache: "no-store"});
      if (!r.ok) throw new Error("live state " + r.status);
      const s = await r.json();
      live.version = s.version;
      live.state = s;
      if ((s.state === "waiting" || s.state === "in_call") && state.step !== "live") go("live");
      renderLive();
    } catch (e) {
      live.version = null;
      await sleep(2000);
    }
  }
}

function showStream(img, url) {
  // Setting src opens the MJPEG stream; clearing it closes the connection.
  if (url && !img.getAttribute("src")) img.src = url;
  if (!url && img.getAttribute("src")) img.removeAttribute("src");
}

function renderLive() {
  const t = T[lang], s = live.state;
  const free = !!s && s.available && (s.state === "idle" || s.state === "ended");
  $("live-request").disabled = !free || live.busy;
  $("live-hint").textContent = s && !s.available ? t.live_unavailable : t.live_hint;
  const inLive = state.step === "live" && !!s;
  const phase = inLive ? s.state : "none";
  document.body.dataset.live = phase;
  $("live-waiting").hidden = phase !== "waiting";
  $("live-call").hidden = phase !== "in_call";
  $("live-ended").hidden = phase !== "ended" && phase !== "idle";
  showStream($("live-remote"), phase === "in_call" ? "/api/v1/live/remote.mjpg" : "");
  showStream($("live-self"), phase === "in_call" ? "/api/v1/live/self.mjpg" : "");
  $("live-remote").alt = t.live_remote_alt;
  $("live-self").alt = t.live_self_alt;
  $("volume-level").textContent = t.volume_level(speaker.volume);
  $("volume-down").disabled = speaker.volume <= 0;
  $("volume-up").disabled = speaker.volume >= VOLUME_MAX;
  if (!inLive) return;
  $("live-position").textContent = s.position ? t.live_position(s.position) : t.live_requesting;
  $("live-case").textContent = s.case_no ? t.live_case(s.case_no) : "";
  $("live-cancel").disabled = live.busy;
  $("live-end").disabled = live.busy;
  $("live-connecting").hidden = !!(s.call && s.call.remote_frames > 0);
  const lost = s.ended_reason && !["completed", "left"].includes(s.ended_reason);
  const secs = Math.round(s.duration_s || 0);
  $("live-ended-note").textContent = phase === "idle" ? (s.error ? liveError(s.error) : "")
    : lost ? t.live_lost : t.live_duration(Math.floor(secs / 60), secs % 60);
}

function liveError(error) {
  const t = T[lang];
  return (error && t.live_errors[error.code]) || t.live_unavailable;
}

async function livePost(path, body) {
  if (live.busy) return;
  live.busy = true; banner(""); renderLive();
  try {
    const r = await fetch("/api/v1/live/" + path, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body || {}),
    });
    const answer = await r.json();
    if (!r.ok) { banner(liveError(answer)); return false; }
    live.state = answer; live.version = null;
    return true;
  } catch (e) {
    banner(T[lang].live_unavailable);
    return false;
  } finally {
    live.busy = false; renderLive();
  }
}

async function requestLive() {
  resumeSpeaker(); // the clerk's tap: a user gesture, which lets the AudioContext run
  if (!state.receipt) return;
  if (await livePost("request", {case_no: state.receipt.case_no})) go("live");
}

// -- the official's voice -------------------------------------------------------------------
// The box sends the official's audio on a WebSocket (/api/v1/live/speaker, opened once and
// kept: idle between calls) as binary messages of 20 ms, 48 kHz mono s16le PCM after a 4-byte
// sequence number, with JSON notices ({type: hello | call | idle}); see edge/kiosk/speaker.py.
// Each chunk goes to the AudioWorklet, which plays it from a ring buffer (~60 ms target delay,
// at most ~200 ms). Chromium starts an AudioContext only after a user gesture: it is made at
// load and resumed on the clerk's tap (any tap, in fact); a kiosk browser run with
// --autoplay-policy=no-user-gesture-required plays at once, also after a reload.
// window.xfvSpeaker has the counters (for tests and a look from the console): received, gaps
// and skipped (chunks; skipped while the context is suspended), played and dropped (samples),
// underruns, rms (0..1, before the volume),
// buffered_ms, state (the AudioContext's), volume; dominantHz() and level() measure what
// leaves the volume control, clock() is the context's currentTime.

const SPEAKER_RATE = 48000, VOLUME_MAX = 10, VOLUME_DEFAULT = 7;
const speaker = {ctx: null, node: null, gain: null, analyser: null, lastSeq: null,
  retry: 1000, volume: volumeSetting()};
window.xfvSpeaker = {
  state: "none", received: 0, gaps: 0, skipped: 0, played: 0, dropped: 0, underruns: 0,
  rms: 0, buffered_ms: 0, volume: speaker.volume,
  dominantHz() {
    const a = speaker.analyser;
    if (!a) return 0;
    const db = new Float32Array(a.frequencyBinCount);
    a.getFloatFrequencyData(db);
    let m = 1;
    for (let i = 2; i < db.length - 1; i++) if (db[i] > db[m]) m = i;
    const [l, c, r] = [db[m - 1], db[m], db[m + 1]]; // parabolic peak between bins
    const shift = (l - 2 * c + r) === 0 ? 0 : 0.5 * (l - r) / (l - 2 * c + r);
    return (m + shift) * a.context.sampleRate / a.fftSize;
  },
  clock() { return speaker.ctx ? speaker.ctx.currentTime : 0; },
  level() {
    const a = speaker.analyser;
    if (!a) return 0;
    const x = new Float32Array(a.fftSize);
    a.getFloatTimeDomainData(x);
    let sum = 0;
    for (const v of x) sum += v * v;
    return Math.sqrt(sum / x.length);
  },
};

function volumeSetting() {
  const v = parseInt(localStorage.getItem("xfv-volume"), 10);
  return Number.isInteger(v) && v >= 0 && v <= VOLUME_MAX ? v : VOLUME_DEFAULT;
}

function volumeGain(v) {
  // 4 dB a step around the default (0 dB); 0 is silence
  return v <= 0 ? 0 : Math.pow(10, (v - VOLUME_DEFAULT) * 4 / 20);
}

function setVolume(v) {
  speaker.volume = Math.max(0, Math.min(VOLUME_MAX, v));
  window.xfvSpeaker.volume = speaker.volume;
  localStorage.setItem("xfv-volume", String(speaker.volume));
  if (speaker.gain) speaker.gain.gain.setTargetAtTime(volumeGain(speaker.volume), speaker.ctx.currentTime, 0.02);
  renderLive();
}

async function startSpeaker() {
  if (!window.AudioContext || !window.AudioWorkletNode) return;
  const ctx = new AudioContext({sampleRate: SPEAKER_RATE, latencyHint: "interactive"});
  speaker.ctx = ctx;
  const track = () => { window.xfvSpeaker.state = ctx.state; };
  ctx.onstatechange = track;
  track();
  await ctx.audioWorklet.addModule("/static/speaker-worklet.js");
  const node = new AudioWorkletNode(ctx, "xfv-speaker", {
    numberOfInputs: 0, outputChannelCount: [1],
    processorOptions: {targetMs: 60, maxMs: 200},
  });
  node.port.onmessage = (e) => Object.assign(window.xfvSpeaker, e.data);
  const gain = ctx.createGain();
  gain.gain.value = volumeGain(speaker.volume);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  node.connect(gain).connect(analyser).connect(ctx.destination);
  Object.assign(speaker, {node, gain, analyser});
  speakerSocket();
}

function resumeSpeaker() {
  if (speaker.ctx && speaker.ctx.state === "suspended") speaker.ctx.resume().catch(() => {});
}

function speakerSocket() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/api/v1/live/speaker");
  ws.binaryType = "arraybuffer";
  speaker.lastSeq = null;
  ws.onmessage = (e) => {
    const stats = window.xfvSpeaker;
    if (typeof e.data === "string") {
      const notice = JSON.parse(e.data);
      if (notice.type === "call" || notice.type === "idle") speaker.node.port.postMessage({type: "flush"});
      return;
    }
    stats.received++;
    const seq = new DataView(e.data).getUint32(0, true);
    if (speaker.lastSeq !== null && seq > speaker.lastSeq + 1) stats.gaps += seq - speaker.lastSeq - 1;
    speaker.lastSeq = seq;
    // a suspended context plays nothing: do not pile chunks up in the worklet meanwhile
    if (speaker.ctx.state === "running") speaker.node.port.postMessage(e.data, [e.data]);
    else stats.skipped++;
  };
  ws.onopen = () => { speaker.retry = 1000; };
  ws.onclose = () => { // the box restarting, or no live reception on it: try again, slower
    setTimeout(speakerSocket, speaker.retry);
    speaker.retry = Math.min(30000, speaker.retry * 2);
  };
}

// -- status line ----------------------------------------------------------------------------

let lastStatus = null;

async function refreshStatus() {
  try {
    const [h, s] = await Promise.all([
      fetch("/api/v1/health").then((r) => r.json()),
      fetch("/api/v1/sync").then((r) => r.json()),
    ]);
    lastStatus = {ok: h.connected && h.hub_online, depth: s.outbox_depth || 0};
    township = h.township_name || h.township || "";
    if (h.idle_seconds > 0) idle.seconds = h.idle_seconds;
  } catch (e) {
    lastStatus = {ok: false, depth: lastStatus ? lastStatus.depth : 0};
  }
  const t = T[lang];
  $("place").textContent = township;
  $("dot").className = "dot " + (lastStatus.ok ? "ok" : "bad");
  $("state").textContent = lastStatus.ok ? t.ok : t.down;
  $("pending").textContent = lastStatus.depth > 0 ? t.pending(lastStatus.depth) : "";
}

// -- wiring ---------------------------------------------------------------------------------

$("lang").onclick = () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("xfv-lang", lang);
  applyText();
};
$("next").onclick = next;
$("back").onclick = () => go(STEPS[STEPS.indexOf(state.step) - 1]);
$("shoot").onclick = shoot;
$("again").onclick = startOver;
$("print").onclick = () => window.open("/receipt/" + state.receipt.case_no, "_blank");
$("live-request").onclick = requestLive;
$("live-cancel").onclick = async () => {
  if (await livePost("cancel") && live.state.state === "idle") go(state.receipt ? "done" : "consent");
};
$("live-end").onclick = () => livePost("cancel");
$("live-back").onclick = () => go(state.receipt ? "done" : "consent");
$("volume-down").onclick = () => setVolume(speaker.volume - 1);
$("volume-up").onclick = () => setVolume(speaker.volume + 1);
document.addEventListener("pointerdown", resumeSpeaker);
for (const kind of ["pointerdown", "keydown", "input"]) document.addEventListener(kind, touched, true);
$("idle-stay").onclick = touched;
$("idle-clear").onclick = () => { touched(); startOver(); };
$("idle").addEventListener("cancel", touched);
for (const b of document.querySelectorAll(".edit")) b.onclick = () => go(b.dataset.goto);
for (const b of document.querySelectorAll(".cat")) {
  b.onclick = () => { state.category = b.dataset.category; delete state.errors.category; render(); showErrors(); };
}
for (const f of TEXT_FIELDS) {
  $(f).addEventListener("input", () => {
    // Instant feedback for the ID number once it is complete; other errors clear as you type.
    const full = f === "id_number" && $(f).value.replace(/ /g, "").length >= 18;
    if (full || state.errors[f]) {
      const error = full ? fieldError(f) : null;
      if (error) state.errors[f] = error; else delete state.errors[f];
      showErrors();
    }
  });
  $(f).addEventListener("blur", () => {
    if (f === "id_number" && $(f).value.trim()) {
      const error = fieldError(f);
      if (error) state.errors[f] = error; else delete state.errors[f];
      showErrors();
    }
  });
}

lang = localStorage.getItem("xfv-lang") === "en" ? "en" : "zh";
applyText();
setInterval(refreshStatus, 3000);
setInterval(idleTick, 1000);
liveLoop();
startSpeaker().catch((e) => { window.xfvSpeaker.state = "failed: " + e; });
