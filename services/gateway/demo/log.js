/* The event log panel: every frame in (↓) and out (↑), notes (·), `error` frames in red. */

import { $, clock, el } from "./dom.js";
import * as net from "./net.js";

const LOG_MAX = 300;

function log({ dir, frame, note }) {
  if (!$("log-pings").checked && frame && (frame.event === "ping" || frame.event === "pong")) return;
  const list = $("event-log");
  const isError = frame && frame.event === "error";
  const event = frame ? frame.event : "";
  const body = frame ? JSON.stringify(frame) : note;
  const item = el(
    "li",
    { class: isError ? "error" : "", testid: "log-entry", dataset: { dir, event }, title: body },
    el("span", { class: "t", text: clock() + " " }),
    el("span", { class: "d", text: dir === "in" ? "↓" : dir === "out" ? "↑" : "·" }),
    event ? el("span", { class: "e", text: event }) : null,
    frame ? JSON.stringify(frame.data === undefined ? {} : frame.data) + (frame.ref ? `  ref=${frame.ref}` : "") : note,
  );
  item.addEventListener("click", () => item.classList.toggle("open"));
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  list.append(item);
  while (list.childElementCount > LOG_MAX) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

export function init() {
  net.on("net:frame", log);
  $("log-clear").addEventListener("click", () => $("event-log").replaceChildren());
  $("log-toggle").addEventListener("click", () => {
    const collapsed = $("log-panel").classList.toggle("collapsed");
    $("log-toggle").textContent = collapsed ? "show" : "hide";
  });
}
