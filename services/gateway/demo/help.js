/* The student's side of the help panel: the request form (subjects, urgencies and quick texts
 * from GET /api/help/templates — the page holds no copy of them) and "My requests". */

import { $, clock, el, STATUS_LABEL, toast } from "./dom.js";
import * as net from "./net.js";
import { nameOf, notify, rememberName, serverNow, state, subscribe } from "./state.js";
import { helpCard } from "./help-card.js";

const BROADCAST = "broadcast_to_mentors";

let templates = null; // the answer of GET /api/help/templates, once it came
let urgency = null;
const mine = new Map(); // request id → {req, status, detail, mentorId?}

// -- templates and the form -----------------------------------------------------------------
async function loadTemplates() {
  try {
    templates = await net.api("/api/help/templates");
    $("help-templates-error").hidden = true;
  } catch (err) {
    // Keep the ones already shown (they do not change); without any, say so plainly.
    if (!templates) {
      $("help-templates-error-text").textContent = `Could not load the help templates (${err.message}), so no request can be sent.`;
      $("help-templates-error").hidden = false;
    }
  }
  if (templates && !templates.urgencies.some((u) => u.value === urgency)) urgency = templates.default_urgency;
  renderForm();
}

function renderForm() {
  const subjects = templates ? templates.subjects : [];
  const select = $("help-subject");
  const current = select.value;
  select.replaceChildren(...subjects.map((s) => el("option", { value: s, text: s })));
  if (current && subjects.includes(current)) select.value = current;
  $("help-urgencies").replaceChildren(
    ...(templates ? templates.urgencies : []).map((u) => {
      const checked = u.value === urgency;
      return el(
        "button",
        {
          type: "button",
          class: "urgency",
          role: "radio",
          testid: `help-urgency-${u.value}`,
          "aria-checked": String(checked),
          title: u.description,
          style: `border-color:${u.color};${checked ? `background:${u.color}` : `color:${u.color}`}`,
          onclick: () => {
            urgency = u.value;
            renderForm();
          },
        },
        el("span", { class: "u-label", text: u.label }),
        u.description,
      );
    }),
  );
  $("help-send").disabled = !templates;
  renderQuickActions();
  renderTargets();
}

function renderQuickActions() {
  const subject = $("help-subject").value;
  const actions = templates ? templates.quick_actions.filter((q) => q.subject === subject) : [];
  $("help-quick").replaceChildren(
    ...actions.map((q) =>
      el("button", { type: "button", testid: "help-quick-action", text: q.text, onclick: () => ($("help-message").value = q.text) }),
    ),
  );
}

function renderTargets() {
  const select = $("help-target");
  const current = select.value || BROADCAST;
  const mentors = [...state.mentors.values()].sort((a, b) => (a.name || "").localeCompare(b.name || ""));
  select.replaceChildren(
    el("option", { value: BROADCAST, text: "All available mentors" }),
    ...mentors.map((m) => el("option", { value: m.mentor_id, text: `${m.name || m.mentor_id} — ${m.online ? STATUS_LABEL[m.status] : "offline"}` })),
  );
  select.value = [...select.options].some((o) => o.value === current) ? current : BROADCAST;
}

function setNote(text, error = false) {
  $("help-note").textContent = text;
  $("help-note").className = error ? "form-note error" : "form-note";
}

async function sendRequest() {
  const data = {
    subject: $("help-subject").value,
    message: $("help-message").value.trim(),
    urgency,
    mentor_id: $("help-target").value || BROADCAST,
  };
  if (!templates) return setNote("The help templates did not load; reload the page.", true);
  if (!data.message) return setNote("Write what you need help with.", true);
  try {
    const ack = await net.request("student_request_help", data);
    const mentors = `${ack.delivered_to} mentor${ack.delivered_to === 1 ? "" : "s"}`;
    mine.set(ack.request_id, {
      req: {
        ...data,
        request_id: ack.request_id,
        mentor_id: data.mentor_id === BROADCAST ? null : data.mentor_id,
        created_at: new Date(serverNow()).toISOString(),
        expires_at: ack.expires_at,
      },
      status: "open",
      detail: `sent to ${mentors} now`,
    });
    $("help-message").value = "";
    setNote(`Request sent — ${mentors} notified.`);
    renderMine();
  } catch (err) {
    setNote(`${err.code}: ${err.message}`, true);
  }
}

