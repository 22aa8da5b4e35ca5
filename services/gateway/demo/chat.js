/* The chat panel: conversation chips, the open conversation with receipts, the composer,
 * and the peer suggestions (mentors and conversations) the chat and call inputs offer.
 * Typing indicators are in typing.js, the data in conversations.js. */

import { $, clock, el, randomId, STATUS_LABEL, toast, USER_ID_RE } from "./dom.js";
import * as net from "./net.js";
import { myId, nameOf, state, subscribe } from "./state.js";
import * as model from "./conversations.js";
import * as typing from "./typing.js";
import * as changes from "./message-changes.js";

const NO_PEER_TITLE = "Pick a mentor or type a user id to start chatting.";
const RECEIPT_TEXT = { sending: "sending…", sent: "✓", delivered: "✓✓", read: "✓✓ Read", failed: "⚠ not sent" };
const RECEIPT_TITLE = { sending: "sending", sent: "sent", delivered: "delivered", read: "read", failed: "failed" };

let openPeer = null;

function onMessageReceived(data) {
  const mine = data.sender_id === myId();
  const peer = mine ? data.recipient_id : data.sender_id;
  const conv = model.conversation(peer);
  model.bindConversation(conv, data.conversation_id);
  const known = conv.messages.has(data.message_id);
  model.upsertMessage(conv, data);
  if (!mine) {
    if (!known && data.seq > conv.readSent) conv.unread += 1;
    typing.clearTyping(conv);
    if (!openPeer) openConversation(peer, { focus: false });
    else if (peer !== openPeer && !known) toast("info", `Message from ${data.sender_name || peer}`, changes.shownText(data).slice(0, 120), 4000);
    scheduleReceipts(conv);
  }
  renderChips();
  if (peer === openPeer) renderMessages();
}

function onMessageStatus(data) {
  const peer = model.peerOf(data.conversation_id);
  if (!peer) return;
  const conv = model.conversation(peer);
  conv.peerDelivered = Math.max(conv.peerDelivered, data.up_to_seq);
  if (data.status === "read") conv.peerRead = Math.max(conv.peerRead, data.up_to_seq);
  if (peer === openPeer) renderMessages();
}

const conversationVisible = (conv) => conv.peer === openPeer && document.visibilityState === "visible";

/** Tell the server what we received (`message_delivered`) and, when the conversation is on
 * screen, what we read (`message_read`) — coalesced, since catch-up pushes come in bursts. */
function scheduleReceipts(conv) {
  if (conv.receiptTimer) return;
  conv.receiptTimer = setTimeout(() => {
    conv.receiptTimer = null;
    if (!net.isOpen() || !conv.id || !conv.maxPeerSeq) return;
    const upTo = conv.maxPeerSeq;
    if (upTo > conv.deliveredSent) {
      conv.deliveredSent = upTo;
      net.fire("message_delivered", { conversation_id: conv.id, up_to_seq: upTo });
    }
    if (conversationVisible(conv) && upTo > conv.readSent) {
      conv.readSent = upTo;
      conv.unread = 0;
      net.fire("message_read", { conversation_id: conv.id, up_to_seq: upTo });
      renderChips();
    }
  }, 60);
}

async function refreshConversations() {
  try {
    const ack = await net.request("list_conversations", {});
    for (const summary of ack.conversations || []) {
      const conv = model.conversation(summary.peer_id);
      model.bindConversation(conv, summary.conversation_id);
      if (summary.last_message) model.upsertMessage(conv, summary.last_message);
      if (!conversationVisible(conv)) conv.unread = summary.unread_count;
    }
    renderChips();
    if (openPeer) await loadHistory(model.conversation(openPeer));
  } catch {
    /* shown as a toast */
  }
}

