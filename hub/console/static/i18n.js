"use strict";
// Shared by the case pages: language choice, element building, the signed-in user.
const XFV = {
  lang: new URLSearchParams(location.search).get("lang") === "en"
    ? "en" : (localStorage.getItem("xfv-lang") || "zh"),
  el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  },
  category: {
    zh: { suggestion: "建议意见", accusation: "检举控告", claim: "申诉求决" },
    en: { suggestion: "suggestion", accusation: "accusation", claim: "claim" },
  },
  time(iso) {
    return iso ? new Date(iso).toLocaleString(XFV.lang === "en" ? "en-GB" : "zh-CN") : "–";
  },
  // Words shared by every page's header (the reminder link), outside each page's own TEXT.
  common: {
    zh: { inbox: "提醒", live_queue: "待接访", live_wall: "实时监看" },
    en: { inbox: "Reminders", live_queue: "Waiting queue", live_wall: "Monitoring wall" },
  },
  // A console write: JSON body, the session cookie and the console header (without it the hub
  // refuses cookie writes). Never throws for an HTTP error: returns {ok, status, body}.
  async post(url, body = {}) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Xfv-Console": "1" },
      body: JSON.stringify(body),
    });
    if (r.status === 401) { location.href = "/login"; }
    let parsed;
    try { parsed = await r.json(); } catch { parsed = { error: `HTTP ${r.status}` }; }
    return { ok: r.ok, status: r.status, body: parsed };
  },
  // The unread count of the signed-in user's reminders, in the header badge `#inbox-count`
  // (hidden at zero). Returns the inbox, or null when it could not be read.
  async inboxBadge(id = "inbox-count") {
    const badge = document.getElementById(id);
    try {
      const box = await XFV.json("/api/v1/inbox");
      if (badge) {
        badge.textContent = String(box.unread);
        badge.dataset.unread = String(box.unread);
        badge.hidden = box.unread === 0;
      }
      return box;
    } catch {
      return null;
    }
  },
  async json(url) {
    const r = await fetch(url);
    if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    return body;
  },
  // "12 秒前" / "12 s ago" since an ISO time; "–" without one.
  ago(iso) {
    if (!iso) return "–";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const [sec, min, hr, day] = XFV.lang === "en"
      ? [" s ago", " min ago", " h ago", " d ago"] : [" 秒前", " 分钟前", " 小时前", " 天前"];
    if (s < 60) return Math.round(s) + sec;
    if (s < 3600) return Math.round(s / 60) + min;
    if (s < 86400) return Math.round(s / 3600) + hr;
    return Math.round(s / 86400) + day;
  },
  // A length of time in its two largest units: "3 天 4 小时" / "3 d 4 h".
  duration(seconds) {
    if (seconds == null) return "–";
    const units = XFV.lang === "en"
      ? [[86400, " d"], [3600, " h"], [60, " min"], [1, " s"]]
      : [[86400, " 天"], [3600, " 小时"], [60, " 分钟"], [1, " 秒"]];
    let rest = Math.floor(seconds);
    const parts = [];
    for (const [size, unit] of units) {
      if (rest >= size || (size === 1 && !parts.length)) {
        parts.push(Math.floor(rest / size) + unit);
        rest %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  },
  // The "live" badge: green while the box stream is open.
  showLive(on, text) {
    const badge = document.getElementById("live");
    badge.className = on ? "live" : "live off";
    badge.textContent = text(on ? "live" : "connecting");
  },
  // Follow the hub's box stream (SSE): `snapshot(edges)` first, then `edge(e)` per change;
  // `live(on)` as the stream opens and drops. Reconnects by itself.
  edgeStream({ snapshot, edge, live }) {
    const source = new EventSource("/api/v1/edges/stream");
    source.addEventListener("open", () => live(true));
    source.addEventListener("snapshot", (ev) => snapshot(JSON.parse(ev.data).edges));
    source.addEventListener("edge", (ev) => edge(JSON.parse(ev.data)));
    source.addEventListener("error", () => {
      live(false);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => XFV.edgeStream({ snapshot, edge, live }), 3000);
      }
    });
  },
  // The signed-in user, shown in the header element `id`; the header keeps only the live
  // reception links the user's role has (the queue, the wall; none while live is off).
  async whoami(id = "who") {
    const me = await XFV.json("/api/v1/me");
    document.getElementById(id).textContent =
      `${me.username} · ${XFV.lang === "en" ? me.role : me.role_name} · ${me.jurisdiction_name}`;
    for (const [href, shown] of [["/live", me.live_queue], ["/wall", me.live_wall]]) {
      for (const a of document.querySelectorAll(`header a[href="${href}"]`)) a.hidden = !shown;
    }
    return me;
  },
  setup(text, render) {
    const apply = () => {
      document.documentElement.lang = XFV.lang === "zh" ? "zh-CN" : "en";
      for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = text[XFV.lang][n.dataset.i18n];
      for (const n of document.querySelectorAll("[data-i18n-common]")) {
        n.textContent = XFV.common[XFV.lang][n.dataset.i18nCommon];
      }
      document.getElementById("lang").textContent = XFV.lang === "zh" ? "English" : "中文";
      render();
    };
    document.getElementById("lang").addEventListener("click", (ev) => {
      ev.preventDefault();
      XFV.lang = XFV.lang === "zh" ? "en" : "zh";
      localStorage.setItem("xfv-lang", XFV.lang);
      apply();
    });
    apply();
  },
};
