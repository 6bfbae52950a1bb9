"use strict";
// One case: the registered fields, the photos from the blob store, the timeline.
const TEXT = {
  zh: { title: "案件详情", list: "案件列表", logout: "退出", photos: "证明材料", timeline: "办理过程",
        reveal: "显示完整身份证号（将记录查看）", name: "信访人", id: "身份证号", phone: "手机号码",
        address: "住址", category: "类别", unit: "涉及单位或地点", content: "诉求内容",
        township: "登记地点", registered: "登记时间", nophoto: "无", waiting: "上传中",
        kinds: { registered: "登记", photo_added: "补充材料", photos_verified: "材料已全部核验" } },
  en: { title: "Case", list: "Cases", logout: "Sign out", photos: "Documents", timeline: "Timeline",
        reveal: "Show full ID number (the view is logged)", name: "Petitioner", id: "ID number",
        phone: "Phone", address: "Address", category: "Category", unit: "Unit or place concerned",
        content: "Request", township: "Registered at", registered: "Registered", nophoto: "none",
        waiting: "uploading",
        kinds: { registered: "registered", photo_added: "photo added", photos_verified: "all photos verified" } },
};
const caseNo = decodeURIComponent(location.pathname.split("/").pop());
let data = null;

async function load(reveal = false) {
  data = await XFV.json(`/api/v1/cases/${encodeURIComponent(caseNo)}${reveal ? "?reveal=id_number" : ""}`);
  render();
}

function render() {
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
  document.getElementById("timeline").replaceChildren(...data.timeline.map((e) =>
    el("li", { "data-kind": e.kind }, el("b", {}, t.kinds[e.kind] || e.kind), " ",
       el("span", {}, XFV.time(e.ts)))));
}

document.getElementById("reveal").addEventListener("click", () => load(true));
XFV.setup(TEXT, render);
load();
