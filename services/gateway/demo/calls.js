/* The calls panel and the incoming-call banner: place a call, ring with a countdown from
 * `expires_at`, accept / reject, the duration while in a call, end it; the last five calls. */

import { $, clock, duration, el, toast, USER_ID_RE } from "./dom.js";
import * as net from "./net.js";
import { localMs, myId, nameOf, rememberName, subscribe } from "./state.js";

const CALL_DATA = { client: "web-demo" };

/* The current call (one at a time): {call_id, direction: "out"|"in", peer, type,
 * phase: "placing"|"ringing"|"accepted", expiresAt (local ms), acceptedAt (local ms)} */
let call = null;
let history = []; // the last calls, one line each

async function placeCall(peer, type) {
  peer = (peer || "").trim();
  if (!USER_ID_RE.test(peer)) {
    toast("error", "Not a user id", "Type the id of the person to call.");
    return;
  }
  if (call) {
    toast("error", "Already in a call", "End the current call first.");
    return;
  }
  $("call-peer").value = peer;
  const placed = { call_id: null, direction: "out", peer, type, phase: "placing" };
  call = placed;
  renderCall();
  try {
    const ack = await net.request("initiate_call", { receiver_id: peer, call_type: type, call_data: CALL_DATA });
    if (call !== placed) return;
    placed.call_id = ack.call_id;
    placed.expiresAt = localMs(ack.expires_at);
    if (ack.state === "rejected") finishCall(placed, rejectedText(placed, null, ack.reason));
    else if (placed.phase === "placing") placed.phase = "ringing";
  } catch (err) {
    if (call === placed) finishCall(placed, `Call to ${nameOf(peer)} failed: ${err.message}`);
  }
  renderCall();
}

const callMatches = (data) => call && call.call_id && call.call_id === data.call_id;

function onCallInitiated(data) {
  const outgoing = data.caller_id === myId();
  rememberName(data.caller_id, data.caller_name);
  if (call && call.call_id === data.call_id) return;
  if (call && call.phase === "placing" && outgoing && call.peer === data.receiver_id) {
    call.call_id = data.call_id; // our own call, its push came before the ack
  } else if (call) {
    return; // one call at a time (the server answers a third party with "busy")
  } else {
    call = {
      call_id: data.call_id,
      direction: outgoing ? "out" : "in",
      peer: outgoing ? data.receiver_id : data.caller_id,
      type: data.call_type,
    };
  }
  call.phase = "ringing";
  call.expiresAt = localMs(data.expires_at);
  renderCall();
}

function onCallAccepted(data) {
  if (!callMatches(data)) return;
  call.phase = "accepted";
  call.acceptedAt = localMs(data.accepted_at);
  renderCall();
}

function rejectedText(rejected, by, reason) {
  const who = nameOf(rejected.peer);
  if (by === null || by === undefined) {
    if (reason === "offline") return `${who} is offline — call not placed`;
    if (reason === "busy") return `${who} is busy in another call`;
    return `Call refused${reason ? ": " + reason : ""}`;
  }
  if (by === myId()) return `You rejected the call from ${who}`;
  return `${who} rejected the call${reason ? ` (${reason})` : ""}`;
}

function onCallRejected(data) {
  if (callMatches(data)) finishCall(call, rejectedText(call, data.rejected_by, data.reason));
}

function onCallEnded(data) {
  if (!callMatches(data)) return;
  const who = nameOf(call.peer);
  const took = duration(data.duration_s);
  let text;
  if (data.reason === "cancelled") text = call.direction === "out" ? `You cancelled the call to ${who}` : `Missed call from ${who} (cancelled)`;
  else if (data.reason === "connection_lost") text = `Call with ${who} dropped (connection lost) · ${took}`;
  else text = `Call with ${who} ended by ${data.ended_by === myId() ? "you" : who} · ${took}`;
  finishCall(call, text);
}

function onCallTimeout(data) {
  if (!callMatches(data)) return;
  finishCall(call, call.direction === "out" ? `No answer from ${nameOf(call.peer)} (30 s)` : `Missed call from ${nameOf(call.peer)}`);
}

function onCallSignal(data) {
  if (callMatches(data)) toast("info", `Signal from ${nameOf(data.from_user_id)}`, JSON.stringify(data.signal).slice(0, 120), 3000);
}

function finishCall(finished, text) {
  if (call === finished) call = null;
  $("call-summary").textContent = text;
  history.unshift(`${clock()} · ${finished.type || ""} · ${text}`);
  history.length = Math.min(history.length, 5);
  renderCall();
}

async function answerCall(accept) {
  const ringing = call;
  if (!ringing || ringing.direction !== "in" || ringing.phase !== "ringing") return;
  try {
    if (accept) {
      await net.request("accept_call", { call_id: ringing.call_id, call_data: CALL_DATA });
      if (call === ringing && ringing.phase === "ringing") {
        ringing.phase = "accepted";
        ringing.acceptedAt = ringing.acceptedAt || Date.now();
      }
    } else {
      await net.request("reject_call", { call_id: ringing.call_id, reason: "declined in the demo" });
      if (call === ringing) finishCall(ringing, rejectedText(ringing, myId(), null));
    }
  } catch {
    /* shown as a toast */
  }
  renderCall();
}

