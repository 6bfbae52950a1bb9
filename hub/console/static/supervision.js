"use strict";
// The supervision wall (督办): open cases by traffic light at a glance, then every overdue or
// supervised case in the user's jurisdiction, most urgent first. Refreshes every 15 s.
const TEXT = {
  zh: { title: "视频接访 · 督办", wall: "终端监控", cases: "案件", logout: "退出", red: "超期", yellow: "临期",
        green: "正常", list: "督办案件", case_no: "案件编号", township: "乡镇（街道）", state: "办理状态",
        unit: "责任单位", due: "到期日", overdue: "超期天数", reason: "列入原因", empty: "没有督办案件",
        overdue_reason: "超期自动列入", manual: "领导督办" },
  en: { title: "Video Reception · Supervision", wall: "Box wall", cases: "Cases", logout: "Sign out",
        red: "Overdue", yellow: "Due soon", green: "In time", list: "Supervised cases", case_no: "Case no.",
        township: "Township", state: "State", unit: "Responsible unit", due: "Due", overdue: "Days overdue",
        reason: "Why", empty: "No supervised cases", overdue_reason: "overdue", manual: "by a leader" },
};
let data = { lights: { red: 0, yellow: 0, green: 0 }, cases: [] };

async function load() {
  data = await XFV.json("/api/v1/supervision");
  const alerts = await XFV.json("/api/v1/workflow/alerts");
  const box = document.getElementById("alerts");
  box.hidden = alerts.messages.length === 0;
  box.textContent = alerts.messages.join("；");
  render();
}

function render() {
  const { el } = XFV;
  const t = TEXT[XFV.lang];
  for (const light of ["red", "yellow", "green"]) {
    document.getElementById("n-" + light).textContent = data.lights[light];
  }
  document.getElementById("rows").replaceChildren(...data.cases.map((c) => el("tr",
    { "data-case": c.case_no, "data-light": c.light || "none" },
    el("td", {}, el("span", { class: "light " + (c.light === "yellow" ? "amber" : c.light || "grey") }), " ",
      el("a", { href: `/cases/${c.case_no}` }, c.case_no)),
    el("td", {}, c.township_name), el("td", {}, XFV.lang === "en" ? c.state : c.state_label),
    el("td", {}, c.unit_id || "—"), el("td", {}, c.next_due || "—"),
    el("td", {}, c.overdue_days > 0 ? String(c.overdue_days) : "—"),
    el("td", {}, c.supervised_reason === "overdue" ? t.overdue_reason : t.manual))));
  document.getElementById("empty").hidden = data.cases.length > 0;
}

XFV.setup(TEXT, render);
load();
XFV.inboxBadge();
setInterval(XFV.inboxBadge, 60000);
setInterval(load, 15000);
