/* The mentor list (every mentor, live) and, for a mentor, the "My status" panel.
 * Owns `state.mentors`; notifies "mentors" when it changes. */

import { $, clock, el, STATUS_LABEL } from "./dom.js";
import * as net from "./net.js";
import { myId, notify, rememberName, state, subscribe } from "./state.js";

const STATUS_ORDER = { available: 0, in_session: 1, busy: 2, break: 3, offline: 4 };
const nodes = new Map(); // mentor id → its card

function upsert(mentor) {
  state.mentors.set(mentor.mentor_id, mentor);
  rememberName(mentor.mentor_id, mentor.name);
}

function onSnapshot(data) {
  state.mentors.clear();
  for (const mentor of data.mentors || []) upsert(mentor);
  notify("mentors");
}

function onUpdate(data) {
  upsert(data);
  notify("mentors");
}

function card(id) {
  let node = nodes.get(id);
  if (node) return node;
  const button = (testid, text, onclick, cls) => el("button", { type: "button", testid, class: cls, text, onclick });
  node = el(
    "li",
    { class: "mentor", testid: `mentor-card-${id}`, dataset: { mentorId: id } },
    el("span", { class: "dot", testid: "mentor-online" }),
    el("div", { class: "name" }, el("span", { class: "n", testid: "mentor-name" }), el("span", { class: "uid", text: ` @${id}` })),
    el("span", { class: "badge", testid: "mentor-status" }),
    el("div", { class: "msg", testid: "mentor-message" }),
    el(
      "div",
      { class: "actions" },
      button("mentor-chat", "Chat", () => notify("open-chat", { peer: id })),
      button("mentor-call", "☎ Call", () => notify("place-call", { peer: id, type: "video" })),
      button("mentor-ask", "Ask for help", () => notify("ask-mentor", { mentorId: id }), "ask"),
    ),
  );
  nodes.set(id, node);
  return node;
}

function renderMentors() {
  const list = $("mentor-list");
  const mentors = [...state.mentors.values()].sort(
    (a, b) =>
      Number(b.online) - Number(a.online) ||
      STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
      (a.name || a.mentor_id).localeCompare(b.name || b.mentor_id),
  );
  for (const [id, node] of nodes) {
    if (!state.mentors.has(id)) {
      node.remove();
      nodes.delete(id);
    }
  }
  const me = state.me;
  mentors.forEach((m, index) => {
    const node = card(m.mentor_id);
    const mine = m.mentor_id === myId();
    node.dataset.online = String(Boolean(m.online));
    node.dataset.status = m.status;
    node.querySelector(".n").textContent = (m.name || m.mentor_id) + (mine ? " (you)" : "");
    const badge = node.querySelector(".badge");
    badge.dataset.status = m.status;
    badge.textContent = STATUS_LABEL[m.status] || m.status;
    node.querySelector(".dot").title = m.online ? "online" : "offline";
    node.querySelector(".msg").textContent = m.status_message || "";
    node.title = `updated ${clock(m.updated_at)}`;
    node.querySelector(".actions").hidden = mine || !me;
    node.querySelector(".ask").hidden = !me || me.role !== "student";
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  $("mentor-count").textContent = String(mentors.filter((m) => m.online).length) + " online";
  $("mentor-empty").hidden = mentors.length > 0;
  renderMyStatus();
}

// -- my status (mentors) ----------------------------------------------------------------------
function renderMyStatus() {
  if (!state.me || state.me.role !== "mentor") return;
  const mine = state.mentors.get(state.me.user_id);
  const status = mine ? mine.status : "offline";
  $("my-status").dataset.status = status;
  $("my-status").textContent = STATUS_LABEL[status] || status;
  for (const button of document.querySelectorAll(".presets button")) {
    button.setAttribute("aria-pressed", String(button.dataset.status === status));
  }
  const input = $("status-message");
  if (mine && !input.dataset.touched) input.value = mine.status_message || "";
}

async function setMyStatus(status) {
  const data = { status_message: $("status-message").value.trim() || null };
  try {
    const ack =
      status === "available" ? await net.request("mentor_available", data) : await net.request("mentor_busy", { ...data, status });
    if (ack && ack.mentor_id) onUpdate(ack);
    delete $("status-message").dataset.touched;
  } catch {
    /* shown as a toast */
  }
}

export function init() {
  net.on("mentor_status_snapshot", onSnapshot);
  net.on("mentor_status_update", onUpdate);
  subscribe("mentors", renderMentors);
  subscribe("session", renderMentors);
  subscribe("reset", () => {
    state.mentors.clear();
    notify("mentors");
  });

  for (const button of document.querySelectorAll(".presets button")) {
    button.addEventListener("click", () => setMyStatus(button.dataset.status));
  }
  $("status-message").addEventListener("input", () => ($("status-message").dataset.touched = "1"));
  $("status-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const mine = state.me && state.mentors.get(state.me.user_id);
    setMyStatus(mine && mine.status !== "in_session" ? mine.status : "available");
  });
}
