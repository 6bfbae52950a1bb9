"use strict";
// Messages the hub refused, newest first (admins only): what came, from which box, and why.
const TEXT = {
  zh: { title: "隔离消息", wall: "终端监控", cases: "案件", logout: "退出",
        intro: "以下消息未被接收：格式错误、校验失败或与数据链不符。原始内容已保存，供核查。",
        when: "接收时间", node: "终端", topic: "主题", reason: "原因", size: "字节",
        empty: "没有隔离的消息" },
  en: { title: "Quarantined messages", wall: "Box wall", cases: "Cases", logout: "Sign out",
        intro: "These messages were refused: malformed, failing verification or breaking a box's chain. The raw payload is kept for review.",
        when: "Received", node: "Box", topic: "Topic", reason: "Reason", size: "Bytes",
        empty: "Nothing quarantined" },
};
let rows = [];

async function load() {
  try {
    rows = (await XFV.json("/api/v1/quarantine")).quarantine;
  } catch (e) {
    const box = document.getElementById("error");
    box.textContent = String(e.message || e);
    box.hidden = false;
  }
  render();
}

function render() {
  const { el } = XFV;
  document.getElementById("rows").replaceChildren(...rows.map((r) =>
    el("tr", { "data-id": String(r.id) }, el("td", {}, XFV.time(r.received_at)),
       el("td", {}, r.node || "–"), el("td", { class: "mono" }, r.topic),
       el("td", {}, r.reason), el("td", {}, String(r.size)))));
  document.getElementById("empty").hidden = rows.length > 0;
}

XFV.setup(TEXT, render);
load();
setInterval(load, 10000);
