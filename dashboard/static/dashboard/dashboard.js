// Refresh the dashboard panels and charts every few seconds.
//
// The server renders the panels fragment with Django templates (values are
// escaped there), so this script only swaps it in and feeds the chart data
// it carries to Chart.js. Refreshes pause while the tab is hidden.
(function () {
  "use strict";

  var panels = document.getElementById("panels");
  var status = document.getElementById("refresh-status");
  var intervalMs = Number(panels.dataset.refreshSeconds || 10) * 1000;
  var charts = null;

  function readChartData() {
    var element = document.getElementById("chart-data");
    return element ? JSON.parse(element.textContent) : null;
  }

  function buildCharts(data) {
    if (typeof Chart === "undefined") {
      document.getElementById("chart-unavailable").hidden = false;
      return null;
    }
    var common = {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    };
    var throughput = new Chart(document.getElementById("throughput-chart"), {
      type: "bar",
      data: {
        labels: data.throughput.labels,
        datasets: [
          { label: "succeeded", data: data.throughput.succeeded, backgroundColor: "#2e8b57" },
          { label: "failed or quarantined", data: data.throughput.failed, backgroundColor: "#c0392b" },
        ],
      },
      options: Object.assign({}, common, {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      }),
    });
    var durations = new Chart(document.getElementById("duration-chart"), {
      type: "bar",
      data: {
        labels: data.histogram.labels,
        datasets: [{ label: "jobs", data: data.histogram.jobs, backgroundColor: "#2f5fb3" }],
      },
      options: common,
    });
    return { throughput: throughput, durations: durations };
  }

  function updateCharts(data) {
    if (!charts || !data) {
      return;
    }
    charts.throughput.data.labels = data.throughput.labels;
    charts.throughput.data.datasets[0].data = data.throughput.succeeded;
    charts.throughput.data.datasets[1].data = data.throughput.failed;
    charts.throughput.update("none");
    charts.durations.data.labels = data.histogram.labels;
    charts.durations.data.datasets[0].data = data.histogram.jobs;
    charts.durations.update("none");
  }

  function showStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function refresh() {
    if (document.hidden) {
      window.setTimeout(refresh, intervalMs);
      return;
    }
    fetch(panels.dataset.url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign(panels.dataset.loginUrl);
          return null;
        }
        if (!response.ok) {
          throw new Error("the server returned HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        panels.innerHTML = html;
        updateCharts(readChartData());
        showStatus("Updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function (error) {
        showStatus("Refresh failed (" + error.message + "); showing older data, retrying", true);
      })
      .finally(function () {
        window.setTimeout(refresh, intervalMs);
      });
  }

  charts = buildCharts(readChartData());
  window.setTimeout(refresh, intervalMs);
})();
