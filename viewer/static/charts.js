// Draws every Plotly figure a page embeds as <script type="application/json" data-chart="ID">
// into the element with that id (plotly.min.js is served by this server, see viewer.functions_pages).
document.addEventListener("DOMContentLoaded", function () {
  if (typeof Plotly === "undefined") return;
  document.querySelectorAll("script[data-chart]").forEach(function (node) {
    var target = document.getElementById(node.dataset.chart);
    if (!target) return;
    var fig = JSON.parse(node.textContent);
    Plotly.newPlot(target, fig.data, fig.layout, {displayModeBar: false, responsive: true});
    target.dataset.drawn = "1";
  });
});
