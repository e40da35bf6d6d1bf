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

/** Round tick values for [lo, hi]: about `count` of them, at steps of 1, 2
 * or 5 times a power of ten. */
export function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    out.push(+v.toPrecision(12));
  }
  return out;
}

/**
 * A line chart with axes as inline SVG, drawn at the pixel size it is shown
 * at (so its text stays legible on a phone).
 * x, y: {min, max, ticks, format, label}; series: [{name, colour, points:
 * [{x, y, title}], dash, markers, width}] (null y breaks the line);
 * label: the summary screen readers read out. Returns an <svg>.
 */
export function lineChart({ width, height, x, y, series, label }) {
  const pad = { l: 66, r: 14, t: 10, b: 40 };
  const w = width - pad.l - pad.r, ht = height - pad.t - pad.b;
  const px = (v) => pad.l + ((v - x.min) / (x.max - x.min || 1)) * w;
  const py = (v) => pad.t + ht - ((Math.max(y.min, Math.min(y.max, v)) - y.min) / (y.max - y.min || 1)) * ht;
  const svg = s("svg", {
    class: "linechart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label,
  }, s("title", {}, label));
  const grid = s("g", { class: "lc-grid" });
  for (const v of y.ticks) {
    grid.append(s("line", { x1: pad.l, x2: pad.l + w, y1: py(v), y2: py(v) }),
      s("text", { x: pad.l - 6, y: py(v) + 4, "text-anchor": "end", class: "lc-tick" }, y.format(v)));
  }
  for (const v of x.ticks) {
    grid.append(s("line", { x1: px(v), x2: px(v), y1: pad.t, y2: pad.t + ht, class: "lc-vgrid" }),
      s("text", { x: px(v), y: pad.t + ht + 15, "text-anchor": "middle", class: "lc-tick" }, x.format(v)));
  }
  grid.append(
    s("line", { x1: pad.l, x2: pad.l + w, y1: pad.t + ht, y2: pad.t + ht, class: "lc-axis" }),
    s("line", { x1: pad.l, x2: pad.l, y1: pad.t, y2: pad.t + ht, class: "lc-axis" }),
    s("text", { x: pad.l + w / 2, y: height - 4, "text-anchor": "middle", class: "lc-label" }, x.label),
    s("text", { x: 11, y: pad.t + ht / 2, "text-anchor": "middle", class: "lc-label",
      transform: `rotate(-90 11 ${pad.t + ht / 2})` }, y.label));
  svg.append(grid);
  for (const se of series) {
    const g = s("g", { class: "lc-series", "data-series": se.name });
    const runs = [];
    let run = [];
    for (const p of se.points) {
      if (p.y === null || p.y === undefined) { if (run.length) runs.push(run); run = []; continue; }
      run.push(p);
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      if (r.length > 1) {
        g.append(s("polyline", {
          points: r.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" "),
          class: "lc-line", style: `stroke:${se.colour};stroke-width:${se.width || 2}px` +
            (se.dash ? `;stroke-dasharray:${se.dash}` : ""),
        }));
      }
    }
    if (se.markers || se.points.filter((p) => p.y !== null && p.y !== undefined).length === 1) {
      for (const p of se.points) {
        if (p.y === null || p.y === undefined) continue;
        g.append(s("circle", { cx: px(p.x), cy: py(p.y), r: se.markers === "small" ? 2.5 : 4,
          class: "lc-mark", style: `fill:${se.colour}` }, p.title ? s("title", {}, p.title) : null));
      }
    }
    svg.append(g);
  }
  return svg;
}
