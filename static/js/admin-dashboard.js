/* The charts of the operators' dashboard (the admin index, templates/admin/index.html), drawn with the vendored
   uPlot from the JSON in #dashboard-data. Each `.ops-plot[data-chart][data-window]` gets one chart that follows
   its container's width; the figures are also on the page as text and tables, so the charts are hidden from
   screen readers. */
(function () {
  "use strict";

  const COLOURS = { blue: "#2f6db5", red: "#c62828", orange: "#b35900", purple: "#7b3fa0", green: "#1b7a3d" };
  const HEIGHT = 220;
  // Tick steps for counts (requests, tokens): whole numbers only.
  const WHOLE_STEPS = [];
  for (let power = 1; power <= 1e9; power *= 10) WHOLE_STEPS.push(power, 2 * power, 5 * power);

  // What each chart draws from a window's data: the y axis's label (with its unit) and the series.
  const CHARTS = {
    requests: (w) => ({
      axis: "requests " + w.per,
      whole: true,
      series: [
        { label: "Requests", values: w.requests, stroke: COLOURS.blue },
        { label: "Failed", values: w.errors, stroke: COLOURS.red },
      ],
    }),
    latency: (w) => ({
      axis: "latency (ms)",
      series: [
        { label: "p50 (ms)", values: w.p50, stroke: COLOURS.blue },
        { label: "p95 (ms)", values: w.p95, stroke: COLOURS.orange },
      ],
    }),
    tokens: (w) => ({
      axis: "tokens " + w.per,
      whole: true,
      series: [
        { label: "Input tokens", values: w.input_tokens, stroke: COLOURS.blue },
        { label: "Output tokens", values: w.output_tokens, stroke: COLOURS.purple },
      ],
    }),
    cost: (w) => ({
      axis: "cost (USD " + w.per + ")",
      series: [{ label: "Cost (USD)", values: w.cost, stroke: COLOURS.green }],
    }),
  };

  // Ticks in 24-hour time, and the date at midnight and on ticks a day or more apart.
  function timeTicks(zoned) {
    const hourMinute = uPlot.fmtDate("{HH}:{mm}");
    const dayMonth = uPlot.fmtDate("{D} {MMM}");
    return (u, splits, axis, space, increment) =>
      splits.map((seconds) => {
        const date = zoned(seconds);
        const time = hourMinute(date);
        return increment >= 86400 || time === "00:00" ? dayMonth(date) : time;
      });
  }

  function themeColour(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function draw(element, data) {
    const figures = data.windows[element.dataset.window];
    const make = CHARTS[element.dataset.chart];
    if (!figures || !make) return;
    const chart = make(figures);
    const text = themeColour("--body-fg", "#333");
    const grid = themeColour("--hairline-color", "#e8e8e8");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const zoned = (seconds) => uPlot.tzDate(new Date(seconds * 1000), data.timezone);
    const options = {
      width: Math.max(element.clientWidth, 200),
      height: HEIGHT,
      tzDate: zoned,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { ...axis, label: "time (" + data.timezone + ")", labelSize: 20, values: timeTicks(zoned) },
        { ...axis, label: chart.axis, labelSize: 20, size: 60, ...(chart.whole ? { incrs: WHOLE_STEPS } : {}) },
      ],
      series: [
        { label: "From" },
        ...chart.series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          points: { show: true, size: 5, fill: s.stroke },
        })),
      ],
    };
    const plot = new uPlot(options, [figures.t, ...chart.series.map((s) => s.values)], element);
    new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (width !== plot.width) plot.setSize({ width: width, height: HEIGHT });
    }).observe(element);
  }

  function start() {
    const source = document.getElementById("dashboard-data");
    if (!source || typeof uPlot === "undefined") return; // the page's text and tables still hold the figures
    const data = JSON.parse(source.textContent);
    document.querySelectorAll(".ops-plot[data-chart][data-window]").forEach((element) => draw(element, data));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
