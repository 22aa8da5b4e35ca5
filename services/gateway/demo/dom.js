/* DOM helpers shared by the panels: find and build elements (text is never parsed as HTML),
 * format times, show toasts. No state, no network. */

export const USER_ID_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

export const STATUS_LABEL = {
  available: "Available",
  busy: "Busy",
  in_session: "In session",
  break: "On a break",
  offline: "Offline",
};

export const $ = (id) => document.getElementById(id);

/** Create an element; children are nodes or text (never parsed as HTML). */
export function el(tag, props, ...kids) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "testid") node.dataset.testid = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : String(kid));
  }
  return node;
}

/** A time of day (hh:mm:ss) for an ISO time, or for now. */
export function clock(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Seconds as m:ss. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export const randomId = () => Math.random().toString(36).slice(2, 10);

/** A notice in the corner (kind: "error" | "info" | "ok"), gone after `ms` or on ×. */
export function toast(kind, title, text, ms = 6000) {
  const box = $("toasts");
  const item = el(
    "div",
    { class: `toast ${kind}`, testid: `toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    el("div", {}, el("b", { text: title }), text ? el("div", { text }) : null),
    el("button", { type: "button", "aria-label": "dismiss", text: "×", onclick: () => item.remove() }),
  );
  box.append(item);
  while (box.childElementCount > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), ms);
}
