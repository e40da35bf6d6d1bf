// The console's entry point: hash routes to views, the header's node line,
// and the pollers (state.js). Routes:
//   #/cluster                 ring, members, per-node rate / p99 / sync / hints
//   #/data[/<table>[/<key>]]  tables, key browser, a record and where it lives
//   #/live[/<table>[/<key>]]  a feed of changes over the subscribe stream
//   #/quorum[/<R>/<W>]        predicted staleness and latency for R and W
//                             (GET /pbs) beside the last quorum-lab run

import { h, fill } from "./dom.js";
import { state, onChange, start, selfMember } from "./state.js";
import * as notify from "./notify.js";
import * as clusterView from "./views/cluster.js";
import * as dataView from "./views/data.js";
import * as liveView from "./views/live.js";
import * as quorumView from "./views/quorum.js";

const views = { cluster: clusterView, data: dataView, live: liveView, quorum: quorumView };
let current = null; // {name, view instance}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const parts = raw.split("/").map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const name = parts[0] || "cluster";
  const args = parts.slice(1);
  while (args.length && args[args.length - 1] === "") args.pop();
  return { name, args };
}

function route() {
  const { name, args } = parseHash();
  const main = document.getElementById("main");
  if (!views[name]) {
    location.replace("#/cluster");
    return;
  }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current && current.name === name && current.inst.update) {
    current.inst.update(args);
    return;
  }
  if (current && current.inst.unmount) current.inst.unmount();
  fill(main);
  current = { name, inst: views[name].mount(main, args) };
  document.title = `ringkv · ${name}`;
  const heading = main.querySelector("h1");
  if (heading && document.activeElement !== document.body) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function renderNodeInfo() {
  const el = document.getElementById("node-info");
  const c = state.cluster;
  if (!c) {
    fill(el, h("span", { class: "dot dot-down" }), state.clusterError ? "node unreachable" : "connecting…");
    return;
  }
  const stale = !!state.clusterError;
  const self = selfMember();
  fill(el,
    h("span", { class: `dot ${stale ? "dot-down" : "dot-alive"}`, title: stale ? state.clusterError : "polling /cluster" }),
    h("span", { class: "node-name", title: `node id ${c.id}` }, c.node),
    h("span", { class: "node-meta" },
      ` · cluster ${c.cluster_id.slice(0, 8)} · N=${c.n} R=${c.r} W=${c.w}`,
      self && self.status !== "member" ? ` · ${self.status}` : "",
      stale ? " · not answering" : ""));
}

// The page title says "ringkv" before the first route (the node's test checks
// it) and "ringkv · <view>" after.
window.addEventListener("hashchange", route);
window.addEventListener("error", (e) => notify.error("The page hit a bug", `${e.message} (${e.filename}:${e.lineno})`));
window.addEventListener("unhandledrejection", (e) => notify.error("The page hit a bug", String(e.reason && e.reason.stack || e.reason)));
onChange((what) => { if (what === "cluster") renderNodeInfo(); });
start();
route();
