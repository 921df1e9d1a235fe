// Draws the overview's charts. The data comes from the page's <script type="application/json"
// id="figures"> element (escaped JSON, never code); this file is the only script besides plotly.js,
// so the Content-Security-Policy can forbid every inline script.
"use strict";
(function () {
  const node = document.getElementById("figures");
  if (!node || typeof Plotly === "undefined") {
    return;
  }
  const figs = JSON.parse(node.textContent);
  for (const [name, fig] of Object.entries(figs)) {
    const target = document.getElementById("fig-" + name);
    if (target) {
      Plotly.newPlot(target, fig.data, fig.layout, {displayModeBar: false, responsive: true});
    }
  }
})();
