// #/quorum[/<R>/<W>]: what a read quorum R and a write quorum W buy on this
// cluster. The prediction is GET /pbs (docs/pbs.md): a Monte Carlo over the
// replica delays this node measured while coordinating reads and writes, so
// it follows the live traffic; it is asked again every 5 s. Beside it, when
// `tools/quorum-lab --publish` wrote one into the cluster, the last lab
// run's figures (the record quorumlab/latest, docs/quorum-lab.md): measured
// on the lab's own 5-node cluster with injected link delays, not on this one,
// and labelled so.

import { h, fill, fmtInt, fmtTime, fmtDateTime, fmtMs } from "../dom.js";
import { request, paths, describe, missingRoute } from "../api.js";
import { state, onChange, selfMember } from "../state.js";
import { lineChart, niceTicks } from "../chart.js";

const REFRESH_MS = 5000;
const LAB_REFRESH_MS = 30000; // the lab record changes once per published run
const TRIALS = 10000;
const MAX_T = 32; // /pbs answers at most 32 values of t per request
const RANGES = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000];
const DEFAULT_RANGE = 5;
const WARMUP_KEYS = 150; // one write and one read each: 300 requests
const WARMUP_TABLE = "quorumlab-warmup";
const WARMUP_PARALLEL = 6;
const LIVE_COLOUR = "var(--accent)";
const LAB_COLOURS = ["#e8793a", "#4ea05a", "#8a63c7", "#d9485f", "#c9a227", "#2ba6a6"];

// The choices outlive one visit to the view; null: the node's default.
const choice = { r: null, w: null, range: null, auto: true };

/** A probability as a percentage with as many decimals as it needs to not
 * read 100% when it is not. */
export function fmtP(p) {
  if (p === undefined || p === null || Number.isNaN(p)) return "–";
  if (p >= 1) return "100%";
  const d = p < 0.999 ? 1 : p < 0.9999 ? 2 : 3;
  const text = (p * 100).toFixed(d);
  return text === (100).toFixed(d) ? "> 99.999%" : text + "%";
}

/** A predicted latency: microseconds below 1 ms (local replicas answer in
 * a few µs). */
function fmtLat(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  return ms < 1 ? `${Math.round(ms * 1000)} µs` : fmtMs(ms);
}

function roundT(t) {
  return +t.toFixed(4);
}

/**
 * The times to ask /pbs about for a range: the axis ticks and the lab's
 * measured times (rows of the table) first, then an even grid that fills
 * the rest of the 32 for the chart's line.
 */
function tGrid(range, labTs) {
  const ticks = niceTicks(0, range, 5);
  const table = [...new Set([...ticks, ...labTs.filter((t) => t <= range)].map(roundT))]
    .sort((a, b) => a - b).slice(0, MAX_T);
  const all = new Set(table);
  for (const d of [4, 8, 16, 32, 64]) {
    for (let i = 0; i <= d && all.size < MAX_T; i++) all.add(roundT((range * i) / d));
  }
  return { ticks, table, all: [...all].sort((a, b) => a - b) };
}

/** A lab summary as tools/quorumlab/report.py writes it, or null. */
function asSummary(value) {
  if (!value || typeof value !== "object" || !Array.isArray(value.configs)) return null;
  const ok = value.configs.every((c) => c && typeof c.profile === "string" &&
    Number.isInteger(c.n) && Number.isInteger(c.r) && Number.isInteger(c.w));
  return ok ? value : null;
}

/** Profiles of the summary in its own order, each with a fixed colour. */
function labProfiles(summary) {
  const names = Object.keys(summary.profiles || {});
  for (const c of summary.configs) if (!names.includes(c.profile)) names.push(c.profile);
  return names.map((name, i) => ({
    name, colour: LAB_COLOURS[i % LAB_COLOURS.length],
    about: (summary.profiles && summary.profiles[name]) || "",
  }));
}

function selectOptions(sel, n, value) {
  const want = Array.from({ length: n }, (_, i) => String(i + 1)).join(",");
  if (sel.dataset.options !== want) {
    fill(sel, Array.from({ length: n }, (_, i) => h("option", { value: i + 1 }, String(i + 1))));
    sel.dataset.options = want;
  }
  sel.value = String(value);
}