// -- my requests ----------------------------------------------------------------------------
async function refresh() {
  if (!state.me || state.me.role !== "student") return;
  try {
    const ack = await net.request("list_help_requests", {});
    for (const req of ack.requests || []) {
      rememberName(req.student_id, req.student_name);
      const known = mine.get(req.request_id);
      mine.set(req.request_id, {
        req,
        status: known && known.status !== "open" ? known.status : req.status,
        detail: known ? known.detail : "",
      });
    }
    renderMine();
  } catch {
    /* shown as a toast */
  }
}

/** A push about one of my requests: set its status and detail. */
function update(id, status, detail, extra = {}) {
  const item = mine.get(id);
  if (item) Object.assign(item, { status, detail }, extra);
  renderMine();
}

function onAccepted(data) {
  rememberName(data.mentor_id, data.mentor_name);
  toast("ok", "Help is on the way", `${data.mentor_name} accepted your request.`);
  update(data.request_id, "accepted", `accepted by ${data.mentor_name}`, { mentorId: data.mentor_id });
}

async function cancel(id) {
  try {
    await net.request("cancel_help_request", { request_id: id });
    update(id, "cancelled", "you cancelled it");
  } catch {
    /* shown as a toast */
  }
}

function renderMine() {
  const items = [...mine.values()].sort((a, b) => (b.req.created_at || "").localeCompare(a.req.created_at || ""));
  $("my-requests").replaceChildren(
    ...items.map((item) => {
      const { req, status } = item;
      const actions = [];
      if (status === "open") {
        actions.push(el("button", { type: "button", testid: "help-cancel", text: "Cancel", onclick: () => cancel(req.request_id) }));
      }
      const mentor = item.mentorId || (status === "accepted" ? req.mentor_id : null);
      if (status === "accepted" && mentor) {
        actions.push(el("button", { type: "button", text: "Chat", onclick: () => notify("open-chat", { peer: mentor }) }));
        actions.push(el("button", { type: "button", text: "☎ Call", onclick: () => notify("place-call", { peer: mentor, type: "video" }) }));
      }
      const to = req.mentor_id ? `to ${nameOf(req.mentor_id)}` : "to all mentors";
      return helpCard(req, status, { testid: "my-help-request", who: `${to} · ${clock(req.created_at)}`, detail: item.detail, actions });
    }),
  );
  if (!items.length) $("my-requests").append(el("li", { class: "empty", text: "No request yet." }));
}

export function init() {
  net.on("help_request_accepted", onAccepted);
  net.on("help_request_declined", (data) => {
    const reason = data.reason ? `: ${data.reason}` : "";
    update(data.request_id, "declined", `declined by ${nameOf(data.mentor_id)}${reason}`);
  });
  net.on("help_request_expired", (data) => update(data.request_id, "expired", "nobody accepted it in time"));
  subscribe("online", () => {
    loadTemplates();
    refresh();
  });
  subscribe("reset", () => {
    mine.clear();
    setNote("");
    renderMine();
  });
  subscribe("mentors", renderTargets);
  subscribe("ask-mentor", ({ mentorId }) => {
    $("help-target").value = mentorId;
    $("help-message").focus();
  });
  $("help-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendRequest();
  });
  $("help-subject").addEventListener("change", renderQuickActions);
  $("help-templates-retry").addEventListener("click", loadTemplates);
  renderForm();
  renderMine();
}
