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
  async json(url) {
    const r = await fetch(url);
    if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    return body;
  },
  setup(text, render) {
    const apply = () => {
      document.documentElement.lang = XFV.lang === "zh" ? "zh-CN" : "en";
      for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = text[XFV.lang][n.dataset.i18n];
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
