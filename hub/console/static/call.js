"use strict";
// A call with a box: the box's video large, the official's own camera small, mute and camera
// toggles, connection quality from getStats, the case's registered fields, a notes box saved
// to the case, and end call. The session comes from the signaling server: this page's socket
// resumes the session its official accepted (`welcome.resumed` + `session_started`).
const TEXT = {
  zh: { title: "视频接访 · 通话", cases: "案件", waiting_video: "正在连接终端画面…",
        reconnecting: "连接中断，正在重连…", lost: "终端画面已中断，正在重试…",
        mute: "静音", unmute: "取消静音", camera_off: "关闭摄像头", camera_on: "打开摄像头",
        end: "结束接访", confirm_end: "确定结束本次接访？", rtt: "延迟", loss: "丢包",
        bitrate_in: "接收", bitrate_out: "发送", codec: "编码", case: "案件", notes: "接访记录",
        save_note: "保存记录", saving: "保存中…", saved: "已保存", note_empty: "请先填写记录",
        note_failed: "保存未成功：", back: "返回待接访", connecting: "连接中…", live: "实时",
        no_camera: "无法打开摄像头或麦克风，对方将看不到您：", not_found: "该接访不存在或已结束",
        ended: (d, why) => `接访已结束（时长 ${d}，${why}）`, replaced: "本通话已在其他窗口打开",
        reasons: { completed: "正常结束", peer_lost: "对方连接中断", shutdown: "服务器关闭" },
        name: "信访人", phone: "手机号码", category: "类别", unit: "涉及单位或地点",
        content: "诉求内容", township: "登记地点", registered: "登记时间" },
  en: { title: "Video Reception · Call", cases: "Cases", waiting_video: "Connecting to the box…",
        reconnecting: "Connection interrupted, reconnecting…", lost: "Box video lost, retrying…",
        mute: "Mute", unmute: "Unmute", camera_off: "Camera off", camera_on: "Camera on",
        end: "End call", confirm_end: "End this reception?", rtt: "RTT", loss: "loss",
        bitrate_in: "in", bitrate_out: "out", codec: "codec", case: "Case", notes: "Notes",
        save_note: "Save note", saving: "Saving…", saved: "Saved", note_empty: "Write a note first",
        note_failed: "Not saved: ", back: "Back to the queue", connecting: "connecting…", live: "live",
        no_camera: "Camera or microphone unavailable; the box cannot see you: ",
        not_found: "This reception does not exist or has ended",
        ended: (d, why) => `The reception ended (${d}, ${why})`,
        replaced: "This call was opened in another window",
        reasons: { completed: "completed", peer_lost: "the other side dropped", shutdown: "server shutdown" },
        name: "Petitioner", phone: "Phone", category: "Category", unit: "Unit or place concerned",
        content: "Request", township: "Registered at", registered: "Registered" },
};
const { el } = XFV;
const { MediaLink, Quality } = XFV.live;
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
const page = {
  session: null,     // the session_started frame
  theCase: null,     // GET /api/v1/cases/{no}
  local: null,       // the camera + microphone stream
  up: null,          // MediaLink publish
  down: null,        // MediaLink subscribe (the box)
  quality: null,     // the last Quality sample
  ended: null,       // the session_ended frame, or {not_found: true}
  problem: "",
  noteStatus: "",
  notes: [],
};
const quality = new Quality();

function t(key) { return TEXT[XFV.lang][key]; }

