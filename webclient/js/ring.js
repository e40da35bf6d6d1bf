// The ring as an SVG circle: GET /ring's segments as coloured slices (the
// primary owner of each position, clockwise from the top), and, for a key,
// its position with lines to its replicas (numbered, in preference order)
// and dashed lines to its fallbacks.

import { s } from "./dom.js";
import { colourOf } from "./state.js";

const TAU = Math.PI * 2;

function point(c, r, turn) {
  const a = turn * TAU;
  return [c + r * Math.sin(a), c - r * Math.cos(a)];
}

function f(n) { return n.toFixed(2); }

/** Annulus sector from turn t0 to t1 (fractions of the circle). */
function sector(c, r0, r1, t0, t1) {
  const large = t1 - t0 > 0.5 ? 1 : 0;
  const [ax, ay] = point(c, r1, t0), [bx, by] = point(c, r1, t1);
  const [cx, cy] = point(c, r0, t1), [dx, dy] = point(c, r0, t0);
  return `M${f(ax)},${f(ay)} A${f(r1)},${f(r1)} 0 ${large} 1 ${f(bx)},${f(by)} ` +
    `L${f(cx)},${f(cy)} A${f(r0)},${f(r0)} 0 ${large} 0 ${f(dx)},${f(dy)} Z`;
}

/** segments -> [{owner, from, to}] runs of one owner (indices). */
function runs(segments) {
  const out = [];
  for (let j = 0; j < segments.length; j++) {
    const last = out[out.length - 1];
    if (last && last.owner === segments[j]) last.to = j + 1;
    else out.push({ owner: segments[j], from: j, to: j + 1 });
  }
  return out;
}

/** Primary share of each member index in the segments: [fraction...]. */
export function shares(ring) {
  const counts = new Array(ring.members.length).fill(0);
  for (const o of ring.segments) counts[o]++;
  return counts.map((n) => n / ring.segments.length);
}

/**
 * ring: GET /ring's body. opts.placement: GET /{table}/placement/{key}'s
 * body; opts.answered: names that answered the last request for that key;
 * opts.liveness: name -> liveness; opts.label: the accessible name.
 */
export function ringChart(ring, opts = {}) {
  const size = 320, c = size / 2;
  const rOut = 150, rIn = 124;
  const { placement, answered = [], liveness = new Map() } = opts;
  const svg = s("svg", {
    class: "ring", viewBox: `0 0 ${size} ${size}`, role: "img",
    "aria-label": opts.label || "The ring: each member's share of primary positions",
  });
  const total = ring.segments.length;
  const band = s("g", { class: placement ? "ring-band faded" : "ring-band" });
  const rs = runs(ring.segments);
  if (rs.length === 1) {
    const m = ring.members[rs[0].owner];
    band.append(s("circle", { cx: c, cy: c, r: (rOut + rIn) / 2, fill: "none",
      stroke: colourOf(m.id), "stroke-width": rOut - rIn }, s("title", {}, `${m.name}: the whole ring`)));
  } else {
    for (const r of rs) {
      const m = ring.members[r.owner];
      // stroked in its own colour: no hairline gaps between neighbours
      band.append(s("path", { d: sector(c, rIn, rOut, r.from / total, r.to / total), fill: colourOf(m.id), stroke: colourOf(m.id) },
        s("title", {}, `${m.name}: positions ${(r.from / total * 100).toFixed(1)}–${(r.to / total * 100).toFixed(1)}%`)));
    }
  }
  svg.append(band);
  // quarter ticks, 0 at the top
  for (const t of [0, 0.25, 0.5, 0.75]) {
    const [x0, y0] = point(c, rOut + 2, t), [x1, y1] = point(c, rOut + 8, t);
    svg.append(s("line", { x1: x0, y1: y0, x2: x1, y2: y1, class: "ring-tick" }));
  }
  if (placement) drawPlacement(svg, ring, placement, answered, liveness, c, rIn, rOut);
  else {
    svg.append(shareRing(ring, c, 104, 114));
    svg.append(s("text", { x: c, y: c - 6, class: "ring-center-big", "text-anchor": "middle" },
      String(ring.members.length)));
    svg.append(s("text", { x: c, y: c + 16, class: "ring-center-small", "text-anchor": "middle" },
      ring.members.length === 1 ? "member" : "members"));
    svg.append(s("text", { x: c, y: c + 34, class: "ring-center-small", "text-anchor": "middle" },
      `${(ring.partitions || 0).toLocaleString("en-US")} partitions · N=${ring.n}`));
  }
  return svg;
}

