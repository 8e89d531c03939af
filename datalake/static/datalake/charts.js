// Draw the datasets page's charts from the JSON the page embeds (no network: Chart.js is
// served with the app). Each canvas gets data-points="N", the number of points drawn,
// once its chart exists: what the browser test waits for.
(function () {
  "use strict";
  const source = document.getElementById("lake-chart-data");
  if (!source || typeof Chart === "undefined") { return; }
  const charts = JSON.parse(source.textContent);
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    const spec = charts[canvas.dataset.chart];
    if (!spec) { return; }
    const datasets = spec.datasets.map(function (d, i) {
      const color = palette[i % palette.length];
      return { label: d.label, data: d.data, borderColor: color, backgroundColor: color,
               spanGaps: true, pointRadius: 2 };
    });
    const chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
                 plugins: { legend: { position: "bottom" } },
                 scales: { x: { stacked: spec.type === "bar" }, y: { stacked: spec.type === "bar", beginAtZero: true } } },
    });
    let points = 0;
    chart.data.datasets.forEach(function (d, i) {
      points += chart.getDatasetMeta(i).data.filter(function (el, j) {
        return d.data[j] !== null && d.data[j] !== undefined;
      }).length;
    });
    canvas.dataset.points = String(points);
  });
})();
