// Sparklines as inline SVG: a line and a soft area over a fixed time window,
// so the picture slides as time passes; null values break the line.

import { s } from "./dom.js";

/**
 * points: [{t, v}] with v a number or null; from/to: the time window (ms).
 * label: what the chart shows, read out by screen readers with its latest
 * value (format renders a value). Returns an <svg>.
 */
export function sparkline({ points, from, to, label, format = String, colour = "var(--accent)",
                            width = 240, height = 48, floor = 1 }) {
  const vals = points.filter((p) => p.v !== null && p.t >= from).map((p) => p.v);
  const max = Math.max(floor, ...vals) * 1.15;
  const x = (t) => ((t - from) / (to - from)) * width;
  const y = (v) => height - 2 - (v / max) * (height - 4);
  const runs = [];
  let run = [];
  for (const p of points) {
    if (p.t < from - 5000) continue;
    if (p.v === null) { if (run.length) runs.push(run); run = []; continue; }
    run.push([Math.max(0, x(p.t)), y(p.v)]);
  }
  if (run.length) runs.push(run);

  const last = points.length ? points[points.length - 1].v : null;
  const peak = vals.length ? Math.max(...vals) : null;
  const summary = `${label}: ${last === null ? "no data" : "now " + format(last)}` +
    (peak === null ? "" : `, peak ${format(peak)}`) + ` over the last ${Math.round((to - from) / 60000)} minutes`;

  const svg = s("svg", {
    class: "spark", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": summary,
  }, s("title", {}, summary));
  // quarter grid lines give a sense of scale without axis clutter
  for (const f of [0.25, 0.5, 0.75]) {
    svg.append(s("line", { x1: 0, x2: width, y1: height * f, y2: height * f, class: "spark-grid" }));
  }
  for (const r of runs) {
    const line = r.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    if (r.length > 1) {
      const area = `M${r[0][0].toFixed(1)},${height} L${line.replaceAll(" ", " L")} L${r[r.length - 1][0].toFixed(1)},${height} Z`;
      svg.append(s("path", { d: area, fill: colour, class: "spark-area" }));
      svg.append(s("polyline", { points: line, stroke: colour, class: "spark-line" }));
    } else {
      svg.append(s("circle", { cx: r[0][0], cy: r[0][1], r: 1.8, fill: colour }));
    }
  }
  return svg;
}