async function endCall() {
  if (!call || !call.call_id) return;
  try {
    await net.request("end_call", { call_id: call.call_id });
  } catch {
    /* shown as a toast */
  }
}

/** Ringing calls are pushed again as call_initiated after connecting; an accepted call is not,
 * so it is looked up in the call history — which also tells whether the call we showed before
 * the connection dropped ended meanwhile. */
async function restoreCall() {
  try {
    const calls = (await net.api("/api/calls")).calls || [];
    const current = call;
    if (current && current.call_id) {
      const record = calls.find((c) => c.call_id === current.call_id);
      if (record && record.state !== "ringing" && record.state !== "accepted" && call === current) {
        finishCall(current, `Call with ${nameOf(current.peer)} ended while you were away (${record.outcome})`);
      }
      return;
    }
    const live = calls.find((c) => c.state === "accepted");
    if (live && !call) {
      rememberName(live.peer_id, live.peer_name);
      call = {
        call_id: live.call_id,
        direction: live.direction === "outgoing" ? "out" : "in",
        peer: live.peer_id,
        type: live.call_type,
        phase: "accepted",
        acceptedAt: localMs(live.accepted_at),
      };
      renderCall();
    }
  } catch {
    /* not essential */
  }
}

function renderCall() {
  const phase = !call ? "idle" : call.phase === "accepted" ? "accepted" : call.direction === "in" ? "incoming" : "outgoing";
  $("call-state").dataset.state = phase;
  const who = call ? nameOf(call.peer) : "";
  const type = call ? call.type || "video" : "";
  const lines = {
    idle: "No call.",
    outgoing: call && call.phase === "placing" ? `Calling ${who}… (${type})` : `Ringing ${who}… (${type})`,
    incoming: `${who} is calling you (${type})`,
    accepted: `In ${type} call with ${who}`,
  };
  $("call-line").textContent = lines[phase];
  $("call-end").hidden = phase === "idle" || phase === "incoming";
  $("call-end").textContent = phase === "accepted" ? "End call" : "Cancel";
  $("call-signal").hidden = phase !== "accepted";
  $("call-panel-accept").hidden = phase !== "incoming";
  $("call-panel-reject").hidden = phase !== "incoming";
  for (const button of document.querySelectorAll("#call-form button")) button.disabled = phase !== "idle";
  $("incoming-call").hidden = phase !== "incoming";
  if (phase === "incoming") $("incoming-text").textContent = `${who} is calling you (${call.type})`;
  $("call-history").replaceChildren(...history.map((line) => el("li", { text: line })));
  if (phase !== "idle") $("call-summary").textContent = "";
  tickCall();
}

/** The countdown while ringing and the duration while in the call. */
function tickCall() {
  let countdown = "";
  let elapsed = "";
  if (call && call.phase === "ringing" && call.expiresAt) {
    countdown = `${Math.max(0, Math.ceil((call.expiresAt - Date.now()) / 1000))} s`;
  }
  if (call && call.phase === "accepted") elapsed = duration((Date.now() - (call.acceptedAt || Date.now())) / 1000);
  $("call-countdown").textContent = countdown;
  $("incoming-countdown").textContent = countdown;
  $("call-duration").textContent = elapsed;
}

export function init() {
  const pushes = {
    call_initiated: onCallInitiated,
    call_accepted: onCallAccepted,
    call_rejected: onCallRejected,
    call_ended: onCallEnded,
    call_timeout: onCallTimeout,
    call_signal: onCallSignal,
  };
  for (const [event, handler] of Object.entries(pushes)) net.on(event, handler);
  subscribe("online", () => {
    restoreCall();
    renderCall();
  });
  subscribe("reset", () => {
    call = null;
    history = [];
    $("call-summary").textContent = "";
    renderCall();
  });
  subscribe("place-call", ({ peer, type }) => placeCall(peer, type));

  for (const button of document.querySelectorAll("#call-form button")) {
    button.addEventListener("click", () => placeCall($("call-peer").value, button.dataset.type));
  }
  $("call-form").addEventListener("submit", (event) => {
    event.preventDefault();
    placeCall($("call-peer").value, "video");
  });
  for (const id of ["call-accept", "call-panel-accept"]) $(id).addEventListener("click", () => answerCall(true));
  for (const id of ["call-reject", "call-panel-reject"]) $(id).addEventListener("click", () => answerCall(false));
  $("call-end").addEventListener("click", endCall);
  $("call-signal").addEventListener("click", () => {
    if (call) net.fire("call_signal", { call_id: call.call_id, signal: { type: "demo", sent_at: new Date().toISOString() } });
  });
  renderCall();
  setInterval(tickCall, 250);
}
