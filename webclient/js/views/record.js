// One record (#/data/<table>/<key>): its value or its siblings side by side
// with a way to resolve them, conditional create, edit, delete; the quorum
// knobs for each request and what a 503 means; where the key lives
// (GET /{table}/placement/{key}) and, for each request, which replicas
// answered and which fallbacks stood in (X-Ringkv-Replicas /
// X-Ringkv-Fallbacks) and how long it took. The record follows other
// writers through GET /{table}/subscribe/{key}.

import { h, fill, badge, fmtMs, fmtTime, fmtDateTime } from "../dom.js";
import { request, paths, describe } from "../api.js";
import { state, onChange, colourOf } from "../state.js";
import { ringChart } from "../ring.js";
import { Subscription } from "../live.js";
import { confirm } from "../dialog.js";

// The quorum knobs outlive one record: "" means the node's default.
export const knobs = { r: "", w: "", sloppy: true, timeout: "" };

const LOG_MAX = 25;

function quorumParams(op) {
  const p = {};
  if (op === "GET" && knobs.r) p.r = knobs.r;
  if (op !== "GET" && knobs.w) p.w = knobs.w;
  if (!knobs.sloppy) p.sloppy = "false";
  if (knobs.timeout) p.timeout_ms = knobs.timeout;
  return p;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** The fields of object values that not every sibling agrees on. */
export function differingFields(values) {
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!values.every(isObj)) return [];
  const keys = new Set(values.flatMap((v) => Object.keys(v)));
  return [...keys].filter((k) => new Set(values.map((v) => JSON.stringify(v[k]))).size > 1);
}

/** A starting point for a merge of sibling values (newest last). */
export function suggestMerge(values) {
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (values.every(isObj)) return Object.assign({}, ...values);
  if (values.every(Array.isArray)) {
    const seen = new Set(), out = [];
    for (const arr of values) for (const v of arr) {
      const k = JSON.stringify(v);
      if (!seen.has(k)) { seen.add(k); out.push(v); }
    }
    return out;
  }
  if (values.every((v) => typeof v === "number")) return Math.max(...values);
  return values[values.length - 1];
}

