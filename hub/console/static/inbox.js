"use strict";
// The reminder inbox: deadline reminders (还剩 N 天到期) and overdue notices for the signed-in
// user (the petition office also sees its county's), newest first; unread ones in bold.
const TEXT = {
  zh: { title: "视频接访 · 提醒", cases: "案件", supervision: "督办", logout: "退出", unread: "条未读",
        total: "条提醒", kind: "提醒", case_no: "案件编号", text: "内容", created: "时间", status: "状态",
        empty: "没有提醒", mark: "标为已读", read: "已读", before: (n) => `还剩 ${n} 天到期`,
        overdue: "已超期", failed: "操作未成功：" },
  en: { title: "Video Reception · Reminders", cases: "Cases", supervision: "Supervision",
        logout: "Sign out", unread: "unread", total: "reminders", kind: "Reminder", case_no: "Case no.",
        text: "Message", created: "Time", status: "Status", empty: "No reminders", mark: "Mark as read",
        read: "read", before: (n) => `${n} days left`, overdue: "overdue", failed: "Failed: " },
};
let data = { unread: 0, notifications: [] };

async function load() {
  data = await XFV.json("/api/v1/inbox");
  render();
}

function kindText(kind, t) {
  const before = /^before_(\d+)$/.exec(kind);
  if (before) return t.before(Number(before[1]));
  return kind === "overdue" ? t.overdue : kind;
}

function render() {
  const { el } = XFV, t = TEXT[XFV.lang];
  document.getElementById("rows").replaceChildren(...data.notifications.map((n) => {
    const unread = n.read_at === null;
    const status = unread
      ? el("button", { type: "button", class: "action", "data-read": String(n.id) }, t.mark)
      : el("span", { title: XFV.time(n.read_at) }, t.read);
    return el("tr", { "data-id": String(n.id), "data-unread": String(unread), "data-kind": n.kind,
                      class: unread ? "unread" : "" },
      el("td", {}, el("span", { class: "light " + (n.kind === "overdue" ? "red" : "amber") }), " ",
        kindText(n.kind, t)),
      el("td", {}, el("a", { href: `/cases/${encodeURIComponent(n.case_no)}` }, n.case_no)),
      el("td", {}, n.text), el("td", {}, XFV.time(n.created_at)), el("td", {}, status));
  }));
  document.getElementById("n-unread").textContent = data.unread;
  document.getElementById("n-total").textContent = data.notifications.length;
  document.getElementById("empty").hidden = data.notifications.length > 0;
  const badge = document.getElementById("inbox-count");
  badge.textContent = String(data.unread);
  badge.dataset.unread = String(data.unread);
  badge.hidden = data.unread === 0;
}

document.getElementById("rows").addEventListener("click", async (ev) => {
  const button = ev.target.closest("button[data-read]");
  if (!button) return;
  button.disabled = true;
  const r = await XFV.post(`/api/v1/inbox/${button.dataset.read}/read`);
  const box = document.getElementById("inbox-error");
  box.hidden = r.ok;
  box.textContent = r.ok ? "" : TEXT[XFV.lang].failed + (r.body.error || r.status);
  await load();
});
XFV.setup(TEXT, render);
load();
setInterval(load, 30000);
