"use strict";
// The statistics dashboard: rate gauges, counts by category and by township (inline SVG drawn
// here, each with a text alternative), figures per group and the month's ranking of units.
const TEXT = {
  zh: { title: "视频接访 · 统计", wall: "终端监控", cases: "案件", stats: "统计", logout: "退出",
        from: "起始日期", to: "截止日期", group_by: "分组", by_unit: "按责任单位",
        by_township: "按乡镇（街道）", by_county: "按区县", month: "通报月份",
        xlsx: "下载月通报（Excel）", csv: "下载月通报（CSV）", overview: "总体情况",
        registered: "件登记", overdue: "件超期",
        dash_note: "“—”表示该项没有可计算的案件（分母为 0）。各项口径见统计说明。",
        counts: "案件分布", groups: "分组统计", ranking: "责任单位排名", col_rank: "排名",
        col_name: "名称", col_code: "编号", col_registered: "登记", col_accept: "及时受理率",
        col_handle: "按期办结率", col_office: "信访部门满意率", col_unit: "责任单位满意率",
        col_part: "参评率", col_overdue: "超期",
        timely_acceptance: "及时受理率", on_time_completion: "按期办结率",
        office_satisfaction: "信访部门满意率", unit_satisfaction: "责任单位满意率",
        participation: "参评率", by_category: "按类别登记件数", by_township_chart: "按乡镇（街道）登记件数",
        no_cases: "本期没有登记案件", period: (a, b, asOf) => `${a} 至 ${b}（超期统计至 ${asOf}）`,
        of: (m, t) => `${m}/${t}`, piece: "件", unranked: "—", none_text: "—",
        chart_alt: (title, items) => `${title}：` + (items.length
          ? items.map(([k, v]) => `${k} ${v} 件`).join("，") : "无"),
        gauge_alt: (title, r) => r.rate == null ? `${title}：无可计算的案件`
          : `${title} ${pct(r.rate)}（${r.met}/${r.total}）` },
  en: { title: "Video Reception · Statistics", wall: "Box wall", cases: "Cases", stats: "Statistics",
        logout: "Sign out", from: "From", to: "To", group_by: "Group by", by_unit: "Responsible unit",
        by_township: "Township", by_county: "County", month: "Report month",
        xlsx: "Monthly report (Excel)", csv: "Monthly report (CSV)", overview: "Overview",
        registered: " registered", overdue: " overdue",
        dash_note: "\"—\" means nothing to compute the rate on (no denominator). See the statistics definitions.",
        counts: "Cases", groups: "By group", ranking: "Ranking of units", col_rank: "Rank",
        col_name: "Name", col_code: "Code", col_registered: "Registered",
        col_accept: "Timely acceptance", col_handle: "On-time completion",
        col_office: "Office satisfaction", col_unit: "Unit satisfaction", col_part: "Rating participation",
        col_overdue: "Overdue",
        timely_acceptance: "Timely acceptance", on_time_completion: "On-time completion",
        office_satisfaction: "Office satisfaction", unit_satisfaction: "Unit satisfaction",
        participation: "Rating participation", by_category: "Registered by category",
        by_township_chart: "Registered by township", no_cases: "No cases registered in the period",
        period: (a, b, asOf) => `${a} to ${b} (overdue as of ${asOf})`,
        of: (m, t) => `${m}/${t}`, piece: "", unranked: "—", none_text: "—",
        chart_alt: (title, items) => `${title}: ` + (items.length
          ? items.map(([k, v]) => `${k} ${v}`).join(", ") : "none"),
        gauge_alt: (title, r) => r.rate == null ? `${title}: nothing to compute`
          : `${title} ${pct(r.rate)} (${r.met}/${r.total})` },
};
const RATES = ["timely_acceptance", "on_time_completion", "office_satisfaction",
               "unit_satisfaction", "participation"];
const SVG = "http://www.w3.org/2000/svg";
let stats = null, ranked = null, failure = "";

function pct(rate) { return rate == null ? "—" : (rate * 100).toFixed(1) + "%"; }
function t() { return TEXT[XFV.lang]; }
function nameOf(g) { return (XFV.lang === "en" ? g.name_en : g.name_zh) || g.key || ""; }

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function colour(rate) {
  if (rate == null) return "#aaa";
  return rate >= 0.9 ? "var(--green)" : rate >= 0.7 ? "var(--amber)" : "var(--red)";
}

// A half-circle gauge of one rate; the caption is its text alternative.
function gauge(id, title, r) {
  const alt = t().gauge_alt(title, r);
  const half = Math.PI * 50;
  const arc = "M10 60 A50 50 0 0 1 110 60";
  const drawn = svg("svg", { viewBox: "0 0 120 70", role: "img", "aria-labelledby": id + "-cap",
                             "data-rate": r.rate == null ? "" : String(r.rate) },
    svg("title", {}, alt),
    svg("path", { d: arc, fill: "none", stroke: "#eee", "stroke-width": 12 }),
    svg("path", { d: arc, fill: "none", stroke: colour(r.rate), "stroke-width": 12,
                  "stroke-dasharray": `${half * (r.rate || 0)} ${half}` }),
    svg("text", { x: 60, y: 58, "text-anchor": "middle", "font-size": 18, "font-weight": "bold" },
        pct(r.rate)));
  const cap = XFV.el("figcaption", { id: id + "-cap" }, alt);
  return XFV.el("figure", { id }, drawn, cap);
}

