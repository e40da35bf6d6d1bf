// A modal confirmation (<dialog>: focus is trapped, Escape cancels, focus
// returns to the button that opened it).

import { fill } from "./dom.js";

/** Resolves true when the user confirms. body: text or nodes. */
export function confirm({ title, body, ok = "OK", danger = true }) {
  const dlg = document.getElementById("confirm");
  const opener = document.activeElement;
  document.getElementById("confirm-title").textContent = title;
  fill(document.getElementById("confirm-body"), ...(Array.isArray(body) ? body : [body]));
  const okBtn = document.getElementById("confirm-ok");
  okBtn.textContent = ok;
  okBtn.className = danger ? "btn btn-danger" : "btn btn-primary";
  dlg.returnValue = "cancel";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (opener && opener.focus) opener.focus();
      resolve(dlg.returnValue === "ok");
    }, { once: true });
    dlg.showModal();
  });
}
