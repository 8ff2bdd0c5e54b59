// 大屏: aggregates from GET /api/v1/dashboard/{year} (the same answer as the API), refreshed.
(function () {
  var root = document.querySelector("[data-api]");
  if (!root || !window.echarts) return;
  var theme = root.getAttribute("data-theme") || null;
  function chart(id) { var el = document.getElementById(id); return el ? echarts.init(el, theme) : null; }
  var township = chart("chart-township"), industry = chart("chart-industry"), measures = chart("chart-measures");
  function set(id, value) { var el = document.getElementById(id); if (el) el.textContent = String(value); }
  function draw(d) {
    set("kpi-listed", d.listed); set("kpi-final", d.final);
    set("kpi-confirmed", d.verification.confirmed); set("kpi-disputed", d.verification.disputed);
    set("kpi-pending", d.verification.pending);
    var t = d.by_township;
    if (township) township.setOption({
      backgroundColor: "transparent", title: { text: "各乡镇街道核实进度" }, tooltip: { trigger: "axis" },
      legend: { top: 28, data: ["已确认", "有异议", "待核实"] }, grid: { top: 70, left: 10, right: 20, bottom: 10, containLabel: true },
      xAxis: { type: "value" },
      yAxis: { type: "category", inverse: true, axisLabel: { interval: 0 }, data: t.map(function (r) { return r.township; }) },
      series: [["已确认", "confirmed"], ["有异议", "disputed"], ["待核实", "pending"]].map(function (s) {
        return { name: s[0], type: "bar", stack: "n", data: t.map(function (r) { return r[s[1]]; }) };
      }),
    });
    var ind = d.by_industry.slice(0, 10);
    if (industry) industry.setOption({
      backgroundColor: "transparent", title: { text: "清单企业数前十的行业（大类）" }, tooltip: {},
      grid: { top: 50, left: 10, right: 20, bottom: 10, containLabel: true }, xAxis: { type: "value" },
      yAxis: { type: "category", inverse: true, axisLabel: { interval: 0 }, data: ind.map(function (r) { return r.division + " " + (r.industry_name || ""); }) },
      series: [{ type: "bar", data: ind.map(function (r) { return r.listed; }) }],
    });
    drawMeasures(d.measures);
    set("updated", new Date().toLocaleTimeString("zh-CN"));
  }
  // 差别化措施: the lists' counts per utility and the ledger's amounts per quarter and kind (万元)
  function drawMeasures(m) {
    if (!m) return;
    if (m.lists) document.querySelectorAll("[data-m]").forEach(function (el) {
      var key = el.getAttribute("data-m").split("."), c = m.lists.by_utility[key[0]];
      if (c) el.textContent = String(c[key[1]]);
    });
    document.querySelectorAll("[data-t]").forEach(function (el) {
      var v = m.ledger.totals[el.getAttribute("data-t")];
      el.textContent = Number(v || 0).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    });
    var q = m.ledger.by_quarter;
    if (measures) measures.setOption({
      backgroundColor: "transparent", title: { text: "差别化措施台账（万元，按季度）" }, tooltip: { trigger: "axis" },
      legend: { top: 28, data: m.ledger.kinds }, grid: { top: 70, left: 10, right: 20, bottom: 10, containLabel: true },
      xAxis: { type: "category", data: q.map(function (r) { return "第" + r.quarter + "季度"; }) },
      yAxis: { type: "value" },
      series: m.ledger.kinds.map(function (k) {
        return { name: k, type: "bar", data: q.map(function (r) { return r[k]; }) };
      }),
    });
  }
  function load() {
    fetch(root.getAttribute("data-api"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(draw)
      .catch(function () { set("updated", "刷新失败，稍后重试"); });
  }
  load();
  setInterval(load, 1000 * Number(root.getAttribute("data-refresh") || 60));
  window.addEventListener("resize", function () { [township, industry, measures].forEach(function (c) { if (c) c.resize(); }); });
})();