export function mount(main, args) {
  // -- what the view knows
  let n = 0; // replicas per key: the range /pbs takes r and w in
  let r = 0, w = 0, range = DEFAULT_RANGE;
  let pbs = null; // {body, r, w, ts, at}: the last good prediction
  let pbsProblem = null; // {kind: "no_samples"|"error", res}
  let lab = { status: "loading", summary: null, error: null, at: 0 };
  let seq = 0, inflight = false, timer = null, warming = false, unmounted = false;
  let lastWidth = 0;

  // -- elements
  const updated = h("span", { class: "muted", id: "q-updated" });
  const autoCb = h("input", { type: "checkbox", id: "q-auto", checked: choice.auto,
    onchange: (e) => { choice.auto = e.target.checked; schedule(); } });
  const refreshBtn = h("button", { class: "btn", id: "q-refresh", type: "button",
    onclick: () => refresh({ withLab: true }) }, "Refresh");
  const rSel = h("select", { id: "q-r", onchange: (e) => pick(Number(e.target.value), w) });
  const wSel = h("select", { id: "q-w", onchange: (e) => pick(r, Number(e.target.value)) });
  const rangeSel = h("select", { id: "q-range", onchange: (e) => {
    choice.range = Number(e.target.value);
    range = choice.range;
    refresh();
  } }, RANGES.map((v) => h("option", { value: v }, `${v} ms`)));
  const nLine = h("p", { class: "muted small", id: "q-n" });
  const rule = h("p", { class: "q-rule", id: "q-rule" });
  const errBox = h("div", { class: "inline-error", role: "alert", id: "q-error", hidden: true });
  const warmBtn = h("button", { class: "btn btn-primary", type: "button", id: "q-warmup", onclick: warmup },
    `Send ${WARMUP_KEYS * 2} warm-up requests`);
  // outside the card, which goes once the node has enough samples
  const warmStatus = h("p", { class: "small q-warm-status", id: "q-warmup-status", role: "status" });
  const noSamplesText = h("div");
  const noSamples = h("section", { class: "card q-nosamples", id: "q-nosamples", hidden: true,
    "aria-labelledby": "q-nosamples-h" },
    h("h2", { id: "q-nosamples-h" }, "Not enough measured delays yet"),
    noSamplesText,
    h("p", { class: "small" },
      `The button writes ${WARMUP_KEYS} small records (keys w000 to w${WARMUP_KEYS - 1}, overwritten on every click) `,
      `to the table ${WARMUP_TABLE} through this node and reads them back. Nothing is sent until you press it.`),
    h("div", { class: "actions" }, warmBtn));
  const chartBox = h("div", { class: "q-chart", id: "q-chart" });
  const legend = h("ul", { class: "q-legend", id: "q-legend", "aria-label": "Lines of the chart" });
  const tableHead = h("thead");
  const tableBody = h("tbody");
  const visTable = h("table", { class: "q-table", id: "q-table" },
    h("caption", { class: "sr-only" }, "P(a read sees the write) by time after the write's acknowledgement"),
    tableHead, tableBody);
  const latBox = h("div", { id: "q-latency" });
  const kBox = h("div", { id: "q-kstale" });
  const samplesBox = h("div", { id: "q-samples" });
  const labBox = h("div", { id: "q-lab" });
  const result = h("div", { id: "q-result", class: "grid-quorum" },
    h("section", { class: "card q-chart-card", "aria-labelledby": "q-vis-h" },
      h("h2", { id: "q-vis-h" }, "Chance that a read sees the last write, t ms after its ack"),
      chartBox, legend,
      h("div", { class: "table-wrap" }, visTable)),
    h("div", { class: "stack" },
      h("section", { class: "card", "aria-labelledby": "q-lat-h" },
        h("h2", { id: "q-lat-h" }, "Predicted latency"), latBox),
      h("section", { class: "card", "aria-labelledby": "q-k-h" },
        h("h2", { id: "q-k-h" }, "k-staleness"), kBox),
      h("section", { class: "card", "aria-labelledby": "q-s-h" },
        h("h2", { id: "q-s-h" }, "What the prediction rests on"), samplesBox)));

  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Quorum"),
        h("p", { class: "sub" }, "What R and W buy on this cluster, predicted from live replica delays · ", updated)),
      h("div", { class: "actions" },
        h("label", { class: "check", for: "q-auto" }, autoCb, `refresh every ${REFRESH_MS / 1000} s`), refreshBtn)),
    h("section", { class: "card", "aria-labelledby": "q-pick-h" },
      h("h2", { id: "q-pick-h", class: "sr-only" }, "Quorum to predict"),
      h("form", { class: "q-form", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "q-r" }, "R (replicas a read waits for)"), rSel),
        h("div", { class: "field" }, h("label", { for: "q-w" }, "W (replicas a write waits for)"), wSel),
        h("div", { class: "field" }, h("label", { for: "q-range" }, "t from 0 to"), rangeSel)),
      nLine, rule),
    errBox,
    noSamples,
    warmStatus,
    result,
    h("section", { class: "card", "aria-labelledby": "q-lab-h" },
      h("h2", { id: "q-lab-h" }, "The last quorum-lab run"), labBox));

  // -- choices

  function defaultsFromNode(c) {
    const cap = (v) => Math.max(1, Math.min(n, v));
    return { r: cap(c.r), w: cap(c.w) };
  }

  /** Applies the cluster's N (and the hash's or the saved R and W). */
  function setup(a) {
    const c = state.cluster;
    if (!c) return false;
    n = c.replicas_per_key || c.n;
    const d = defaultsFromNode(c);
    const fromHash = a && a.length >= 2 ? [Number(a[0]), Number(a[1])] : null;
    const ok = (v) => Number.isInteger(v) && v >= 1 && v <= n;
    r = fromHash && ok(fromHash[0]) ? fromHash[0] : ok(choice.r) ? choice.r : d.r;
    w = fromHash && ok(fromHash[1]) ? fromHash[1] : ok(choice.w) ? choice.w : d.w;
    selectOptions(rSel, n, r);
    selectOptions(wSel, n, w);
    nLine.textContent = `N = ${n} replicas per key` +
      (n < c.n ? ` (the ring has fewer members than the configured N = ${c.n})` : "") +
      ` · this node's defaults: R = ${d.r}, W = ${d.w} · predictions by ${c.node}, from the requests it coordinated`;
    return true;
  }

  function pick(newR, newW) {
    r = newR;
    w = newW;
    choice.r = r;
    choice.w = w;
    // the hash follows (a bookmark keeps the choice) without a new history
    // entry per click, and without a hashchange that would route again
    history.replaceState(null, "", `#/quorum/${r}/${w}`);
    renderRule();
    refresh();
  }

  function labTimes() {
    if (lab.status !== "ok") return [];
    return lab.summary.configs.filter((c) => c.n === n && c.r === r && c.w === w)
      .flatMap((c) => (c.t_visibility || []).map((p) => p.t_ms)).filter((t) => typeof t === "number");
  }

  /** Until the user picks a range, it is the lab's widest measured t for
   * this N (so its points are on the chart), else 5 ms. */
  function autoRange() {
    if (choice.range) return choice.range;
    const ts = lab.status === "ok"
      ? lab.summary.configs.filter((c) => c.n === n).flatMap((c) => (c.t_visibility || []).map((p) => p.t_ms))
      : [];
    const most = Math.max(0, ...ts.filter((t) => typeof t === "number"));
    return most > 0 ? RANGES.find((v) => v >= most) || RANGES[RANGES.length - 1] : DEFAULT_RANGE;
  }

  // -- fetching

  async function loadLab() {
    const res = await request("GET", paths.key("quorumlab", "latest"), { timeoutMs: 8000 });
    if (unmounted) return;
    lab.at = Date.now();
    if (res.status === 200 && res.body) {
      const summary = asSummary(res.body.value);
      lab = summary ? { status: "ok", summary, error: null, at: lab.at, written: res.body.timestamp }
        : { status: "invalid", summary: null, error: null, at: lab.at };
    } else if (res.status === 404 && res.code === "not_found") {
      lab = { status: "none", summary: null, error: null, at: lab.at };
    } else {
      // keep showing the last good run; say the reload failed
      lab = { ...lab, status: lab.summary ? "ok" : "error", error: describe(res) };
    }
  }

  async function refresh({ withLab = false } = {}) {
    if (unmounted || (!n && !setup(null))) return;
    const my = ++seq;
    inflight = true;
    refreshBtn.disabled = true;
    try {
      if (withLab || lab.status === "loading" || Date.now() - lab.at > LAB_REFRESH_MS) await loadLab();
      if (my !== seq || unmounted) return;
      range = autoRange();
      rangeSel.value = String(range);
      const grid = tGrid(range, labTimes());
      const q = new URLSearchParams({ r, w, trials: TRIALS });
      for (const t of grid.all) q.append("t", t);
      const asked = { r, w, grid };
      const res = await request("GET", `pbs?${q}`, { timeoutMs: 10000 });
      if (my !== seq || unmounted) return; // a newer choice was made meanwhile
      if (res.status === 200 && res.body && Array.isArray(res.body.t_visibility)) {
        pbs = { body: res.body, ...asked, at: Date.now() };
        pbsProblem = null;
      } else if (res.status === 503 && res.code === "no_samples") {
        pbs = null;
        pbsProblem = { kind: "no_samples", res, asked };
      } else {
        pbsProblem = { kind: "error", res, asked };
      }
      render(grid);
    } finally {
      if (my === seq) {
        inflight = false;
        refreshBtn.disabled = false;
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (unmounted || !choice.auto) return;
    timer = setTimeout(async () => {
      try {
        if (!document.hidden && !inflight && !warming) await refresh();
      } finally {
        schedule();
      }
    }, REFRESH_MS);
  }

  /** 300 harmless requests through this node, so its coordinator measures
   * replica delays: only when the user asks. */
  async function warmup() {
    warming = true;
    warmBtn.disabled = true;
    let done = 0, failed = 0, firstError = null;
    const total = WARMUP_KEYS * 2;
    const show = () => { warmStatus.textContent = `Sent ${done} of ${total} requests${failed ? `, ${failed} failed` : ""}…`; };
    show();
    let next = 0;
    const worker = async () => {
      while (next < WARMUP_KEYS && !unmounted) {
        const key = `w${String(next++).padStart(3, "0")}`;
        for (const res of [
          await request("PUT", paths.key(WARMUP_TABLE, key), { body: { value: { warmup: true, at: Date.now() } }, timeoutMs: 5000 }),
          await request("GET", paths.key(WARMUP_TABLE, key), { timeoutMs: 5000 }),
        ]) {
          done++;
          if (!res.ok) { failed++; firstError = firstError || describe(res); }
        }
        show();
      }
    };
    await Promise.all(Array.from({ length: WARMUP_PARALLEL }, worker));
    warmStatus.textContent = `Sent ${done} requests through ${state.cluster ? state.cluster.node : "this node"}` +
      (failed ? `; ${failed} failed, the first: ${firstError}` : "; all answered.");
    warming = false;
    warmBtn.disabled = false;
    await refresh();
  }

  // -- drawing

  function labRows() {
    if (lab.status !== "ok") return [];
    const configs = lab.summary.configs.filter((c) => c.n === n && c.r === r && c.w === w);
    return labProfiles(lab.summary).map((p) => ({ ...p, cfg: configs.find((c) => c.profile === p.name) }))
      .filter((p) => p.cfg);
  }

  function render(grid) {
    renderRule();
    const live = pbs && pbs.r === r && pbs.w === w ? pbs : null;
    const rows = labRows();
    const problem = pbsProblem;
    // errors: shown where the figures would be, the last good ones kept
    if (problem && problem.kind === "error") {
      errBox.hidden = false;
      const res = problem.res;
      // describe() without the 32 values of t in the address
      const what = `GET /pbs?r=${problem.asked.r}&w=${problem.asked.w}&…`;
      fill(errBox, "The prediction could not be read: ", what,
        res.status ? ` → ${res.status}${res.code ? " " + res.code : ""}: ${res.error}` : `: ${res.error}`,
        missingRoute(res) ? " (this node's ringkvd has no /pbs: it is older than the quorum view)" : "",
        live ? h("div", {}, `Showing the prediction of ${fmtTime(live.at)}.`) : null);
    } else errBox.hidden = true;
    noSamples.hidden = !(problem && problem.kind === "no_samples");
    if (!noSamples.hidden) renderNoSamples(problem.res.body || {});
    result.dataset.r = live ? live.r : "";
    result.dataset.w = live ? live.w : "";
    result.dataset.state = live ? "live" : problem ? problem.kind : "loading";
    // nothing to draw: the card above says why
    result.hidden = !live && !rows.length && !!problem;
    updated.textContent = live
      ? `${fmtInt(live.body.trials)} trials in ${live.body.elapsed_ms.toFixed(1)} ms at ${fmtTime(live.at)}`
      : "no prediction yet";
    renderChart(grid, live, rows);
    renderTable(grid, live, rows);
    renderLatency(live, rows);
    renderK(live, rows);
    renderSamples(live);
    renderLab(rows);
  }

  function renderRule() {
    const sum = r + w;
    rule.dataset.strict = String(sum > n);
    if (sum > n) {
      fill(rule, h("strong", {}, `R + W = ${sum} > N = ${n}: a strict quorum.`),
        " Every read quorum overlaps every write quorum, so a read always returns the last acknowledged write: ",
        "100% at every t, whatever the delays. Under failures the default sloppy quorum lets fallbacks outside ",
        "the key's N replicas stand in for down ones (they keep the write as a hint); the read and the write can ",
        "then miss each other until the hint is handed back. With sloppy=false the overlap holds, and a request ",
        "that cannot reach enough of the key's own replicas fails with 503 instead.");
    } else {
      fill(rule, h("strong", {}, `R + W = ${sum} ≤ N = ${n}: a partial quorum.`),
        " A read may ask only replicas the write has not reached yet, so it can miss it; the chance shrinks as ",
        "t grows and the write spreads to all N. R + W > N would make every read see the write. ",
        "Under failures a sloppy quorum (the default) also moves reads and writes to fallbacks, which the ",
        "prediction does not model.");
    }
  }

  function renderNoSamples(body) {
    const have = body.samples || {};
    const needed = body.needed || 20;
    fill(noSamplesText,
      h("p", {}, `The prediction rests on the replica delays ${state.cluster ? state.cluster.node : "this node"} `,
        "measured while it coordinated reads and writes, and it has not seen enough of them yet: ",
        `${needed} of each kind are needed.`),
      h("dl", { class: "stats stats-inline q-have" },
        ["w", "a", "r", "s"].map((k) => h("div", { class: "stat" },
          h("dt", {}, { w: "write apply (W)", a: "write ack (A)", r: "read request (R)", s: "read answer (S)" }[k]),
          h("dd", { class: (have[k] || 0) < needed ? "q-short" : "" }, `${fmtInt(have[k] || 0)} of ${needed}`)))),
      h("p", {}, "Send traffic through this node, or press the button."));
  }

  function renderChart(grid, live, rows) {
    const width = Math.max(280, Math.round(chartBox.clientWidth || 640));
    lastWidth = width;
    const series = [];
    if (live) {
      series.push({ name: "live", colour: LIVE_COLOUR, width: 2.5,
        points: live.body.t_visibility.map((p, i) => ({ x: live.grid.all[i], y: p.p_consistent })) });
    }
    for (const p of rows) {
      const pts = (p.cfg.t_visibility || []).filter((v) => v.t_ms <= range).sort((a, b) => a.t_ms - b.t_ms);
      series.push({ name: `lab-${p.name}-measured`, colour: p.colour, width: 1.5, markers: true,
        points: pts.map((v) => ({ x: v.t_ms, y: v.measured,
          title: `lab ${p.name}, ${v.t_ms} ms: ${fmtP(v.measured)} measured (${fmtInt(v.trials)} reads)` })) });
      series.push({ name: `lab-${p.name}-predicted`, colour: p.colour, width: 1.5, dash: "5 4",
        points: pts.map((v) => ({ x: v.t_ms, y: v.predicted })) });
    }
    const ys = series.flatMap((se) => se.points.map((p) => p.y)).filter((v) => typeof v === "number");
    const low = ys.length ? Math.min(...ys) : 1;
    const ymin = [0.99, 0.9, 0.8, 0.5, 0].find((c) => c <= low - 0.001 || (low >= 1 && c === 0.99)) ?? 0;
    const yTicks = niceTicks(ymin, 1, 4);
    const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
    const summary = [`P(a read sees the last acknowledged write) for R=${r}, W=${w}, N=${n}, t from 0 to ${range} ms`];
    if (live) {
      const tv = live.body.t_visibility;
      summary.push(`predicted here: ${fmtP(tv[0].p_consistent)} at 0 ms, ${fmtP(tv[tv.length - 1].p_consistent)} at ${range} ms`);
    } else summary.push("no prediction for this cluster yet");
    for (const p of rows) {
      const first = (p.cfg.t_visibility || [])[0];
      if (first) summary.push(`lab profile ${p.name}, measured: ${fmtP(first.measured)} at ${first.t_ms} ms`);
    }
    fill(chartBox, lineChart({
      width, height: width < 520 ? 220 : 280,
      x: { min: 0, max: range, ticks: grid.ticks, format: (v) => String(v), label: "t: ms after the write's ack" },
      y: { min: ymin, max: 1, ticks: yTicks, format: (v) => (v * 100).toFixed(yStep < 0.01 ? 1 : 0) + "%",
        label: "P(read sees it)" },
      series, label: summary.join("; "),
    }));
    const item = (colour, dashed, marker, text) => h("li", {},
      h("span", { class: `q-key${dashed ? " q-key-dashed" : ""}${marker ? " q-key-marker" : ""}`, style: `--c:${colour}` }), text);
    fill(legend,
      item(LIVE_COLOUR, false, false, `this cluster, predicted by ${state.cluster ? state.cluster.node : "this node"} from live delays`),
      rows.flatMap((p) => [
        item(p.colour, false, true, `lab · ${p.name} · measured`),
        item(p.colour, true, false, `lab · ${p.name} · predicted by the lab's nodes`),
      ]));
  }

  function renderTable(grid, live, rows) {
    const liveAt = new Map();
    if (live) live.body.t_visibility.forEach((p, i) => liveAt.set(live.grid.all[i], p.p_consistent));
    fill(tableHead, h("tr", {},
      h("th", { scope: "col", class: "num" }, "t (ms)"),
      h("th", { scope: "col", class: "num" }, "this cluster, predicted"),
      rows.flatMap((p) => [
        h("th", { scope: "col", class: "num" }, h("span", { class: "swatch", style: `background:${p.colour}` }), `lab ${p.name}, measured`),
        h("th", { scope: "col", class: "num" }, `lab ${p.name}, predicted`),
      ])));
    fill(tableBody, grid.table.map((t) => {
      const labCells = rows.flatMap((p) => {
        const v = (p.cfg.t_visibility || []).find((x) => x.t_ms === t);
        return [
          h("td", { class: "num", "data-col": `measured-${p.name}`, title: v ? `${fmtInt(v.trials)} reads` : undefined },
            v ? fmtP(v.measured) : "–"),
          h("td", { class: "num muted", "data-col": `predicted-${p.name}` }, v ? fmtP(v.predicted) : "–"),
        ];
      });
      return h("tr", { "data-t": t },
        h("th", { scope: "row", class: "num" }, String(t)),
        h("td", { class: "num", "data-col": "live" }, liveAt.has(t) ? fmtP(liveAt.get(t)) : "–"),
        labCells);
    }));
  }

  function renderLatency(live, rows) {
    const pct = ["p50", "p90", "p99", "p999"];
    const b = live ? live.body : null;
    const line = (label, o) => h("tr", {}, h("th", { scope: "row" }, label),
      pct.map((k) => h("td", { class: "num", "data-col": k }, o ? fmtLat(o[k]) : "–")));
    const parts = [
      h("div", { class: "table-wrap" }, h("table", { class: "q-table q-lat", id: "q-lat-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "here"),
          ["p50", "p90", "p99", "p99.9"].map((k) => h("th", { scope: "col", class: "num" }, k)))),
        h("tbody", {},
          line(`read, R=${r}`, b && b.read_latency_ms),
          line(`write, W=${w}`, b && b.write_latency_ms)))),
      h("p", { class: "muted small" }, "The R-th fastest replica answer and the W-th fastest write ack in the simulated trials: ",
        "replica delays only; the HTTP request around them adds its own time."),
    ];
    const labLat = rows.flatMap((p) => ["read", "write"].map((op) => ({ p, op, v: (p.cfg.latency_ms || {})[op] })))
      .filter((x) => x.v);
    if (labLat.length) {
      // measured, with the lab's own prediction under it: two columns fit
      // the narrow card
      const cell = (m, pr) => h("td", { class: "num" }, fmtLat(m), h("div", { class: "muted small" }, `pred. ${fmtLat(pr)}`));
      parts.push(h("div", { class: "table-wrap" }, h("table", { class: "q-table q-lat", id: "q-lab-lat-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "lab, measured"),
          h("th", { scope: "col", class: "num" }, "p50"), h("th", { scope: "col", class: "num" }, "p99"))),
        h("tbody", {}, labLat.map(({ p, op, v }) => h("tr", {},
          h("th", { scope: "row" }, h("span", { class: "swatch", style: `background:${p.colour}` }), `${p.name} ${op}`),
          cell(v.p50, v.predicted_p50), cell(v.p99, v.predicted_p99)))))),
      h("p", { class: "muted small" }, "Lab: client-side through HTTP, on the lab's cluster; under it, what the lab's nodes predicted."));
    }
    fill(latBox, parts);
  }

  function renderK(live, rows) {
    const ks = [1, 2, 3];
    const liveK = new Map(live ? live.body.k_staleness.map((x) => [x.k, x.p]) : []);
    fill(kBox,
      h("div", { class: "table-wrap" }, h("table", { class: "q-table", id: "q-k-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "k"), h("th", { scope: "col", class: "num" }, "here"),
          rows.map((p) => h("th", { scope: "col", class: "num" }, `lab ${p.name}`)))),
        h("tbody", {}, ks.map((k) => h("tr", { "data-k": k },
          h("th", { scope: "row" }, String(k)),
          h("td", { class: "num", "data-col": "live" }, fmtP(liveK.get(k))),
          rows.map((p) => {
            const v = (p.cfg.k_staleness || []).find((x) => x.k === k);
            return h("td", { class: "num", "data-col": `measured-${p.name}`,
              title: v ? `measured; the lab's nodes predicted ${fmtP(v.predicted)}` : undefined }, v ? fmtP(v.measured) : "–");
          })))))),
      h("p", { class: "muted small" }, "The chance that a read right after the ack returns one of the last k versions. ",
        "Here: the bound 1 − (1 − P(t=0))^k", rows.length ? "; lab: measured." : "."));
  }

  function renderSamples(live) {
    if (!live) {
      fill(samplesBox, h("p", { class: "muted small" }, pbsProblem ? "No prediction yet." : "Loading…"));
      return;
    }
    const sm = live.body.samples || {};
    const shared = sm.clock === "shared";
    samplesBox.dataset.rounds = sm.rounds || 0;
    samplesBox.dataset.clock = sm.clock || "";
    fill(samplesBox,
      h("dl", { class: "stats stats-inline q-stats" },
        stat("Exchanges measured", fmtInt(sm.rounds), "replica answers this node timed as a coordinator", "rounds"),
        stat("Peers", fmtInt(sm.peers), "replicas (this node included) it has delays of"),
        stat("Write delays (W / A)", `${fmtInt(sm.w)} / ${fmtInt(sm.a)}`, "write to applied / ack back; kept per peer, 1024 at most each"),
        stat("Read delays (R / S)", `${fmtInt(sm.r)} / ${fmtInt(sm.s)}`, "request to read / answer back"),
        stat("Clock", shared ? "shared" : "round trip halved", sm.clock, "clock")),
      h("p", { class: "small", id: "q-clock" }, shared
        ? "Shared clock: every replica stamped its part on this machine's own monotonic clock (one kernel), so each round trip was cut into its real one-way delays."
        : `Round trip split in half: ${fmtInt(sm.split_rounds)} of ${fmtInt(sm.rounds)} exchanges came from replicas on another clock, ` +
          "so each of their one-way delays is half the round trip. That assumes symmetric links: the visibility may shift, the latencies do not."));
  }

  function renderLab(rows) {
    const self = selfMember();
    const hostport = self && self.http ? self.http : location.host;
    const howTo = h("p", {}, "To measure one: ", h("code", { class: "q-cmd" }, `tools/quorum-lab --publish ${hostport}`),
      " (from a checkout of ringkv; add --quick for a one-minute run). It starts its own 5-node cluster, ",
      "delays its links per network profile, measures every N, R and W, and writes its summary here as the record ",
      h("a", { href: "#/data/quorumlab/latest" }, "quorumlab/latest"), ".");
    if (lab.status === "loading") { fill(labBox, h("p", { class: "muted" }, "Loading…")); return; }
    if (lab.status === "none") {
      fill(labBox, h("p", { id: "q-lab-none" }, "No quorum-lab run has been published to this cluster."), howTo);
      return;
    }
    if (lab.status === "invalid") {
      fill(labBox, h("p", { class: "inline-error" }, "The record quorumlab/latest is not a lab summary (no configs)."), howTo);
      return;
    }
    if (lab.status === "error") {
      fill(labBox, h("p", { class: "inline-error", role: "alert" }, "The last lab run could not be read: ", lab.error));
      return;
    }
    const sm = lab.summary;
    const ns = [...new Set(sm.configs.map((c) => c.n))].sort((a, b) => a - b);
    const profs = labProfiles(sm);
    fill(labBox,
      lab.error ? h("p", { class: "inline-error small", role: "alert" }, "Reloading it failed: ", lab.error) : null,
      h("p", { class: "q-lab-note", id: "q-lab-note" },
        h("strong", {}, "Measured on the lab's own cluster, not on this one: "),
        "5 ringkvd processes on one machine, with link delays injected by failpoints as each profile says. ",
        "Its figures show what these R and W do under those delays; the line predicted here comes from this cluster's traffic."),
      h("dl", { class: "meta" },
        h("div", {}, h("dt", {}, "run"), h("dd", { class: "mono" }, String(sm.run || "–"))),
        lab.written ? h("div", {}, h("dt", {}, "published"), h("dd", {}, fmtDateTime(lab.written))) : null,
        h("div", {}, h("dt", {}, "commit"), h("dd", { class: "mono" }, String(sm.commit || "–"))),
        h("div", {}, h("dt", {}, "seed"), h("dd", { class: "mono" }, String(sm.seed ?? "–"))),
        h("div", {}, h("dt", {}, "N measured"), h("dd", {}, ns.join(", ")))),
      sm.command ? h("p", { class: "small" }, "Command: ", h("code", { class: "q-cmd" }, String(sm.command))) : null,
      h("ul", { class: "q-profiles", id: "q-lab-profiles" }, profs.map((p) => {
        const has = rows.some((x) => x.name === p.name);
        return h("li", { "data-profile": p.name, class: has ? "" : "muted" },
          h("span", { class: "swatch", style: `background:${p.colour}` }),
          h("strong", {}, p.name), p.about ? `: ${p.about}` : "",
          has ? "" : ` (nothing measured for N=${n}, R=${r}, W=${w})`);
      })),
      rows.length ? null : h("p", { class: "muted", id: "q-lab-missing" },
        `This run has no measurement for N = ${n}, R = ${r}, W = ${w}` +
        (ns.includes(n) ? "." : `: it measured N = ${ns.join(", ")}, and this cluster has N = ${n}.`)));
  }

  function stat(label, value, title, key) {
    return h("div", { class: "stat", title, "data-stat": key },
      h("dt", {}, label), h("dd", {}, value));
  }

  // -- life cycle

  // Redrawn at the new width in the next frame: drawing inside the
  // observer's callback would resize what it observes within its own loop.
  const resize = new ResizeObserver(() => requestAnimationFrame(() => {
    const wdt = Math.round(chartBox.clientWidth);
    if (!unmounted && wdt && Math.abs(wdt - lastWidth) > 4 && n) render(tGrid(range, labTimes()));
  }));
  resize.observe(chartBox);

  const off = onChange((what) => {
    if (what !== "cluster" || !state.cluster) return;
    const was = n;
    const nowN = state.cluster.replicas_per_key || state.cluster.n;
    if (!was || nowN !== was) {
      setup(was ? [r, w] : args);
      renderRule();
      refresh();
    }
  });

  function update(a) {
    if (!state.cluster) return;
    const before = `${r}/${w}`;
    setup(a);
    if (`${r}/${w}` !== before) { renderRule(); refresh(); }
  }

  if (setup(args)) {
    renderRule();
    refresh();
  } else {
    nLine.textContent = "Waiting for this node's /cluster…";
  }
  schedule();
  return {
    update,
    unmount() {
      unmounted = true;
      clearTimeout(timer);
      resize.disconnect();
      off();
    },
  };
}
