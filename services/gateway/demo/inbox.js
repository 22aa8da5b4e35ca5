/* The mentor's side of the help panel: incoming requests, most urgent first, Accept / Decline;
 * cards another mentor took are greyed. */

import { $, clock, el, toast } from "./dom.js";
import * as net from "./net.js";
import { notify, rememberName, state, subscribe } from "./state.js";
import { helpCard } from "./help-card.js";

const URGENCY_ORDER = { high: 0, medium: 1, low: 2 };
const CLOSED_BECAUSE = {
  accepted: "another mentor accepted it",
  cancelled: "the student cancelled it",
  expired: "it expired",
};

const inbox = new Map(); // request id → {req, state: "open"|"mine"|"closed", detail}

function onReceived(req) {
  rememberName(req.student_id, req.student_name);
  const known = inbox.get(req.request_id);
  inbox.set(req.request_id, { ...(known || {}), req, state: known ? known.state : "open" });
  if (!known) toast("info", `${req.student_name} needs help (${req.urgency})`, `${req.subject}: ${req.message.slice(0, 80)}`, 5000);
  render();
}

function onClosed(data) {
  const item = inbox.get(data.request_id);
  if (!item || item.state === "mine") return;
  item.state = "closed";
  item.detail = CLOSED_BECAUSE[data.reason] || data.reason;
  render();
}

async function refresh() {
  if (!state.me || state.me.role === "student") return;
  try {
    const ack = await net.request("list_help_requests", {});
    for (const req of ack.requests || []) {
      rememberName(req.student_id, req.student_name);
      if (!inbox.has(req.request_id)) inbox.set(req.request_id, { req, state: "open" });
    }
    render();
  } catch {
    /* shown as a toast */
  }
}

async function accept(id) {
  const item = inbox.get(id);
  try {
    await net.request("accept_help_request", { request_id: id });
    item.state = "mine";
    item.detail = `you are helping ${item.req.student_name}`;
  } catch (err) {
    if (err.code === "conflict" || err.code === "not_found") {
      item.state = "closed";
      item.detail = err.message;
    }
  }
  render();
}

async function decline(id) {
  try {
    await net.request("decline_help_request", { request_id: id, reason: "not available right now" });
    inbox.delete(id);
  } catch {
    /* shown as a toast */
  }
  render();
}

function actionsFor(item) {
  const { req } = item;
  const id = req.request_id;
  const button = (props) => el("button", { type: "button", ...props });
  if (item.state === "open") {
    return [
      button({ class: "ok", testid: "help-accept", text: "Accept", onclick: () => accept(id) }),
      button({ testid: "help-decline", text: "Decline", onclick: () => decline(id) }),
    ];
  }
  if (item.state === "mine") {
    return [
      button({ testid: "help-chat", text: "Chat", onclick: () => notify("open-chat", { peer: req.student_id }) }),
      button({ text: "☎ Call", onclick: () => notify("place-call", { peer: req.student_id, type: "video" }) }),
    ];
  }
  return [button({ class: "link", text: "dismiss", onclick: () => (inbox.delete(id), render()) })];
}

function render() {
  const items = [...inbox.values()].sort(
    (a, b) =>
      Number(a.state !== "open") - Number(b.state !== "open") ||
      URGENCY_ORDER[a.req.urgency] - URGENCY_ORDER[b.req.urgency] ||
      (a.req.created_at || "").localeCompare(b.req.created_at || ""),
  );
  $("help-inbox").replaceChildren(
    ...items.map((item) => {
      const { req } = item;
      const status = item.state === "mine" ? "accepted" : item.state === "closed" ? "closed" : "open";
      return helpCard(req, status, {
        testid: "help-card",
        dataset: { state: item.state },
        who: `${req.student_name} · ${clock(req.created_at)}${req.mentor_id ? " · to you" : ""}`,
        detail: item.detail,
        actions: actionsFor(item),
      });
    }),
  );
  $("inbox-count").textContent = String(items.filter((i) => i.state === "open").length);
  $("inbox-empty").hidden = items.length > 0;
}

export function init() {
  net.on("help_request_received", onReceived);
  net.on("help_request_closed", onClosed);
  subscribe("online", refresh);
  subscribe("reset", () => {
    inbox.clear();
    render();
  });
  render();
}