// Horizontal bars of [label, count] pairs, with the same data as its caption.
function bars(figure, title, items) {
  const alt = t().chart_alt(title, items);
  const max = Math.max(1, ...items.map(([, v]) => v));
  const rowH = 24, labelW = 150, width = 520;
  const drawn = svg("svg", { viewBox: `0 0 ${width} ${Math.max(1, items.length) * rowH + 4}`,
                             role: "img", "aria-labelledby": figure.id + "-cap", width: "100%" },
    svg("title", {}, alt));
  items.forEach(([label, value], i) => {
    const y = i * rowH + 2, w = (width - labelW - 50) * value / max;
    drawn.append(
      svg("text", { x: labelW - 6, y: y + 16, "text-anchor": "end", "font-size": 13 }, label),
      svg("rect", { x: labelW, y: y + 3, width: Math.max(w, value ? 2 : 0), height: rowH - 8,
                    fill: "#4a7bd0", rx: 2 }),
      svg("text", { x: labelW + w + 6, y: y + 16, "font-size": 13 }, String(value)));
  });
  figure.replaceChildren(XFV.el("h3", {}, title), drawn,
    XFV.el("figcaption", { id: figure.id + "-cap" }, alt));
}

function rateCell(r) {
  const cell = XFV.el("td", { title: t().of(r.met, r.total) }, pct(r.rate));
  return cell;
}

function figureCells(g) {
  return [XFV.el("td", {}, String(g.registered)), ...RATES.map((k) => rateCell(g[k])),
          XFV.el("td", {}, String(g.overdue))];
}

function render() {
  const err = document.getElementById("error");
  err.hidden = !failure;
  err.textContent = failure;
  if (stats) {
    const s = stats, tx = t();
    document.getElementById("period").textContent = tx.period(s.from, s.to, s.as_of);
    document.getElementById("n-registered").textContent = s.total.registered;
    document.getElementById("n-overdue").textContent = s.total.overdue;
    document.getElementById("gauges").replaceChildren(
      ...RATES.map((k) => gauge("gauge-" + k, tx[k], s.total[k])));
    const categories = Object.entries(s.total.by_category)
      .map(([k, v]) => [XFV.category[XFV.lang][k] || k, v]);
    bars(document.getElementById("chart-category"), tx.by_category, categories);
    const towns = s.by_township.slice(0, 15)
      .map((x) => [XFV.lang === "en" ? x.name_en : x.name_zh, x.registered]);
    bars(document.getElementById("chart-township"), tx.by_township_chart, towns);
    document.getElementById("groups").replaceChildren(...s.groups.map((g) =>
      XFV.el("tr", { "data-key": g.key ?? "" }, XFV.el("td", {}, nameOf(g)),
        XFV.el("td", { class: "mono" }, g.key ?? ""), ...figureCells(g))));
  }
  if (ranked) {
    document.getElementById("ranking-month").textContent = ranked.month;
    document.getElementById("basis").textContent =
      XFV.lang === "en" ? "Order: " + ranked.basis_en : "排名依据：" + ranked.basis_zh;
    document.getElementById("ranking").replaceChildren(...ranked.ranking.map((g) =>
      XFV.el("tr", { "data-key": g.key ?? "" },
        XFV.el("td", {}, g.rank == null ? t().unranked : String(g.rank)),
        XFV.el("td", {}, nameOf(g)), ...figureCells(g))));
  }
}

function downloads() {
  const month = document.getElementById("month").value;
  for (const kind of ["xlsx", "csv"]) {
    document.getElementById(kind).href = `/api/v1/stats/report.${kind}?month=${month}`;
  }
}

async function load() {
  const q = new URLSearchParams();
  for (const key of ["from", "to", "group_by"]) {
    const v = document.getElementById(key).value;
    if (v) q.set(key, v);
  }
  const month = document.getElementById("month").value;
  try {
    [stats, ranked] = await Promise.all([
      XFV.json("/api/v1/stats?" + q),
      XFV.json("/api/v1/stats/ranking?month=" + encodeURIComponent(month)),
    ]);
    failure = "";
  } catch (e) {
    failure = String(e.message || e);
  }
  downloads();
  render();
}

function init() {
  const params = new URLSearchParams(location.search);
  const now = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);  // China date
  document.getElementById("from").value = params.get("from") || now.slice(0, 8) + "01";
  document.getElementById("to").value = params.get("to") || now;
  document.getElementById("group_by").value = params.get("group_by") || "unit";
  document.getElementById("month").value = params.get("month") || now.slice(0, 7);
  for (const id of ["from", "to", "group_by", "month"]) {
    document.getElementById(id).addEventListener("change", load);
  }
  XFV.setup(TEXT, render);
  XFV.whoami().catch(() => {});
  load();
}

init();
