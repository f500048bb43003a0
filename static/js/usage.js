/* The usage page's chart (templates/quotas/usage.html): tokens and cost per UTC day, drawn with the vendored
   uPlot from the JSON in #usage-data, following its container's width. The same figures are in the page's
   "Per day" table, so the chart is hidden from screen readers. Drawn the way static/js/admin-dashboard.js draws. */
(function () {
  "use strict";

  const HEIGHT = 260;
  const BLUE = "#2f6db5";
  const GREEN = "#1b7a3d";
  const WHOLE_STEPS = [];
  for (let power = 1; power <= 1e9; power *= 10) WHOLE_STEPS.push(power, 2 * power, 5 * power);

  function colour(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function draw(element, data) {
    const seconds = data.days.map((day) => Date.parse(day + "T00:00:00Z") / 1000);
    const utc = (s) => uPlot.tzDate(new Date(s * 1000), "Etc/UTC");
    const text = colour("--ink", "#1d2330");
    const grid = colour("--line", "#d9dee7");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, labelSize: 20 };
    const dayMonth = uPlot.fmtDate("{D} {MMM}");
    const options = {
      width: Math.max(element.clientWidth, 200),
      height: HEIGHT,
      tzDate: utc,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
      scales: {
        x: { time: true },
        tokens: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
        usd: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { ...axis, label: "day (UTC)", values: (u, splits) => splits.map((s) => dayMonth(utc(s))) },
        { ...axis, scale: "tokens", label: "tokens per day", size: 64, incrs: WHOLE_STEPS },
        { ...axis, scale: "usd", side: 1, label: "cost (USD per day)", size: 72, grid: { show: false } },
      ],
      series: [
        { label: "Day" },
        { label: "Tokens", scale: "tokens", stroke: BLUE, width: 2, points: { show: true, size: 5, fill: BLUE } },
        {
          label: "Cost (USD)",
          scale: "usd",
          stroke: GREEN,
          width: 2,
          points: { show: true, size: 5, fill: GREEN },
          value: (u, v) => (v == null ? "" : "$" + v.toFixed(6)),
        },
      ],
    };
    const plot = new uPlot(options, [seconds, data.tokens, data.cost], element);
    element.dataset.axes = options.axes.map((a) => a.label).join("|"); // uPlot draws them on the canvas
    new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (width !== plot.width) plot.setSize({ width: width, height: HEIGHT });
    }).observe(element);
  }

  function start() {
    const source = document.getElementById("usage-data");
    const element = document.getElementById("usage-plot");
    if (!source || !element || typeof uPlot === "undefined") return; // the tables still hold the figures
    draw(element, JSON.parse(source.textContent));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