async function loadHistory(conv, { older = false } = {}) {
  if (!conv.id || !net.isOpen()) return;
  const data = { conversation_id: conv.id, limit: 50 };
  const oldest = older ? model.oldestSeq(conv) : null;
  if (oldest) data.before_seq = oldest;
  try {
    const ack = await net.request("get_history", data);
    model.mergeHistory(conv, ack.messages);
    if (older || !conv.historyLoaded) conv.hasMore = ack.has_more;
    conv.historyLoaded = true;
    scheduleReceipts(conv);
    if (conv.peer === openPeer) renderMessages({ keepScroll: older });
  } catch {
    /* shown as a toast */
  }
}

function openConversation(peer, { focus = true } = {}) {
  peer = (peer || "").trim();
  if (!USER_ID_RE.test(peer)) {
    toast("error", "Not a user id", "1–64 characters of A–Z a–z 0–9 _ . @ -");
    return;
  }
  if (peer === myId()) {
    toast("error", "That's you", "Pick someone else to chat with.");
    return;
  }
  if (openPeer && openPeer !== peer) typing.stopTypingOut(true);
  openPeer = peer;
  const conv = model.conversation(peer);
  $("chat-peer").value = peer;
  renderChat();
  if (conv.id && !conv.historyLoaded) loadHistory(conv);
  scheduleReceipts(conv);
  if (focus) $("chat-input").focus();
}

function renderComposer() {
  const disabled = !net.isOpen() || !openPeer;
  $("chat-input").disabled = disabled;
  $("chat-send").disabled = disabled;
}

function renderChat() {
  renderChips();
  renderMessages();
  renderComposer();
}

function renderPeerOptions() {
  const ids = new Set([...state.mentors.keys(), ...model.convs.keys()]);
  ids.delete(myId());
  $("peer-options").replaceChildren(...[...ids].sort().map((id) => el("option", { value: id, text: nameOf(id) })));
}

function renderChips() {
  const chips = [...model.convs.values()].map((conv) =>
    el(
      "button",
      {
        type: "button",
        class: "chip",
        testid: `conv-chip-${conv.peer}`,
        "aria-current": String(conv.peer === openPeer),
        onclick: () => openConversation(conv.peer),
      },
      nameOf(conv.peer),
      conv.typing ? el("span", { class: "typing-dot", title: "typing", text: "✎" }) : null,
      conv.unread > 0 && conv.peer !== openPeer ? el("span", { class: "unread", testid: "conv-unread", text: String(conv.unread) }) : null,
    ),
  );
  $("conv-chips").replaceChildren(...chips);
  renderPeerOptions();
}

function messageNode(conv, msg) {
  const status = msg.mine ? model.myStatusOf(conv, msg) : null;
  const retry = () => sendStored(conv, msg);
  return el(
    "li",
    {
      class: `msg-item ${msg.mine ? "mine" : "theirs"}`,
      testid: "chat-message",
      dataset: { mine: String(msg.mine), seq: String(msg.seq || ""), status: status || "received" },
    },
    el("div", { class: `bubble${msg.deleted_at ? " deleted" : ""}`, testid: "message-text", text: changes.shownText(msg) }),
    el(
      "div",
      { class: "msg-meta" },
      msg.mine ? null : el("span", { text: msg.sender_name || nameOf(msg.sender_id) }),
      el("span", { text: msg.sent_at ? clock(msg.sent_at) : "" }),
      msg.mine
        ? el("span", { class: "receipt", testid: "message-receipt", dataset: { status }, title: RECEIPT_TITLE[status], text: RECEIPT_TEXT[status] })
        : null,
      msg.mine && status === "failed" ? el("button", { type: "button", class: "link", testid: "message-retry", text: "retry", onclick: retry }) : null,
      ...changes.controls(conv, msg),
    ),
  );
}

