// Errors and notices at the top of the page, announced to screen readers
// (the region is aria-live). Nothing is swallowed: every failed request a
// user did not see elsewhere ends up here. The same message again bumps a
// counter instead of stacking copies.

import { h } from "./dom.js";
import { describe } from "./api.js";

const region = () => document.getElementById("notices");
const shown = new Map(); // key -> {el, count}

function show(kind, key, title, detail, { sticky = kind === "error" } = {}) {
  const prev = shown.get(key);
  if (prev) {
    prev.count++;
    prev.el.querySelector(".notice-count").textContent = ` ×${prev.count}`;
    return prev.el;
  }
  const close = () => { el.remove(); shown.delete(key); };
  const el = h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("div", { class: "notice-text" },
      h("strong", {}, title), h("span", { class: "notice-count" }),
      detail ? h("div", { class: "notice-detail" }, detail) : null),
    h("button", { class: "btn btn-ghost btn-small", "aria-label": "Dismiss", onclick: close }, "✕"));
  region().append(el);
  shown.set(key, { el, count: 1 });
  if (!sticky) setTimeout(close, 6000);
  return el;
}

export function error(title, detail) {
  return show("error", `e:${title}:${detail}`, title, detail);
}

/** A failed request: title says what the user tried, detail what came back. */
export function requestError(title, res) {
  return error(title, describe(res));
}

export function info(title, detail) {
  return show("info", `i:${title}:${detail}`, title, detail, { sticky: false });
}

/** Clears a notice shown under a key (e.g. a recovered connection). */
export function clear(prefix) {
  for (const [key, v] of shown) {
    if (key.startsWith(prefix)) { v.el.remove(); shown.delete(key); }
  }
}