function render() {
  const main = document.getElementById("call");
  main.dataset.state = page.ended ? "ended" : (page.down?.state || "connecting");
  const status = document.getElementById("remote-status");
  const videoState = page.down?.state || "connecting";
  status.hidden = videoState === "connected" || Boolean(page.ended);
  status.textContent = videoState === "lost" ? t("lost")
    : videoState === "reconnecting" ? t("reconnecting") : t("waiting_video");
  const audio = page.local?.getAudioTracks()[0], video = page.local?.getVideoTracks()[0];
  const mute = document.getElementById("mute"), cam = document.getElementById("camera");
  mute.textContent = audio && !audio.enabled ? t("unmute") : t("mute");
  mute.setAttribute("aria-pressed", String(Boolean(audio && !audio.enabled)));
  mute.disabled = !audio || Boolean(page.ended);
  cam.textContent = video && !video.enabled ? t("camera_on") : t("camera_off");
  cam.setAttribute("aria-pressed", String(Boolean(video && !video.enabled)));
  cam.disabled = !video || Boolean(page.ended);
  document.getElementById("end").disabled = !page.session || Boolean(page.ended);
  renderQuality();
  renderCase();
  const err = document.getElementById("call-error");
  err.textContent = page.problem;
  err.hidden = !page.problem;
  const ended = document.getElementById("ended");
  ended.hidden = !page.ended;
  if (page.ended) {
    document.getElementById("ended-text").textContent = page.ended.not_found ? t("not_found")
      : t("ended")(XFV.duration(page.ended.duration_s),
                   t("reasons")[page.ended.reason] || page.ended.reason);
  }
  document.getElementById("note-status").textContent = page.noteStatus;
  document.getElementById("saved-notes").replaceChildren(...page.notes.map((n) =>
    el("li", {}, el("span", { class: "by" }, XFV.time(n.at)), " ", n.text)));
}

function renderQuality() {
  const q = page.quality;
  const box = document.getElementById("quality");
  const light = q ? q.light : "grey";
  box.dataset.light = light;
  box.dataset.framesDecoded = String(q ? q.framesDecoded : 0);
  box.dataset.codec = q?.codec || "";
  document.getElementById("quality-light").className = "light " + light;
  const fmt = (v, unit, digits = 0) => (v == null ? "–" : v.toFixed(digits) + unit);
  document.getElementById("q-rtt").textContent = fmt(q?.rtt, " ms");
  document.getElementById("q-loss").textContent = fmt(q?.loss, " %", 1);
  document.getElementById("q-in").textContent = fmt(q?.inKbps, " kbit/s");
  document.getElementById("q-out").textContent = fmt(q?.outKbps, " kbit/s");
  document.getElementById("q-codec").textContent =
    q?.codec ? q.codec.replace("video/", "") + (q.decoder ? ` (${q.decoder})` : "") : "–";
}

function renderCase() {
  const c = page.theCase, t_ = TEXT[XFV.lang];
  const caseNo = c?.case_no || page.session?.case_no || "";
  const link = document.getElementById("case-no");
  link.textContent = caseNo;
  link.href = caseNo ? `/cases/${encodeURIComponent(caseNo)}` : "#";
  if (!c) return;
  const rows = [["name", c.name], ["phone", c.phone],
    ["category", XFV.category[XFV.lang][c.category]], ["unit", c.concerned_unit],
    ["content", c.content], ["township", c.township_name], ["registered", XFV.time(c.registered_at)]];
  document.getElementById("case-fields").replaceChildren(...rows.flatMap(([k, v]) =>
    [el("dt", {}, t_[k]), el("dd", { "data-field": k }, v || "–")]));
}

function tickElapsed() {
  const s = page.session;
  if (!s || page.ended) return;
  const secs = Math.max(0, Math.floor((Date.now() - Date.parse(s.started_at)) / 1000));
  const two = (n) => String(n).padStart(2, "0");
  document.getElementById("elapsed").textContent =
    (secs >= 3600 ? `${Math.floor(secs / 3600)}:` : "") + `${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}`;
}

async function sampleQuality() {
  if (page.ended || (!page.up?.pc && !page.down?.pc)) return;
  try {
    page.quality = await quality.sample(page.up?.pc, page.down?.pc);
    renderQuality();
  } catch (err) {
    console.warn("getStats:", err);
  }
}

let cameraAsked = null;  // one getUserMedia, however many session_started frames come

