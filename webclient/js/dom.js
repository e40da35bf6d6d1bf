// Small DOM helpers. Text always goes in as text nodes, never as HTML, so a
// key or a value can hold any character without becoming markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [name, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (name.startsWith("on") && typeof v === "function") {
      el.addEventListener(name.slice(2), v);
    } else if (name === "value" || name === "checked" || name === "selected") {
      el[name] = v; // properties: the attribute is only the initial value
    } else {
      el.setAttribute(name, v === true ? "" : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** h("button", {class: "btn", onclick}, "Save") -> an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** s("circle", {cx, cy, r}) -> an SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replaces every child of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Keeps parent's children in step with items, one element per key: existing
 * elements are updated in place (so focus and open menus survive a refresh),
 * new ones created, gone ones removed, and the order follows items.
 */
export function reconcile(parent, items, keyOf, create, update) {
  const old = new Map();
  for (const el of parent.children) old.set(el.dataset.key, el);
  let at = 0;
  for (const item of items) {
    const key = String(keyOf(item));
    let el = old.get(key);
    if (el) old.delete(key);
    else {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    if (parent.children[at] !== el) parent.insertBefore(el, parent.children[at] || null);
    at++;
  }
  for (const el of old.values()) el.remove();
}

export function fmtInt(n) {
  return n === undefined || n === null || Number.isNaN(n) ? "–" : Math.round(n).toLocaleString("en-US");
}

export function fmtPct(x) {
  return x === undefined || x === null ? "–" : (x * 100).toFixed(1) + "%";
}

/** Milliseconds as a short latency: 0.42 ms, 12 ms, 1.3 s. */
export function fmtMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 100) return ms.toFixed(1) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

export function fmtRate(r) {
  if (r === undefined || r === null || Number.isNaN(r)) return "–";
  if (r === 0) return "0/s";
  if (r < 10) return r.toFixed(1) + "/s";
  return Math.round(r).toLocaleString("en-US") + "/s";
}

export function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

export function fmtDateTime(ms) {
  const d = new Date(ms);
  return d.toLocaleDateString("en-CA") + " " + d.toLocaleTimeString("en-GB", { hour12: false });
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

/** A JSON value on one line, cut to max characters. */
export function preview(value, max = 120) {
  const text = JSON.stringify(value);
  if (text === undefined) return "";
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** A status or liveness as a coloured badge. */
export function badge(word, extraClass = "") {
  return h("span", { class: `badge badge-${word} ${extraClass}`.trim() }, word);
}
