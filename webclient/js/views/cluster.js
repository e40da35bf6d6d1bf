// #/cluster: the ring (GET /ring), the members with status and liveness
// (GET /cluster, polled), and per node the data request rate and p99, hints
// held and sync progress (each member's /metrics through GET
// /cluster/metrics/{node}). Operations: leave (this node), remove (a dead
// node), repair, each behind a confirmation.

import { h, fill, reconcile, badge, fmtInt, fmtPct, fmtMs, fmtRate, fmtTime } from "../dom.js";
import { state, onChange, colourOf, WINDOW_MS } from "../state.js";
import { request } from "../api.js";
import { ringChart, shares } from "../ring.js";
import { sparkline } from "../chart.js";
import { History } from "../metrics.js";
import { confirm } from "../dialog.js";
import * as notify from "../notify.js";

export function mount(main) {
  const updated = h("span", { class: "muted" });
  const ringBox = h("div", { class: "ring-box" });
  const legend = h("ul", { class: "legend", "aria-label": "Ring members" });
  const ringNote = h("p", { class: "muted small" });
  const membersBody = h("tbody");
  const nodesGrid = h("div", { class: "node-grid" });
  const spanNote = h("span");
  const syncList = h("dl", { class: "stats" });
  const clusterErr = h("div", { class: "inline-error", role: "alert", hidden: true });

  const repairBtn = h("button", { class: "btn", onclick: repair }, "Repair…");
  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Cluster"), h("p", { class: "sub" }, "As this node sees it · ", updated)),
      h("div", { class: "actions" }, repairBtn)),
    clusterErr,
    h("div", { class: "grid-cluster" },
      h("section", { class: "card", "aria-labelledby": "ring-h" },
        h("h2", { id: "ring-h" }, "Ring"),
        h("div", { class: "ring-layout" }, ringBox, legend),
        ringNote),
      h("div", { class: "stack" },
      h("section", { class: "card", "aria-labelledby": "members-h" },
        h("h2", { id: "members-h" }, "Members"),
        h("div", { class: "table-wrap" },
          h("table", { class: "members", id: "members-table" },
            h("thead", {}, h("tr", {},
              h("th", { scope: "col" }, "Member"), h("th", { scope: "col" }, "Status"),
              h("th", { scope: "col" }, "Liveness"), h("th", { scope: "col", class: "num" }, "Replica of"),
              h("th", { scope: "col", class: "num" }, "Heard"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
            membersBody)),
        h("p", { class: "muted small" },
          "Status is the node's place in the ring (gossiped, the same everywhere); liveness is what this node's failure detector says. ",
          "Replica of: the share of the ring a member holds a copy of (shares sum to N).")),
      h("section", { class: "card", "aria-labelledby": "sync-h" },
        h("h2", { id: "sync-h" }, "This node's sync service"),
        h("p", { class: "muted small" }, "Range handoff, anti-entropy, hint delivery and tombstone purge since this node started (GET /cluster → sync)."),
        syncList))),
    h("section", { class: "card", "aria-labelledby": "nodes-h" },
      h("h2", { id: "nodes-h" }, "Nodes"),
      h("p", { class: "muted small" },
        "Data requests (get, put, delete, batch, listing) per second, and their p99 over a sliding 10 s, charted ", spanNote,
        ". Each member's /metrics is read through this node every 2 s while this page is open."),
      nodesGrid));

  function render(what) {
    const c = state.cluster;
    if (state.clusterError) {
      clusterErr.hidden = false;
      const others = c ? c.members.filter((m) => !m.self && m.status === "member" && m.liveness === "alive") : [];
      fill(clusterErr, "This node is not answering; the view shows its last answer. ", state.clusterError,
        others.length ? h("div", {}, "The console of another member: ",
          others.map((m, i) => [i ? ", " : "", h("a", { href: `http://${m.http}/ui/` }, `${m.name} (${m.http})`)])) : null);
    } else clusterErr.hidden = true;
    if (!c) return;
    updated.textContent = `${c.node} · updated ${fmtTime(state.clusterAt)}`;
    if (what !== "metrics") {
      renderRing(c);
      renderMembers(c);
      renderSync(c);
    }
    renderNodes(c);
  }

  function renderRing(c) {
    const primary = new Map();
    if (state.ring) {
      const sh = shares(state.ring);
      state.ring.members.forEach((m, i) => primary.set(m.id, sh[i]));
      fill(ringBox, ringChart(state.ring, { label: `The ring of ${state.ring.members.length} members, coloured by primary owner` }));
      ringNote.textContent = `Outer band: the primary replica of each part of the ring (${state.ring.segments.length} samples, clockwise from the top); ` +
        `inner arcs: each member's whole primary share. A key is kept by its primary and the next ${state.ring.replicas_per_key - 1} distinct members. ` +
        `Ring version ${state.ring.ring_version}.`;
    } else {
      fill(ringBox, h("div", { class: "inline-error", role: "alert" }, "The ring cannot be drawn: ", state.ringError || "loading…"));
      ringNote.textContent = "";
    }
    const inRing = c.members.filter((m) => m.status !== "removed")
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    reconcile(legend, inRing, (m) => m.id, () => h("li"), (li, m) => {
      fill(li,
        h("span", { class: "swatch", style: `background:${colourOf(m.id)}` }),
        h("span", { class: "legend-name" }, m.name),
        h("span", { class: "legend-num", title: "share of primary positions" },
          primary.has(m.id) ? fmtPct(primary.get(m.id)) + " primary" : ""),
        h("span", { class: "legend-num muted", title: "share of the ring this member holds a replica of" },
          fmtPct(m.ownership) + " replica"));
    });
  }

  function renderMembers(c) {
    const rows = [...c.members].sort((a, b) =>
      (a.status === "removed") - (b.status === "removed") || a.name.localeCompare(b.name, "en", { numeric: true }));
    reconcile(membersBody, rows, (m) => m.id, (m) => {
      const tr = h("tr", { "data-node": m.name });
      tr.cells_ = {
        name: h("th", { scope: "row" }), status: h("td"), live: h("td"), own: h("td", { class: "num" }),
        heard: h("td", { class: "num" }), act: h("td", { class: "row-actions" }),
      };
      tr.append(...Object.values(tr.cells_));
      return tr;
    }, (tr, m) => {
      const cl = tr.cells_;
      tr.className = m.status === "removed" ? "removed" : "";
      tr.dataset.status = m.status;
      tr.dataset.liveness = m.liveness;
      fill(cl.name,
        h("span", { class: "swatch", style: `background:${colourOf(m.id)}` }),
        h("span", { class: "member-name" }, m.name),
        m.self ? h("span", { class: "tag" }, "this node") : null,
        h("div", { class: "muted small mono" }, m.http));
      fill(cl.status, badge(m.status));
      fill(cl.live, badge(m.liveness));
      cl.own.textContent = m.status === "removed" ? "–" : fmtPct(m.ownership);
      cl.heard.textContent = m.self ? "–" : fmtMs(m.last_heard_ms_ago) + " ago";
      renderActions(cl.act, m, c);
    });
  }

  function renderActions(td, m, c) {
    // Keep the same button element across polls (focus stays on it).
    let btn = td.querySelector("button");
    const want = m.status === "removed" ? null : m.self ? "leave" : "remove";
    if (!want) { td.replaceChildren(); return; }
    if (!btn || btn.dataset.op !== want) {
      btn = h("button", { class: "btn btn-small", "data-op": want,
        onclick: () => (want === "leave" ? leave() : remove(m.name)) });
      td.replaceChildren(btn);
    }
    if (want === "leave") {
      btn.textContent = "Leave…";
      btn.disabled = m.status !== "member" || c.members.filter((x) => x.status === "member").length < 2;
      btn.title = btn.disabled ? "only a member of a ring of two or more can leave" : "hand this node's ranges to the others and stop it";
      btn.setAttribute("aria-label", `Leave: make ${m.name} leave the cluster`);
    } else {
      btn.textContent = "Remove…";
      btn.disabled = m.liveness !== "down";
      btn.title = btn.disabled ? `remove is for a dead node: ${m.name} is ${m.liveness}` : `take ${m.name} out of the ring for good`;
      btn.setAttribute("aria-label", `Remove ${m.name} from the ring`);
    }
  }

  function renderNodes(c) {
    const now = Date.now();
    // The charts span the last 5 minutes, or, on a page opened more
    // recently, the time since its first sample (at least 10 s): a fresh page
    // draws lines, not a sliver at the right edge.
    let oldest = now;
    for (const hist of state.histories.values()) if (hist.samples.length) oldest = Math.min(oldest, hist.samples[0].t);
    const from = Math.min(now - 10000, Math.max(now - WINDOW_MS, oldest));
    spanNote.textContent = now - from >= WINDOW_MS - 1000 ? "last 5 minutes" : `since ${fmtTime(from)}`;
    const members = c.members.filter((m) => m.status !== "removed")
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    reconcile(nodesGrid, members, (m) => m.id, (m) => h("article", { class: "node-card", "data-node": m.name }), (card, m) => {
      const hist = state.histories.get(m.name) || new History();
      const rate = hist.rate(), p99 = hist.p99();
      const last = hist.last();
      const err = state.metricsErrors.get(m.name);
      const colour = colourOf(m.id);
      const pending = last ? last.rangesPending || 0 : null;
      const peak = state.syncPeak.get(m.name) || 0;
      fill(card,
        h("header", {},
          h("span", { class: "swatch", style: `background:${colour}` }),
          h("h3", {}, m.name), badge(m.status), badge(m.liveness)),
        h("div", { class: "metric-row" },
          h("div", { class: "metric" },
            h("div", { class: "metric-label" }, "Requests"),
            h("div", { class: "metric-value", "data-metric": "rate" }, fmtRate(History.current(rate))),
            sparkline({ points: rate, from, to: now, label: `${m.name} data requests per second`, format: fmtRate, colour })),
          h("div", { class: "metric" },
            h("div", { class: "metric-label" }, "p99 latency"),
            h("div", { class: "metric-value", "data-metric": "p99" }, fmtMs(History.current(p99))),
            sparkline({ points: p99, from, to: now, label: `${m.name} p99 latency`, format: fmtMs, colour, floor: 1 }))),
        h("dl", { class: "stats stats-inline" },
          stat("Hints held", last ? fmtInt(last.hintsHeld) : "–", "writes this node keeps for a replica that missed them"),
          stat("Ranges pending", pending === null ? "–" : fmtInt(pending), "ring ranges still to hand off"),
          stat("Keys sent", last ? fmtInt(last.handoffKeysSent) : "–", "records handed off to their new replicas"),
          stat("Keys received", last ? fmtInt(last.keysReceived) : "–", "records that reached this node by handoff or anti-entropy")),
        pending > 0 ? syncBar(pending, peak) : null,
        err ? h("p", { class: "inline-error small", role: "status" }, err) : null);
    });
  }

  function syncBar(pending, peak) {
    const done = Math.max(0, peak - pending);
    return h("div", { class: "sync-progress" },
      h("label", {}, `Moving ranges: ${fmtInt(done)} of ${fmtInt(peak)} handed off`,
        h("progress", { max: peak, value: done })));
  }

  function renderSync(c) {
    const sy = c.sync || {};
    const rows = [
      ["Ranges pending", sy.ranges_pending], ["Keys handed off", sy.handoff_keys_sent],
      ["Copies dropped after handoff", sy.handoff_keys_dropped], ["Keys received", sy.keys_received],
      ["Anti-entropy exchanges", sy.ae_exchanges], ["Keys compared", sy.ae_keys_compared],
      ["Keys repaired", sy.ae_keys_repaired], ["Hints delivered", sy.hints_delivered],
      ["Tombstones purged", sy.tombstones_purged],
    ];
    fill(syncList, ...rows.map(([k, v]) => stat(k, fmtInt(v))));
  }

  async function leave() {
    const c = state.cluster;
    const others = c.members.filter((m) => !m.self && m.status === "member");
    const ok = await confirm({
      title: `Make ${c.node} leave the cluster?`,
      body: [
        h("p", {}, `${c.node} is the node serving this page. It hands every range it holds to the members that take it over, marks itself removed and stops.`),
        h("p", {}, "This page then loses its node. The console of another member:"),
        h("ul", {}, others.map((m) => h("li", {}, h("a", { href: `http://${m.http}/ui/` }, `${m.name} — http://${m.http}/ui/`)))),
      ],
      ok: `Leave ${c.node}`,
    });
    if (!ok) return;
    const res = await request("POST", "cluster/leave");
    if (res.status === 202) notify.info(`${c.node} is leaving`, "It hands off its ranges (see Ranges pending), then stops.");
    else notify.requestError(`${c.node} cannot leave`, res);
  }

  async function remove(name) {
    const ok = await confirm({
      title: `Remove ${name} from the ring?`,
      body: [
        h("p", {}, `${name} is down. Removing it takes it out of the ring for good: the survivors re-replicate its ranges (handoff, then anti-entropy).`),
        h("p", {}, "If it comes back it is no longer a member. For a running node, use leave on that node instead."),
      ],
      ok: `Remove ${name}`,
    });
    if (!ok) return;
    const res = await request("POST", "cluster/remove", { body: { node: name } });
    if (res.status === 200) notify.info(`${name} was removed`, `the others now re-replicate its ranges`);
    else notify.requestError(`${name} cannot be removed`, res);
  }

  async function repair() {
    const ok = await confirm({
      title: "Start a repair now?",
      body: h("p", {}, "This node starts an anti-entropy round with every peer now: the replicas of each range compare Merkle trees and exchange the keys that differ. Its progress shows under the sync counters."),
      ok: "Start repair", danger: false,
    });
    if (!ok) return;
    const res = await request("POST", "cluster/repair");
    if (res.status === 202) notify.info("Repair started", "anti-entropy with every peer");
    else notify.requestError("The repair did not start", res);
  }

  render("cluster");
  const off = onChange(render);
  return { unmount: off };
}

function stat(label, value, title) {
  return h("div", { class: "stat", title },
    h("dt", {}, label), h("dd", {}, value));
}