/** Each member's whole primary share as one arc, in name order: the sum of
 * its confetti on the outer band. */
function shareRing(ring, c, r0, r1) {
  const g = s("g", { class: "share-ring" });
  const sh = shares(ring);
  const order = ring.members.map((m, i) => i)
    .sort((a, b) => ring.members[a].name.localeCompare(ring.members[b].name, "en", { numeric: true }));
  let at = 0;
  for (const i of order) {
    if (sh[i] <= 0) continue;
    const m = ring.members[i];
    const gap = order.length > 1 ? 0.004 : 0;
    const d = sh[i] >= 1 ? null : sector(c, r0, r1, at + gap / 2, at + sh[i] - gap / 2);
    g.append(d ? s("path", { d, fill: colourOf(m.id) }, s("title", {}, `${m.name}: ${(sh[i] * 100).toFixed(1)}% of the ring as primary`))
      : s("circle", { cx: c, cy: c, r: (r0 + r1) / 2, fill: "none", stroke: colourOf(m.id), "stroke-width": r1 - r0 }));
    at += sh[i];
  }
  return g;
}

function drawPlacement(svg, ring, p, answered, liveness, c, rIn, rOut) {
  const rNodes = 78, rDot = 15;
  const members = ring.members;
  const at = new Map(); // id -> [x, y]
  members.forEach((m, i) => at.set(m.id, point(c, rNodes, members.length === 1 ? 0 : i / members.length)));
  // Nodes named by placement but not in the ring's list (should not happen,
  // but a removed fallback must not break the drawing).
  const role = new Map();
  p.replicas.forEach((r, i) => role.set(r.id, { kind: "replica", order: i + 1, name: r.name }));
  p.fallbacks.forEach((r, i) => { if (!role.has(r.id)) role.set(r.id, { kind: "fallback", order: i + 1, name: r.name }); });

  // the key's marker on the band
  const [kx, ky] = point(c, (rIn + rOut) / 2, p.angle);
  const [lx, ly] = point(c, rIn - 4, p.angle);
  const lines = s("g", { class: "placement-lines" });
  for (const [id, r] of role) {
    const xy = at.get(id);
    if (!xy) continue;
    lines.append(s("line", {
      x1: lx, y1: ly, x2: xy[0], y2: xy[1],
      class: r.kind === "replica" ? "pl-replica" : "pl-fallback",
      stroke: r.kind === "replica" ? colourOf(id) : undefined,
    }));
  }
  svg.append(lines);

  const answeredSet = new Set(answered);
  for (const m of members) {
    const [x, y] = at.get(m.id);
    const r = role.get(m.id);
    const live = liveness.get(m.name) || "alive";
    const g = s("g", { class: `pl-node ${r ? "pl-node-" + r.kind : "pl-other"} live-${live}` });
    if (answeredSet.has(m.name)) {
      g.append(s("circle", { cx: x, cy: y, r: rDot + 4, class: "pl-answered" }));
    }
    g.append(s("circle", { cx: x, cy: y, r: rDot, fill: colourOf(m.id), class: "pl-dot" }));
    g.append(s("text", { x, y: y + 4, "text-anchor": "middle", class: "pl-order" },
      r ? (r.kind === "replica" ? String(r.order) : "F" + r.order) : ""));
    g.append(s("text", { x, y: y + rDot + 13, "text-anchor": "middle", class: "pl-name" }, m.name));
    const what = r ? (r.kind === "replica" ? `replica ${r.order}` : `fallback ${r.order}`) : "not involved";
    g.append(s("title", {}, `${m.name}: ${what}, ${live}${answeredSet.has(m.name) ? ", answered the last request" : ""}`));
    svg.append(g);
  }
  svg.append(s("circle", { cx: kx, cy: ky, r: 7, class: "pl-key" }, s("title", {}, `key position ${(p.angle * 100).toFixed(2)}% of the ring`)));
}
