// #/data[/<table>[/<key>]]: the tables this node holds (GET /tables), a key
// browser paged on the server (GET /{table}/keys?limit=&after=: one page at
// a time, whatever the table's size) and the record in view (record.js).

import { h, fill, fmtInt } from "../dom.js";
import { request, paths, describe } from "../api.js";
import { state } from "../state.js";
import { mountRecord } from "./record.js";

const PAGE_SIZES = [25, 50, 100, 500];
let pageSize = 50;

export function mount(main, args) {
  let table = null, key = null;
  let record = null;
  let cursors = [null]; // cursors[i] = the `after` of page i (null: the first)
  let page = 0, next = null, loadingSeq = 0;
  let currentKeys = [];

  const tablesList = h("ul", { class: "nav-list", id: "tables" });
  const tablesErr = h("p", { class: "inline-error small", role: "alert", hidden: true });
  const keysTitle = h("h2", { id: "keys-h" }, "Keys");
  const keysNote = h("p", { class: "muted small" });
  const keysList = h("ul", { class: "nav-list keys", id: "keys", "aria-labelledby": "keys-h" });
  const keysErr = h("p", { class: "inline-error small", role: "alert", hidden: true });
  const pageInfo = h("span", { class: "muted small", id: "page-info", "aria-live": "polite" });
  const prevBtn = h("button", { class: "btn btn-small", id: "prev-page", onclick: () => go(page - 1), "aria-label": "Previous page" }, "← Prev");
  const nextBtn = h("button", { class: "btn btn-small", id: "next-page", onclick: () => go(page + 1), "aria-label": "Next page" }, "Next →");
  const sizeSel = h("select", { id: "page-size", onchange: (e) => { pageSize = Number(e.target.value); reset(); } },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === pageSize }, String(n))));
  const pane = h("div", { class: "record-pane", id: "record-pane" });
  const keysSection = h("section", { class: "card", "aria-labelledby": "keys-h" },
    keysTitle, keysNote, keysErr, keysList,
    h("div", { class: "pager" }, prevBtn, pageInfo, nextBtn),
    h("div", { class: "pager-size" }, h("label", { for: "page-size" }, "per page"), sizeSel,
      h("button", { class: "btn btn-small btn-ghost", onclick: () => go(page) }, "Refresh")),
    openForm("open-key", "Open or create a key", "key", (v) => { if (table) location.hash = `#/data/${encodeURIComponent(table)}/${encodeURIComponent(v)}`; }));

  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Data"), h("p", { class: "sub" }, "Tables and records, read and written through this node"))),
    h("div", { class: "grid-data" },
      h("aside", { class: "sidebar" },
        h("section", { class: "card", "aria-labelledby": "tables-h" },
          h("h2", { id: "tables-h" }, "Tables"),
          tablesErr, tablesList,
          openForm("open-table", "Open a table", "table name", (v) => { location.hash = `#/data/${encodeURIComponent(v)}`; })),
        keysSection),
      pane));

  function openForm(id, label, placeholder, submit) {
    const input = h("input", { id, type: "text", placeholder, autocomplete: "off", spellcheck: "false", required: true });
    return h("form", { class: "open-form", onsubmit: (e) => { e.preventDefault(); if (input.value) submit(input.value); input.value = ""; } },
      h("label", { for: id }, label),
      h("div", { class: "input-row" }, input, h("button", { class: "btn btn-small", type: "submit" }, "Open")));
  }

  async function loadTables() {
    const res = await request("GET", paths.tables());
    if (res.status === 200 && res.body && Array.isArray(res.body.tables)) {
      tablesErr.hidden = true;
      renderTables(res.body.tables);
      if (!table && res.body.tables.length) location.replace(`#/data/${encodeURIComponent(res.body.tables[0])}`);
      else if (!table) renderEmptyPane("This node holds no table yet: open one by name, or create a key.");
    } else {
      tablesErr.hidden = false;
      tablesErr.textContent = `The tables cannot be listed: ${describe(res)}. Open a table by name below.`;
      renderTables(table ? [table] : []);
    }
  }

  let knownTables = [];
  function renderTables(list) {
    knownTables = list;
    const all = table && !list.includes(table) ? [...list, table] : list;
    fill(tablesList, all.length ? all.map((t) => h("li", {},
      h("a", { href: `#/data/${encodeURIComponent(t)}`, "aria-current": t === table ? "page" : undefined }, t)))
      : h("li", { class: "muted small" }, "none yet"));
  }

  function reset() {
    cursors = [null];
    go(0);
  }

  async function go(p) {
    if (!table || p < 0 || p >= cursors.length) return;
    const seq = ++loadingSeq;
    prevBtn.disabled = nextBtn.disabled = true;
    pageInfo.textContent = "loading…";
    const res = await request("GET", paths.keys(table), { params: { limit: pageSize, after: cursors[p] || undefined } });
    if (seq !== loadingSeq) return; // a newer page was asked for meanwhile
    if (res.status !== 200 || !res.body || !Array.isArray(res.body.keys)) {
      keysErr.hidden = false;
      keysErr.textContent = `The keys cannot be listed: ${describe(res)}`;
      pageInfo.textContent = "";
      prevBtn.disabled = page === 0;
      nextBtn.disabled = !next;
      return;
    }
    keysErr.hidden = true;
    page = p;
    next = res.body.next;
    cursors.length = p + 1;
    if (next) cursors.push(next);
    currentKeys = res.body.keys;
    renderKeys();
    const first = p * pageSize + 1;
    pageInfo.textContent = currentKeys.length
      ? `page ${p + 1} · keys ${fmtInt(first)}–${fmtInt(first + currentKeys.length - 1)}${next ? "" : " (last)"}`
      : p === 0 ? "no keys on this node" : `page ${p + 1} is empty`;
    prevBtn.disabled = p === 0;
    nextBtn.disabled = !next;
  }

  function renderKeys() {
    fill(keysList, currentKeys.map((k) => h("li", {},
      h("a", { href: `#/data/${encodeURIComponent(table)}/${encodeURIComponent(k)}`, class: "mono",
        "aria-current": k === key ? "page" : undefined }, k))));
  }

  function renderEmptyPane(text) {
    fill(pane, h("section", { class: "card empty-card" }, h("p", { class: "muted" }, text)));
  }

  function update(a) {
    const [t, k] = [a[0] || null, a.length > 1 ? a.slice(1).join("/") : null];
    const tableChanged = t !== table;
    if (tableChanged) {
      table = t;
      renderTables(knownTables);
      const self = state.cluster ? state.cluster.node : "this node";
      keysTitle.textContent = table ? `Keys in ${table}` : "Keys";
      keysNote.textContent = table
        ? `The keys ${self} holds a replica of, in ring order (not the whole table: every node lists its own share; ` +
          "a read through any node finds any key)."
        : "";
      keysSection.hidden = !table;
      if (table) reset();
    }
    if (tableChanged || k !== key || !record) {
      key = k;
      if (record) record.unmount();
      record = null;
      fill(pane);
      if (table && key) record = mountRecord(pane, table, key);
      else if (table) renderEmptyPane("Pick a key on the left, or open one by name. A key that does not exist yet can be created there.");
      else renderEmptyPane("Pick a table.");
      renderKeys();
    }
  }

  update(args);
  loadTables();
  return {
    update,
    unmount() { if (record) record.unmount(); },
  };
}
