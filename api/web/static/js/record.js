// 一企一策档案: the indicators over the years as a chart; the print button.
(function () {
  var print = document.getElementById("print");
  if (print) print.addEventListener("click", function () { window.print(); });
  var el = document.getElementById("indicator-chart");
  var data = document.getElementById("indicator-data");
  if (!el || !data || !window.echarts) return;
  var d = JSON.parse(data.textContent);
  if (!d.years.length) { el.hidden = true; return; }
  var chart = echarts.init(el, null, { renderer: "svg" });
  chart.setOption({
    animation: false,  // drawn at once: printing and screenshots see the whole chart
    tooltip: { trigger: "axis" },
    legend: { data: ["亩均税收（万元/亩）", "用地（亩）", "能耗（吨标准煤）"] },
    xAxis: { type: "category", data: d.years.map(String) },
    yAxis: [{ type: "value", name: "亩均税收" }, { type: "value", name: "用地 / 能耗" }],
    series: [
      { name: "亩均税收（万元/亩）", type: "line", data: d.tax_per_mu, yAxisIndex: 0 },
      { name: "用地（亩）", type: "bar", data: d.land_mu, yAxisIndex: 1 },
      { name: "能耗（吨标准煤）", type: "bar", data: d.energy_tce, yAxisIndex: 1 },
    ],
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
