// The report's trend charts: its data block shaped for the shared chart code (testledger's
// charts.js on the vendored uPlot, both inlined above), drawn once; no network.
(function () {
  "use strict";
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("report-data").textContent);
  data.charts.forEach(function (c) {
    var box = document.getElementById("chart-" + c.name);
    var plot = box.querySelector(".plot");
    window.testledgerCharts.draw(plot, {
      title: c.label,
      x: data.times,
      series: [{ label: c.label, values: data.metrics[c.name], runs: data.run_ids }],
      marks: [],
      link: null
    });
  });
  window.reportRenderMs = performance.now() - t0;
  document.body.setAttribute("data-render-ms", window.reportRenderMs.toFixed(1));
})();