async function startMedia(session) {
  const box = session.peers.find((p) => p.part === "box");
  if (!cameraAsked) cameraAsked = openCamera();
  await cameraAsked;
  if (page.ended) return;
  if (page.local && !page.up) {
    page.up = new MediaLink(signaling, { sessionId, direction: "publish", stream: page.local,
                                         onState: render });
    page.up.start();
  }
  if (!page.down) {
    page.down = new MediaLink(signaling, { sessionId, direction: "subscribe", source: box?.sub,
      onState: render,
      onTrack(stream) {
        const video = document.getElementById("remote");
        if (video.srcObject !== stream) video.srcObject = stream;
      } });
    page.down.start();
  }
  render();
}

async function openCamera() {
  try {
    page.local = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480, frameRate: 15 }, audio: true });
    document.getElementById("self").srcObject = page.local;
  } catch (err) {
    page.problem = t("no_camera") + err.message;  // the official still sees and hears the box
  }
}

function stopMedia() {
  page.up?.close();
  page.down?.close();
  for (const track of page.local?.getTracks() || []) track.stop();
}

function finish(ended) {
  page.ended = ended;
  stopMedia();
  signaling.stop();
  render();
}

const signaling = new XFV.live.Signaling({
  onState(state) {
    XFV.showLive(state === "open", t);
    if (state === "refused") { page.problem = t("replaced"); stopMedia(); render(); }
  },
  onFrame(frame) {
    if (frame.type === "welcome" && frame.session_id !== sessionId && !page.ended) {
      finish({ not_found: true });
    } else if (frame.type === "session_started" && frame.session_id === sessionId) {
      const first = !page.session;
      page.session = frame;
      if (first) loadCase(frame.case_no);
      startMedia(frame);
      // a rejoin after a signaling drop: the relay kept our media unless it failed meanwhile
      if (page.down?.state === "lost") page.down.restart();
      if (page.up?.state === "lost") page.up.restart();
    } else if (frame.type === "session_ended" && frame.session_id === sessionId) {
      finish(frame);
    }
  },
});

async function loadCase(caseNo) {
  try {
    page.theCase = await XFV.json(`/api/v1/cases/${encodeURIComponent(caseNo)}`);
  } catch (err) {
    page.problem = String(err.message || err);
  }
  render();
}

document.getElementById("mute").addEventListener("click", () => {
  for (const track of page.local?.getAudioTracks() || []) track.enabled = !track.enabled;
  render();
});
document.getElementById("camera").addEventListener("click", () => {
  for (const track of page.local?.getVideoTracks() || []) track.enabled = !track.enabled;
  render();
});
document.getElementById("end").addEventListener("click", () => {
  if (!page.session || page.ended || !confirm(t("confirm_end"))) return;
  signaling.send({ type: "end", session_id: sessionId, reason: "completed" });
});
document.getElementById("save-note").addEventListener("click", async () => {
  const box = document.getElementById("note");
  const text = box.value.trim();
  const caseNo = page.session?.case_no;
  if (!text || !caseNo) { page.noteStatus = t("note_empty"); render(); return; }
  const button = document.getElementById("save-note");
  button.disabled = true;
  page.noteStatus = t("saving");
  render();
  const r = await XFV.post(`/api/v1/cases/${encodeURIComponent(caseNo)}/notes`, { text });
  button.disabled = false;
  if (r.ok) {
    page.notes.unshift({ text, at: new Date().toISOString() });
    box.value = "";
    page.noteStatus = t("saved");
  } else {
    page.noteStatus = t("note_failed") + (r.body.error || r.status);
  }
  render();
});
window.addEventListener("pagehide", () => { stopMedia(); signaling.stop(); });

XFV.setup(TEXT, () => {
  document.title = t("title");
  XFV.showLive(signaling.open, t);
  render();
});
XFV.whoami().catch(console.warn);
signaling.start();
setInterval(sampleQuality, 1000);
setInterval(tickElapsed, 1000);
