// #/live[/<table>[/<key>]]: a feed of the changes to a table or to one key,
// written through any node, over GET /{table}/subscribe[/{key}]. The feed
// keeps running while other views are open; the nav shows how many events
// arrived meanwhile.

import { h, fill, badge, fmtTime, preview } from "../dom.js";
import { request, paths, describe } from "../api.js";
import { Subscription } from "../live.js";

const MAX_EVENTS = 200;
const feed = { sub: null, table: "", key: "", events: [], status: "off", detail: "", unseen: 0 };
let view = null; // the mounted view's render hooks, if any

function counter() {
  const el = document.getElementById("live-count");
  el.hidden = feed.unseen === 0;
  el.textContent = feed.unseen > 99 ? "99+" : String(feed.unseen);
}

function startFeed(table, key) {
  if (feed.sub) feed.sub.stop();
  feed.table = table;
  feed.key = key;
  const path = key ? paths.subscribeKey(table, key) : paths.subscribeTable(table);
  feed.sub = new Subscription(path, {
    onStatus: (st, detail) => {
      feed.status = st;
      feed.detail = detail || "";
      if (view) view.status();
    },
    onEvent: (type, data, id) => {
      feed.events.unshift({ type, data, id, at: Date.now() });
      feed.events.length = Math.min(feed.events.length, MAX_EVENTS);
      if (view) view.added();
      else { feed.unseen++; counter(); }
    },
  });
  feed.sub.start();
}

function stopFeed() {
  if (feed.sub) feed.sub.stop();
  feed.sub = null;
  feed.status = "off";
  feed.detail = "";
}

export function mount(main, args) {
  feed.unseen = 0;
  counter();
  const tableIn = h("input", { id: "live-table", type: "text", required: true, list: "live-tables", autocomplete: "off",
    spellcheck: "false", value: feed.table || "default" });
  const keyIn = h("input", { id: "live-key", type: "text", autocomplete: "off", spellcheck: "false",
    placeholder: "every key of the table", value: feed.key });
  const tables = h("datalist", { id: "live-tables" });
  const statusEl = h("p", { class: "live-status", id: "live-status", role: "status" });
  const tablesErr = h("p", { class: "inline-error small", role: "alert", hidden: true });
  const list = h("ol", { class: "feed", id: "feed", "aria-live": "polite", "aria-relevant": "additions" });
  const stopBtn = h("button", { class: "btn", type: "button", id: "live-stop", onclick: () => { stopFeed(); status(); } }, "Stop");
  const clearBtn = h("button", { class: "btn btn-ghost", type: "button", onclick: () => { feed.events = []; render(); } }, "Clear");

  main.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Live"), h("p", { class: "sub" }, "Changes as they are acknowledged, written through any node"))),
    h("section", { class: "card" },
      h("form", { class: "live-form", onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/live/${encodeURIComponent(tableIn.value)}${keyIn.value ? "/" + encodeURIComponent(keyIn.value) : ""}`;
        startFeed(tableIn.value, keyIn.value);
        status();
      } },
      h("div", { class: "field" }, h("label", { for: "live-table" }, "Table"), tableIn, tables),
      h("div", { class: "field" }, h("label", { for: "live-key" }, "Key (optional)"), keyIn),
      h("div", { class: "field field-buttons" },
        h("button", { class: "btn btn-primary", type: "submit", id: "live-start" }, "Watch"), stopBtn, clearBtn)),
      tablesErr,
      statusEl,
      list));

  function status() {
    const what = feed.key ? `key ${feed.key} in ${feed.table}` : `table ${feed.table}`;
    const text = {
      off: "Not watching. Pick a table (and a key) and press Watch.",
      connecting: `Subscribing to ${what}…`,
      live: `● Watching ${what}`,
      reconnecting: `Reconnecting to ${what}… (${feed.detail})`,
      closed: `The stream of ${what} stopped: ${feed.detail}`,
    }[feed.status] || feed.status;
    statusEl.textContent = text;
    statusEl.className = `live-status live-${feed.status}`;
    if (feed.status === "closed") statusEl.setAttribute("role", "alert");
    else statusEl.setAttribute("role", "status");
    stopBtn.disabled = !feed.sub;
  }

  function item(ev) {
    const d = ev.data || {};
    const key = d.key;
    return h("li", { class: `feed-item feed-${ev.type}` },
      h("time", { class: "mono small", datetime: new Date(ev.at).toISOString() }, fmtTime(ev.at)),
      badge(ev.type),
      key !== undefined
        ? h("a", { class: "mono feed-key", href: `#/data/${encodeURIComponent(d.table || feed.table)}/${encodeURIComponent(key)}` }, key)
        : h("span", { class: "muted" }, d.table || ""),
      h("span", { class: "feed-value mono" },
        ev.type === "updated" ? preview(d.value) : ev.type === "deleted" ? "deleted" : `re-read: ${d.reason || ""}`),
      d.siblings > 1 ? h("span", { class: "tag tag-warn" }, `${d.siblings} siblings`) : null);
  }

  function render() {
    fill(list, feed.events.length ? feed.events.map(item)
      : h("li", { class: "muted small feed-empty" }, feed.sub ? "No change yet." : ""));
  }

  function added() {
    const empty = list.querySelector(".feed-empty");
    if (empty) empty.remove();
    list.prepend(item(feed.events[0]));
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  function update(a) {
    const [t, k] = [a[0] || "", a.length > 1 ? a.slice(1).join("/") : ""];
    if (t && (t !== feed.table || k !== feed.key || !feed.sub)) {
      tableIn.value = t;
      keyIn.value = k;
      startFeed(t, k);
    }
    status();
  }

  view = { status, added };
  render();
  update(args);
  request("GET", paths.tables()).then((res) => {
    if (res.status === 200 && res.body && Array.isArray(res.body.tables)) {
      fill(tables, res.body.tables.map((t) => h("option", { value: t })));
    } else {
      // the field still takes any name typed by hand
      tablesErr.hidden = false;
      tablesErr.textContent = `No table suggestions: ${describe(res)}`;
    }
  });
  return {
    update,
    unmount() { view = null; },
  };
}
