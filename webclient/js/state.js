// What every view shares, polled from the node that served the page:
// GET /cluster every 1.5 s, GET /ring when the ring version changes, and each
// member's /metrics (through GET /cluster/metrics/{node}) every 2 s into a
// five-minute history. Views subscribe with onChange().

import { request, paths, describe, missingRoute } from "./api.js";
import { parse, summarise, History } from "./metrics.js";
import * as notify from "./notify.js";

const CLUSTER_MS = 1500;
const METRICS_MS = 2000;
export const WINDOW_MS = 5 * 60 * 1000;

export const state = {
  cluster: null, // the last good GET /cluster body
  clusterError: null, // describe() of the last failure, null once it answers
  clusterAt: 0,
  ring: null, // GET /ring body
  ringError: null,
  histories: new Map(), // member name -> History
  metricsErrors: new Map(), // member name -> text of the last failure
  metricsRoute: true, // false once /cluster/metrics/{node} answered 404 no_route
  syncPeak: new Map(), // member name -> highest ranges_pending seen since it was last 0
};

const listeners = new Set();
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function emit(what) {
  for (const fn of listeners) {
    try { fn(what); } catch (e) { notify.error("The page failed to draw an update", String(e && e.stack || e)); }
  }
}

// -- colours: one per member, stable for the page's life (assigned in name
// order the first time a member is seen, so node1, node2, ... keep theirs).
const PALETTE = ["#3b82c4", "#e8793a", "#4ea05a", "#d9485f", "#8a63c7", "#c9a227",
  "#2ba6a6", "#d16aa8", "#7c6a55", "#6b8e23", "#5c6bc0", "#a1887f"];
const colours = new Map();
let assigned = 0;
export function colourOf(nameOrId) {
  return colours.get(nameOrId) || "#9aa4b2";
}
function assignColours(members) {
  const sorted = [...members].sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  for (const m of sorted) {
    if (!colours.has(m.name)) {
      const c = PALETTE[assigned++ % PALETTE.length];
      colours.set(m.name, c);
      colours.set(m.id, c);
    }
  }
}

export function selfMember() {
  return state.cluster ? state.cluster.members.find((m) => m.self) : null;
}

export function memberByName(name) {
  return state.cluster ? state.cluster.members.find((m) => m.name === name || m.id === name) : null;
}

async function pollCluster() {
  const res = await request("GET", paths.cluster(), { timeoutMs: 4000 });
  if (res.status === 200 && res.body) {
    const prevRing = state.cluster && state.cluster.ring_version;
    state.cluster = res.body;
    state.clusterAt = Date.now();
    if (state.clusterError) notify.clear("e:Lost contact");
    state.clusterError = null;
    assignColours(res.body.members);
    if (res.body.ring_version !== prevRing || (!state.ring && !state.ringError)) loadRing();
  } else {
    const first = !state.clusterError;
    state.clusterError = describe(res);
    if (first) notify.error("Lost contact with the node that served this page", state.clusterError);
  }
  emit("cluster");
}

export async function loadRing() {
  const res = await request("GET", paths.ring(), { params: { segments: 360 }, timeoutMs: 4000 });
  if (res.status === 200 && res.body) {
    state.ring = res.body;
    state.ringError = null;
  } else {
    state.ringError = describe(res);
  }
  emit("ring");
}

async function scrape(member) {
  const useRoute = state.metricsRoute || !member.self;
  const res = useRoute
    ? await request("GET", paths.nodeMetrics(member.id), { timeoutMs: 3000 })
    : await request("GET", paths.metrics(), { timeoutMs: 3000 });
  let h = state.histories.get(member.name);
  if (!h) state.histories.set(member.name, (h = new History(WINDOW_MS)));
  if (res.status === 200) {
    const sample = summarise(parse(res.text), Date.now());
    h.push(sample);
    state.metricsErrors.delete(member.name);
    const peak = state.syncPeak.get(member.name) || 0;
    const pending = sample.rangesPending || 0;
    state.syncPeak.set(member.name, pending === 0 ? 0 : Math.max(peak, pending));
    return;
  }
  if (useRoute && missingRoute(res)) {
    // An older node: only its own /metrics can be read. Say so once per node.
    state.metricsRoute = false;
    state.metricsErrors.set(member.name, describe(res));
    if (member.self) return scrape(member);
    return;
  }
  h.gap(Date.now());
  state.metricsErrors.set(member.name, describe(res));
}

async function pollMetrics() {
  const members = state.cluster ? state.cluster.members.filter((m) => m.status !== "removed") : [];
  await Promise.all(members.map(scrape));
  emit("metrics");
}

function every(ms, fn) {
  // One round at a time: a slow node never piles requests up.
  const loop = async () => {
    try { await fn(); } catch (e) { notify.error("The page failed to poll the node", String(e && e.stack || e)); }
    setTimeout(loop, ms);
  };
  loop();
}

export function start() {
  every(CLUSTER_MS, pollCluster);
  every(METRICS_MS, pollMetrics);
}