function renderMessages({ keepScroll = false } = {}) {
  const scroller = $("chat-scroll");
  const list = $("chat-messages");
  if (!openPeer) {
    list.replaceChildren();
    $("load-older").hidden = true;
    typing.renderTyping();
    return;
  }
  const conv = model.conversation(openPeer);
  const mentor = state.mentors.get(conv.peer);
  $("chat-title").replaceChildren(
    `Chat with ${nameOf(conv.peer)}`,
    el("span", { class: "sub", text: `@${conv.peer}` }),
    ...(mentor ? [el("span", { class: "badge", dataset: { status: mentor.status }, style: "margin-left:8px", text: STATUS_LABEL[mentor.status] })] : []),
  );
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const oldHeight = scroller.scrollHeight;
  const messages = model.ordered(conv);
  list.replaceChildren(...messages.map((msg) => messageNode(conv, msg)));
  if (!messages.length) list.append(el("li", { class: "empty", text: conv.id ? "No messages yet." : "No messages yet — say hello." }));
  $("load-older").hidden = !conv.hasMore;
  const switched = list.dataset.peer !== conv.peer;
  list.dataset.peer = conv.peer;
  if (keepScroll) scroller.scrollTop = scroller.scrollHeight - oldHeight;
  else if (nearBottom || switched) scroller.scrollTop = scroller.scrollHeight;
  typing.renderTyping();
}

function sendMessage() {
  const input = $("chat-input");
  const text = input.value;
  if (!openPeer || !text.trim()) return;
  const conv = model.conversation(openPeer);
  const me = state.me;
  const msg = model.upsertMessage(conv, {
    mine: true,
    sender_id: me.user_id,
    sender_name: me.name,
    recipient_id: openPeer,
    text,
    client_msg_id: `${me.user_id}-${Date.now().toString(36)}-${randomId()}`,
    status: "sending",
    localAt: Date.now(),
  });
  input.value = "";
  typing.stopTypingOut(true);
  renderMessages();
  sendStored(conv, msg);
}

async function sendStored(conv, msg) {
  msg.status = "sending";
  msg.retryOnReconnect = false;
  if (conv.peer === openPeer) renderMessages();
  const data = { recipient_id: conv.peer, text: msg.text, client_msg_id: msg.client_msg_id };
  try {
    const ack = await net.request("send_message", data);
    model.bindConversation(conv, ack.conversation_id);
    model.upsertMessage(conv, { ...ack, mine: true, sender_id: myId(), status: "sent" });
  } catch (err) {
    msg.status = "failed";
    msg.retryOnReconnect = err.code === "disconnected" || err.code === "unavailable" || err.code === "timeout";
  }
  if (conv.peer === openPeer) renderMessages();
}

function onOnline() {
  refreshConversations();
  // Messages that failed because the socket dropped: send them again (same client_msg_id,
  // so the server delivers each at most once).
  for (const conv of model.convs.values()) {
    for (const msg of conv.messages.values()) {
      if (msg.mine && msg.retryOnReconnect) sendStored(conv, msg);
    }
  }
  renderChat();
}

function onReset() {
  typing.stopTypingOut(false);
  model.forgetAll();
  openPeer = null;
  $("chat-title").textContent = NO_PEER_TITLE;
  renderChat();
}

export function init() {
  typing.init({ openPeer: () => openPeer, changed: renderChips });
  changes.init({ render: (peer) => peer === openPeer && renderMessages() });
  net.on("message_received", onMessageReceived);
  net.on("message_status", onMessageStatus);
  net.on("net:status", renderComposer);
  subscribe("online", onOnline);
  subscribe("reset", onReset);
  subscribe("mentors", renderPeerOptions);
  subscribe("open-chat", ({ peer }) => openConversation(peer));

  $("chat-peer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openConversation($("chat-peer").value);
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendMessage();
    }
  });
  $("load-older").addEventListener("click", () => openPeer && loadHistory(model.conversation(openPeer), { older: true }));
  const markRead = () => openPeer && scheduleReceipts(model.conversation(openPeer));
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("focus", markRead);
  renderChat();
}