export function mountRecord(el, table, key) {
  let rec = null; // {kind: "value"|"missing"|"siblings", value, context, timestamp, owner, count, siblings}
  let editing = null; // an edit in progress: {base: the context it started from, create: a create form}
  let placement = null, placementErr = null, placementSig = "";
  let lastAnswer = null; // the last quorum answer (for the drawing)
  const log = [];
  const own = new Set(); // "timestamp|value" of this page's writes: their echo is not "someone else"
  const inFlight = new Map(); // value JSON -> writes of it not answered yet (the echo can come first)
  let alive = true;

  let knobsSig = "";
  const rSel = h("select", { id: "knob-r", onchange: (e) => { knobs.r = e.target.value; } });
  const wSel = h("select", { id: "knob-w", onchange: (e) => { knobs.w = e.target.value; } });

  // -- skeleton
  const liveDot = h("span", { class: "live-state", role: "status" }, "connecting…");
  const outcome = h("div", { class: "outcome", "aria-live": "polite" });
  const body = h("div", { class: "record-body" });
  const editNotice = h("div", { class: "notice notice-warn", hidden: true, role: "status" });
  const placeBox = h("div", { class: "placement" });
  const logBody = h("tbody");

  const reloadBtn = h("button", { class: "btn", id: "reload-btn", onclick: () => load() }, "Reload");
  const deleteBtn = h("button", { class: "btn btn-danger-ghost", onclick: del }, "Delete…");
  el.append(
    h("section", { class: "card record-card", "aria-labelledby": "rec-h" },
      h("div", { class: "record-head" },
        h("div", {},
          h("div", { class: "crumbs muted small" }, "table ", h("a", { href: `#/data/${encodeURIComponent(table)}` }, table)),
          h("h2", { id: "rec-h", class: "record-key mono" }, key)),
        h("div", { class: "actions" }, liveDot, reloadBtn, deleteBtn,
          h("a", { class: "btn btn-ghost", href: `#/live/${encodeURIComponent(table)}/${encodeURIComponent(key)}` }, "Feed"))),
      knobsForm(),
      outcome, editNotice, body),
    h("div", { class: "grid-record" },
      h("section", { class: "card", "aria-labelledby": "place-h" },
        h("h2", { id: "place-h" }, "Where this key lives"), placeBox),
      h("section", { class: "card", "aria-labelledby": "log-h" },
        h("h2", { id: "log-h" }, "Requests"),
        h("p", { class: "muted small" }, "Each request from this page for this key: the replicas that answered or acknowledged (X-Ringkv-Replicas), the fallbacks that stood in (X-Ringkv-Fallbacks), and the time to the full answer."),
        h("div", { class: "table-wrap" },
          h("table", { class: "log", id: "request-log" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Request"),
              h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Latency"),
              h("th", { scope: "col" }, "Replicas"), h("th", { scope: "col" }, "Fallbacks"))),
            logBody)))));

  // -- quorum knobs
  // The choices follow the cluster's N and default R / W (they arrive with
  // the first GET /cluster, maybe after this record was opened).
  function knobChoices() {
    const c = state.cluster || { n: 3, r: "?", w: "?" };
    const sig = `${c.n}/${c.r}/${c.w}`;
    if (sig === knobsSig) return;
    knobsSig = sig;
    const opts = (cur, def) => [h("option", { value: "" }, `default (${def})`),
      ...Array.from({ length: c.n }, (_, i) => h("option", { value: String(i + 1), selected: String(i + 1) === cur }, String(i + 1)))];
    fill(rSel, opts(knobs.r, c.r));
    fill(wSel, opts(knobs.w, c.w));
  }

  function knobsForm() {
    knobChoices();
    const r = rSel, w = wSel;
    const sloppy = h("input", { type: "checkbox", id: "knob-sloppy", checked: knobs.sloppy,
      onchange: (e) => { knobs.sloppy = e.target.checked; } });
    const timeout = h("input", { type: "number", id: "knob-timeout", min: 1, max: 3600000, placeholder: "default",
      value: knobs.timeout, inputmode: "numeric", onchange: (e) => { knobs.timeout = e.target.value; } });
    return h("fieldset", { class: "knobs" },
      h("legend", {}, "Quorum for the next requests"),
      h("label", { for: "knob-r" }, "r (reads)"), r,
      h("label", { for: "knob-w" }, "w (writes)"), w,
      h("label", { class: "check" }, sloppy, "sloppy quorum (fallbacks may stand in)"),
      h("label", { for: "knob-timeout" }, "timeout ms"), timeout);
  }

  // -- requests
  async function call(op, what, opts) {
    const res = await request(op, paths.key(table, key), opts);
    if (!alive) return res;
    lastAnswer = res.status ? res : lastAnswer;
    log.unshift({ res, what });
    log.length = Math.min(log.length, LOG_MAX);
    renderLog();
    renderPlacement();
    return res;
  }

  async function load() {
    const res = await call("GET", "read", { params: { siblings: "all", ...quorumParams("GET") } });
    if (!alive) return;
    if (res.status === 200 && res.body) {
      rec = { kind: "value", ...res.body, count: res.body.siblings };
    } else if (res.status === 300 && res.body) {
      rec = { kind: "siblings", context: res.body.context, siblings: res.body.siblings };
    } else if (res.status === 404 && res.code === "not_found") {
      rec = { kind: "missing", context: res.body && res.body.context };
    } else {
      showOutcome(res, "GET");
      return;
    }
    showOutcome(res, "GET");
    if (!editing) renderBody();
  }

  async function write(value, { context, ifMatch, ifNoneMatch, what }) {
    const headers = {};
    if (ifMatch && context) headers["If-Match"] = `"${context}"`;
    if (ifNoneMatch) headers["If-None-Match"] = "*";
    const payload = { value };
    if (context) payload.context = context;
    const sent = JSON.stringify(value);
    inFlight.set(sent, (inFlight.get(sent) || 0) + 1);
    const res = await call("PUT", what, { params: quorumParams("PUT"), headers, body: payload });
    if (inFlight.get(sent) > 1) inFlight.set(sent, inFlight.get(sent) - 1);
    else inFlight.delete(sent);
    if (!alive) return res;
    showOutcome(res, "PUT", what);
    if (res.status === 200 || res.status === 201) {
      own.add(`${res.body.timestamp}|${JSON.stringify(res.body.value)}`);
      editing = null;
      editNotice.hidden = true;
      if (res.body.siblings > 1) await load(); // concurrent with another write: show them all
      else { rec = { kind: "value", ...res.body, count: res.body.siblings }; renderBody(); }
    }
    return res;
  }

  async function del() {
    const ok = await confirm({
      title: `Delete ${key}?`,
      body: h("p", {}, `A tombstone is written for "${key}" in table ${table}` +
        (rec && rec.context ? " with the context of the last read, so versions written meanwhile by others survive as siblings." : ".")),
      ok: "Delete",
    });
    if (!ok) return;
    const res = await call("DELETE", "delete", {
      params: quorumParams("DELETE"), body: rec && rec.context ? { context: rec.context } : undefined,
    });
    if (!alive) return;
    showOutcome(res, "DELETE");
    if (res.status === 200) {
      editing = null;
      rec = { kind: "missing", context: res.body && res.body.context, deleted: true };
      renderBody();
    }
  }

  // -- outcome of the last request, with the 503 explained
  function showOutcome(res, op, what = "") {
    if (res.ok || res.status === 300) {
      const parts = [`${op} ${res.status} in ${fmtMs(res.ms)}`];
      if (res.replicas.length) parts.push(`${op === "GET" ? "answered by" : "acknowledged by"} ${res.replicas.join(", ")}`);
      if (res.fallbacks.length) parts.push(`fallbacks stood in: ${res.fallbacks.map((f) => `${f.fallback} for ${f.for}`).join(", ")}`);
      if (res.underReplicated) parts.push(`under-replicated (${res.underReplicated})`);
      fill(outcome, h("p", { class: "outcome-ok" }, parts.join(" · ")));
      outcome.removeAttribute("role");
      return;
    }
    if (op === "GET" && res.status === 404 && res.code === "not_found") {
      fill(outcome, h("p", { class: "outcome-ok" }, `GET 404 in ${fmtMs(res.ms)} · no live value`));
      return;
    }
    outcome.setAttribute("role", "alert");
    fill(outcome, h("div", { class: "explain", "data-status": res.status },
      h("strong", {}, titleOf(res, op)),
      h("div", { class: "mono small" }, describe(res)),
      ...explain(res, op, what).map((t) => h("p", {}, t))));
  }

  function titleOf(res, op) {
    if (res.status === 503 && res.code === "quorum") return `${op === "GET" ? "Read" : "Write"} quorum not reached (503)`;
    if (res.status === 412) return "Precondition failed (412)";
    if (res.status === 0) return "No answer";
    return `${op} failed (${res.status})`;
  }

  function explain(res, op, what) {
    const c = state.cluster;
    const live = liveness();
    if (res.status === 503 && res.code === "quorum") {
      const b = res.body || {};
      const q = op === "GET" ? "r" : "w";
      const verb = op === "GET" ? "answered" : "acknowledged";
      const timeout = knobs.timeout || "the default";
      const out = [`Only ${b.acks} of the ${b.needed} replicas this request needed (${q}=${b.needed}) ${verb} within ${timeout === "the default" ? "the node's timeout" : timeout + " ms"}.`];
      const reps = placement ? placement.replicas.map((r) => r.name) : [];
      const notAlive = reps.filter((n) => live.get(n) && live.get(n) !== "alive");
      if (notAlive.length) out.push(`This node's failure detector sees ${notAlive.map((n) => `${n} ${live.get(n)}`).join(", ")}; ${notAlive.length === 1 ? "it is one of this key's replicas" : "they are replicas of this key"} (${reps.join(", ")}).`);
      else if (reps.length) out.push(`This key's replicas are ${reps.join(", ")}; one of them answered too late or not at all.`);
      if (!knobs.sloppy) out.push(`sloppy=false asks for a strict quorum: only the key's own ${c ? c.replicas_per_key : "N"} replicas count, so no fallback may stand in for a down replica.`);
      else out.push(placement && placement.fallbacks.length
        ? `A sloppy quorum lets fallbacks (${placement.fallbacks.map((f) => f.name).join(", ")}) stand in for down replicas, but not enough nodes answered in time.`
        : "A sloppy quorum lets a fallback stand in for a down replica, but this cluster has no member beyond the key's replicas to stand in.");
      if (op !== "GET") out.push("The write may still have been applied by the replicas that answered: it is not acknowledged and not undone, and it reaches the others through hints or read repair.");
      out.push(`To get through: lower ${q} to ${b.acks || 1}, allow a sloppy quorum, raise the timeout, or bring the replica back.`);
      return out;
    }
    if (res.status === 412) {
      return [what === "create"
        ? "The key already has a live value (If-None-Match: *): someone created it first. Reload to see it."
        : "The key changed since the read your edit started from (If-Match). Reload to see the current version, then edit again."];
    }
    if (res.status === 0) return ["The node that served this page did not answer. Check that it is running."];
    if (res.status === 400) return ["The node refused the request as malformed: see the message above (a quorum value out of range, a value that is not JSON, …)."];
    return [];
  }

  function liveness() {
    const m = new Map();
    if (state.cluster) for (const x of state.cluster.members) m.set(x.name, x.liveness);
    return m;
  }

  // -- the record itself
  function renderBody() {
    if (!rec) { fill(body, h("p", { class: "muted" }, "Loading…")); return; }
    if (rec.kind === "value") renderValue();
    else if (rec.kind === "siblings") renderSiblings();
    else renderMissing();
  }

  function meta(r) {
    return h("dl", { class: "meta" },
      h("div", {}, h("dt", {}, "written"), h("dd", {}, r.timestamp ? fmtDateTime(r.timestamp) : "–")),
      h("div", {}, h("dt", {}, "owner"), h("dd", {}, r.owner || "anonymous")),
      r.count !== undefined ? h("div", {}, h("dt", {}, "siblings"), h("dd", {}, String(r.count))) : null,
      h("div", { class: "meta-context" }, h("dt", {}, "context"), h("dd", { class: "mono", title: r.context }, r.context || "–")));
  }

  function renderValue() {
    fill(body,
      meta(rec),
      h("pre", { class: "json", id: "record-value", tabindex: 0, "aria-label": "Value" }, pretty(rec.value)),
      h("div", { class: "actions" },
        h("button", { class: "btn btn-primary", id: "edit-btn", onclick: () => startEdit(rec.value, rec.context) }, "Edit")));
  }

  function startEdit(value, context) {
    editing = { base: context };
    const ta = h("textarea", { id: "value-editor", class: "json", rows: 10, spellcheck: "false" }, pretty(value));
    const ifMatch = h("input", { type: "checkbox", id: "if-match" });
    const err = h("p", { class: "inline-error", role: "alert", hidden: true });
    fill(body,
      h("label", { for: "value-editor" }, "Value (any JSON)"), ta,
      h("label", { class: "check" }, ifMatch, "only if nobody wrote it since my read (If-Match); otherwise a concurrent write is kept as a sibling"),
      err,
      h("div", { class: "actions" },
        h("button", { class: "btn btn-primary", id: "save-btn", onclick: async () => {
          const v = parseJson(ta.value, err);
          if (v === undefined) return;
          await write(v, { context: editing.base, ifMatch: ifMatch.checked, what: "edit" });
        } }, "Save"),
        h("button", { class: "btn", onclick: () => { editing = null; editNotice.hidden = true; renderBody(); } }, "Cancel")));
    ta.focus();
  }

  function renderMissing() {
    // Once typed in, the form is an edit in progress: another writer's
    // change then shows as a notice instead of replacing what was typed.
    const ta = h("textarea", { id: "value-editor", class: "json", rows: 6, spellcheck: "false",
      oninput: () => { if (!editing) editing = { base: rec.context, create: true }; } }, "{\n  \n}");
    const ifNone = h("input", { type: "checkbox", id: "if-none-match", checked: true });
    const err = h("p", { class: "inline-error", role: "alert", hidden: true });
    fill(body,
      h("p", { class: "empty", id: "record-missing" }, rec.context
        ? `No live value: "${key}" was deleted (a tombstone is kept until it is purged).`
        : `No value: "${key}" does not exist in table ${table}.`),
      h("label", { for: "value-editor" }, "Create it with the value (any JSON)"), ta,
      h("label", { class: "check" }, ifNone, "create only if it does not exist (If-None-Match: *)"),
      err,
      h("div", { class: "actions" },
        h("button", { class: "btn btn-primary", id: "create-btn", onclick: async () => {
          const v = parseJson(ta.value, err);
          if (v === undefined) return;
          await write(v, { context: editing ? editing.base : rec.context, ifNoneMatch: ifNone.checked, what: "create" });
        } }, "Create")));
  }

  function renderSiblings() {
    const sibs = [...rec.siblings].sort((a, b) => a.timestamp - b.timestamp);
    const differing = differingFields(sibs.map((x) => x.value));
    const merged = h("textarea", { id: "merge-editor", class: "json", rows: 8, spellcheck: "false" },
      pretty(suggestMerge(sibs.map((x) => x.value))));
    const err = h("p", { class: "inline-error", role: "alert", hidden: true });
    fill(body,
      h("div", { class: "siblings-head", id: "siblings-banner" },
        badge("siblings"), h("strong", {}, `${sibs.length} concurrent versions`),
        h("p", { class: "muted small" }, "Each was written without seeing the others. Keep one, or write a merge: ",
          "either is written with the context of this read, so it replaces all of them.")),
      h("ol", { class: "siblings", id: "siblings" }, sibs.map((sib, i) =>
        h("li", { class: "sibling" },
          h("div", { class: "sibling-head" }, h("strong", {}, `Version ${i + 1}`),
            h("span", { class: "muted small" }, `${fmtDateTime(sib.timestamp)} · ${sib.owner || "anonymous"}`)),
          h("pre", { class: "json", tabindex: 0 }, pretty(sib.value)),
          h("button", { class: "btn btn-primary btn-small", "data-keep": i,
            onclick: () => write(sib.value, { context: rec.context, what: `keep version ${i + 1}` }) },
          `Keep version ${i + 1}`)))),
      h("div", { class: "merge" },
        h("label", { for: "merge-editor" }, "Or write a merge (prefilled: objects merged key by key, newer wins; arrays united; edit freely)"),
        differing.length ? h("p", { class: "small merge-hint", id: "merge-hint" }, "The versions differ in ",
          differing.map((f, i) => [i ? ", " : "", h("code", {}, f)]), ": the suggestion took the newer value of each; check them before writing.") : null,
        merged, err,
        h("div", { class: "actions" },
          h("button", { class: "btn btn-primary", id: "merge-btn", onclick: async () => {
            const v = parseJson(merged.value, err);
            if (v === undefined) return;
            await write(v, { context: rec.context, what: "merge" });
          } }, "Write merge"))));
  }

  function parseJson(text, errEl) {
    try {
      const v = JSON.parse(text);
      errEl.hidden = true;
      return v;
    } catch (e) {
      errEl.hidden = false;
      errEl.textContent = `Not valid JSON: ${e.message}`;
      return undefined;
    }
  }

  // -- request log
  function renderLog() {
    fill(logBody, log.map(({ res, what }) => {
      const q = res.url.search ? decodeURIComponent(res.url.search) : "";
      const cls = res.status >= 500 || res.status === 0 ? "st-bad" : res.status >= 400 ? "st-warn" : "st-ok";
      return h("tr", { class: cls },
        h("td", {}, h("span", { class: "method" }, res.method), " ", what,
          h("div", { class: "muted small" }, h("time", { class: "mono" }, fmtTime(res.at)), q ? " " + q : "")),
        h("td", {}, h("span", { class: `status ${cls}` }, res.status || "—"),
          res.status === 503 && res.body ? h("div", { class: "small" }, `${res.body.acks} of ${res.body.needed}`) : null),
        h("td", { class: "num mono" }, fmtMs(res.ms)),
        h("td", {}, res.replicas.length ? res.replicas.map(chip) : h("span", { class: "muted" }, "–")),
        h("td", {}, res.fallbacks.length
          ? res.fallbacks.map((f) => h("span", { class: "nowrap" }, chip(f.fallback), " for ", chip(f.for)))
          : h("span", { class: "muted" }, "–")));
    }));
  }

  function chip(name) {
    return h("span", { class: "chip" }, h("span", { class: "swatch", style: `background:${colourOf(name)}` }), name);
  }

  // -- placement
  async function loadPlacement() {
    const res = await request("GET", paths.placement(table, key), { timeoutMs: 5000 });
    if (!alive) return;
    if (res.status === 200 && res.body) { placement = res.body; placementErr = null; }
    else {
      placement = null;
      placementErr = describe(res);
    }
    renderPlacement();
  }

  function renderPlacement() {
    if (!placement) {
      fill(placeBox, h("p", { class: "inline-error", role: "alert" }, placementErr ? `Placement unknown: ${placementErr}` : "Loading…"));
      return;
    }
    const live = liveness();
    const answered = lastAnswer ? lastAnswer.replicas : [];
    const who = (r) => h("li", {}, chip(r.name), " ", badge(live.get(r.name) || r.liveness),
      answered.includes(r.name) ? h("span", { class: "tag tag-ok" }, "answered") : null);
    fill(placeBox,
      h("div", { class: "placement-layout" },
        state.ring ? ringChart(state.ring, { placement, answered, liveness: live,
          label: `Key ${key} at ${(placement.angle * 100).toFixed(2)}% of the ring; replicas ${placement.replicas.map((r) => r.name).join(", ")}` }) :
          h("p", { class: "inline-error" }, `The ring cannot be drawn: ${state.ringError || "loading…"}`),
        h("div", { class: "placement-facts" },
          h("p", { class: "small" }, "Position ", h("code", {}, placement.position), ` · ${(placement.angle * 100).toFixed(2)}% of the ring · partition ${placement.range}`),
          h("h3", {}, "Preference list"),
          h("ol", { class: "who", id: "replica-list" }, placement.replicas.map(who)),
          h("h3", {}, "Fallbacks"),
          placement.fallbacks.length
            ? h("ol", { class: "who" }, placement.fallbacks.map(who))
            : h("p", { class: "muted small" }, "None: every member is already a replica of this key."),
          h("h3", {}, "Standing in now"),
          standingIn(placement, live),
          lastAnswer && lastAnswer.fallbacks.length
            ? h("p", { class: "small" }, "Last request: ", lastAnswer.fallbacks.map((f) => `${f.fallback} stood in for ${f.for}`).join(", "))
            : null)));
  }

  function standingIn(p, live) {
    const standIns = p.stand_ins || [];
    const down = p.replicas.filter((r) => (live.get(r.name) || r.liveness) !== "alive").map((r) => r.name);
    const covered = new Set(standIns.map((x) => x.for));
    const uncovered = down.filter((n) => !covered.has(n));
    return h("div", { id: "stand-ins" },
      standIns.length ? h("ul", { class: "who" }, standIns.map((x) => h("li", {}, chip(x.fallback), " for ", chip(x.for)))) : null,
      !down.length ? h("p", { class: "muted small" }, "Nobody: this node sees every replica of this key alive.") : null,
      uncovered.length ? h("p", { class: "small" }, `Nobody for ${uncovered.join(", ")}: no fallback is left to stand in, `,
        `so a write needs its w from the ${p.replicas.length - down.length} live replica${p.replicas.length - down.length === 1 ? "" : "s"}.`) : null);
  }

  // -- live: other writers
  function flash(text) {
    liveDot.textContent = text;
    liveDot.className = "live-state live-flash";
    setTimeout(() => { if (alive && liveDot.classList.contains("live-flash")) setLive("live"); }, 4000);
  }

  function setLive(st, detail) {
    liveDot.className = `live-state live-${st}`;
    liveDot.textContent = { live: "● live", connecting: "connecting…", reconnecting: "reconnecting…", closed: "live updates off" }[st] || st;
    liveDot.title = detail || (st === "live" ? "this record follows writes made anywhere in the cluster" : "");
  }

  function othersWrote(what) {
    if (editing) {
      editNotice.hidden = false;
      fill(editNotice,
        h("span", { id: "edit-notice" }, `Someone else ${what} this record at ${fmtTime(Date.now())} while you were editing. `,
          editing.create
            ? "Creating it now fails while \"create only if it does not exist\" is ticked; untick it to keep both versions as siblings. "
            : "Saving writes with the context of your read, so both versions are kept as siblings. "),
        h("button", { class: "btn btn-small", onclick: () => { editing = null; editNotice.hidden = true; load(); } }, "Discard my edit and reload"));
    }
    flash(`● ${what} by another client at ${fmtTime(Date.now())}`);
  }

  const sub = new Subscription(paths.subscribeKey(table, key), {
    onStatus: setLive,
    onEvent: (type, data) => {
      if (type === "updated") {
        const v = JSON.stringify(data.value);
        if (own.has(`${data.timestamp}|${v}`) || inFlight.has(v)) return; // this page's own write
        if (data.siblings > 1) { if (!editing) load(); othersWrote("wrote"); return; }
        const next = { kind: "value", value: data.value, context: data.context, timestamp: data.timestamp, owner: data.owner, count: data.siblings };
        if (rec && rec.kind === "value" && rec.context === next.context) return;
        rec = next;
        if (!editing) renderBody();
        othersWrote("updated");
      } else if (type === "deleted") {
        rec = { kind: "missing", context: data.context, deleted: true };
        if (!editing) renderBody();
        othersWrote("deleted");
      } else if (type === "reset") {
        if (!editing) load();
      }
    },
  });

  // placement follows the ring and the liveness this node sees
  const off = onChange((what) => {
    if (what !== "cluster" && what !== "ring") return;
    knobChoices();
    const c = state.cluster;
    const sig = c ? c.ring_version + c.members.map((m) => m.name + m.liveness).join() : "";
    if (sig !== placementSig) { placementSig = sig; loadPlacement(); }
    else renderPlacement();
  });

  renderBody();
  renderLog();
  sub.start();
  load();
  placementSig = state.cluster ? state.cluster.ring_version + state.cluster.members.map((m) => m.name + m.liveness).join() : "";
  loadPlacement();

  return {
    unmount() {
      alive = false;
      sub.stop();
      off();
    },
  };
}
