"use strict";
// The case list: filters, paging, a light per case (green: every photo verified at the hub).
const TEXT = {
  zh: { title: "视频接访 · 案件", wall: "终端监控", quarantine: "隔离消息", logout: "退出", total: "件", complete: "材料齐全",
        waiting: "待上传材料", category: "类别", all: "全部", from: "起始日期", case_no: "案件编号",
        township: "乡镇（街道）", registered: "登记时间", name: "信访人", id: "身份证号",
        photos: "材料", empty: "没有符合条件的案件", prev: "上一页", next: "下一页",
        state: "办理状态", deadline: "期限", red: "超期", yellow: "临期", green: "正常", supervision: "督办", stats: "统计",
        due: "到期" },
  en: { title: "Video Reception · Cases", wall: "Box wall", quarantine: "Quarantine", logout: "Sign out", total: "cases",
        complete: "complete", waiting: "waiting for photos", category: "Category", all: "All",
        from: "From", case_no: "Case no.", township: "Township", registered: "Registered",
        name: "Petitioner", id: "ID number", photos: "Photos", empty: "No matching cases",
        prev: "Previous", next: "Next", state: "State", deadline: "Deadline", red: "Overdue",
        yellow: "Due soon", green: "In time", supervision: "Supervision", due: "due", stats: "Statistics" },
};
const PAGE = 50;
let offset = 0, data = { total: 0, cases: [] };

async function load() {
  const q = new URLSearchParams({ limit: PAGE, offset });
  for (const key of ["category", "date_from", "light"]) {
    const v = document.getElementById(key).value;
    if (v) q.set(key, v);
  }
  data = await XFV.json("/api/v1/cases?" + q);
  render();
}

function deadlineCell(c) {
  // The case's worst open deadline: a traffic light with its word, and the earliest due date.
  const { el } = XFV;
  if (!c.light) return el("td", { "data-light": "none" }, "—");
  const t = TEXT[XFV.lang];
  return el("td", { "data-light": c.light },
    el("span", { class: "light " + (c.light === "yellow" ? "amber" : c.light), role: "img",
                 "aria-label": t[c.light] }), " ", t[c.light],
    c.next_due ? el("small", {}, ` ${t.due} ${c.next_due}`) : "");
}

function render() {
  const { el } = XFV;
  const rows = document.getElementById("rows");
  rows.replaceChildren(...data.cases.map((c) => {
    const link = el("a", { href: `/cases/${c.case_no}` }, c.case_no);
    return el("tr", { "data-case": c.case_no, "data-complete": String(c.complete) },
      el("td", {}, el("span", { class: "light " + (c.complete ? "green" : "amber") }), " ", link),
      el("td", {}, c.township_name), el("td", {}, XFV.time(c.registered_at)),
      el("td", {}, XFV.category[XFV.lang][c.category] || c.category),
      el("td", {}, c.name), el("td", { class: "mono" }, c.id_masked),
      el("td", {}, `${c.photos_verified}/${c.photos_total}`),
      el("td", {}, XFV.lang === "en" ? c.state.replace("_", " ") : c.state_label),
      deadlineCell(c));
  }));
  const complete = data.cases.filter((c) => c.complete).length;
  document.getElementById("n-total").textContent = data.total;
  document.getElementById("n-complete").textContent = complete;
  document.getElementById("n-waiting").textContent = data.cases.length - complete;
  document.getElementById("empty").hidden = data.cases.length > 0;
  document.getElementById("page").textContent =
    data.total ? `${offset + 1}–${offset + data.cases.length} / ${data.total}` : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = offset + PAGE >= data.total;
}

for (const id of ["category", "date_from", "light"]) {
  document.getElementById(id).addEventListener("change", () => { offset = 0; load(); });
}
document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
document.getElementById("next").addEventListener("click", () => { offset += PAGE; load(); });
XFV.setup(TEXT, render);
load();
XFV.inboxBadge();
setInterval(XFV.inboxBadge, 60000);
setInterval(load, 15000);
