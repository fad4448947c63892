/* Drumbeat charts: Chart.js (vendored, loaded before this file) under a strict CSP.
 *
 * The server writes each chart's numbers as JSON in <script type="application/json" id="...">
 * (CSP never executes those) and a <canvas data-chart="that id">. This file draws every such
 * canvas on DOMContentLoaded and on htmx:load (swapped fragments, e.g. the performance panel
 * polled every 10 s), and destroys a chart when htmx removes its canvas.
 *
 * JSON shape: {"kind": "line" | "funnel", "labels": [...],
 *              "series": [{"key": "sent", "label": "Sent", "data": [...], "notes": [...]}, ...]}
 * `notes` (optional) are the words the tooltip adds after each number, e.g. "50.0% of contacts
 * who received step 2": the server writes them, so the chart says what the tables say.
 * A "funnel" is a horizontal bar chart (one group of bars per step).
 */
(function () {
  "use strict";

  // Colours come from the stylesheet's tokens, so dark mode and the palette stay in app.css.
  var SERIES_TOKENS = {
    sent: "--primary",
    opened: "--accent",
    clicked: "--success",
    replied: "--warning",
    bounced: "--danger"
  };
  // Dashes tell the lines apart without relying on colour alone.
  var SERIES_DASHES = { sent: [], opened: [6, 3], clicked: [2, 2], replied: [10, 4], bounced: [4, 2, 1, 2] };

  function token(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function readData(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) {
      return null;
    }
    try {
      return JSON.parse(source.textContent);
    } catch (ignored) {
      return null;
    }
  }

  function datasets(data, kind) {
    return (data.series || []).map(function (series) {
      var colour = token(SERIES_TOKENS[series.key] || "--neutral", "#4338ca");
      var set = {
        label: series.label,
        data: series.data,
        notes: series.notes || [],
        borderColor: colour,
        backgroundColor: colour
      };
      if (kind === "line") {
        set.borderDash = SERIES_DASHES[series.key] || [];
        set.pointRadius = data.labels.length > 45 ? 0 : 3;
        set.tension = 0.2;
        set.fill = false;
      } else {
        set.borderWidth = 0;
      }
      return set;
    });
  }

  function config(data) {
    var kind = data.kind === "funnel" ? "funnel" : "line";
    var text = token("--muted", "#556070");
    var grid = token("--border", "#d9dde7");
    var axis = {
      ticks: { color: text, precision: 0 },
      grid: { color: grid },
      beginAtZero: true
    };
    return {
      type: kind === "funnel" ? "bar" : "line",
      data: { labels: data.labels, datasets: datasets(data, kind) },
      options: {
        indexAxis: kind === "funnel" ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        // Polling redraws the panel every 10 s: animating each redraw would only distract.
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                var note = item.dataset.notes[item.dataIndex];
                return item.dataset.label + ": " + item.formattedValue + (note ? " (" + note + ")" : "");
              }
            }
          },
          // A thin sample in the legend shows each line's dash pattern.
          legend: {
            position: "bottom",
            labels: kind === "line" ? { color: text, boxWidth: 28, boxHeight: 2 } : { color: text }
          }
        },
        scales: {
          x: Object.assign({}, axis, kind === "line" ? { ticks: { color: text, maxRotation: 0, autoSkip: true } } : {}),
          y: axis
        }
      }
    };
  }

  function draw(canvas) {
    if (!window.Chart || window.Chart.getChart(canvas)) {
      return;
    }
    var data = readData(canvas);
    if (data && data.labels && data.labels.length) {
      new window.Chart(canvas, config(data));
    }
  }

  function drawAll(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    if (root.matches && root.matches("canvas[data-chart]")) {
      draw(root);
    }
    var canvases = root.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      draw(canvases[i]);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
  });

  document.addEventListener("htmx:load", function (event) {
    drawAll(event.detail && event.detail.elt);
  });

  // htmx cleans up every element it removes: free the chart drawn on a removed canvas.
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    var elt = event.detail && event.detail.elt;
    if (window.Chart && elt && elt.matches && elt.matches("canvas[data-chart]")) {
      var chart = window.Chart.getChart(elt);
      if (chart) {
        chart.destroy();
      }
    }
  });
})();
