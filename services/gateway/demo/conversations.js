/* The chat panel's data: conversations and their messages, merged from acks, pushes and
 * history, and the receipt each of my messages shows. No DOM, no network. */

import { myId, rememberName } from "./state.js";

const RECEIPT_RANK = { failed: -1, sending: 0, sent: 1, delivered: 2, read: 3 };

export const convs = new Map(); // peer id → conversation
const peerByConversation = new Map(); // conversation id → peer id

/** The conversation with `peer`, created empty when new. */
export function conversation(peer) {
  let conv = convs.get(peer);
  if (!conv) {
    conv = {
      peer,
      id: null,
      messages: new Map(), // key (message id, or local:<client_msg_id>) → message
      peerDelivered: 0, // the peer's markers on my messages
      peerRead: 0,
      deliveredSent: 0, // my markers on the peer's messages
      readSent: 0,
      maxPeerSeq: 0,
      unread: 0,
      hasMore: false,
      historyLoaded: false,
      typing: null, // the peer's name while they type
      typingTimer: null,
      receiptTimer: null,
    };
    convs.set(peer, conv);
  }
  return conv;
}

export const peerOf = (conversationId) => peerByConversation.get(conversationId);

export function bindConversation(conv, id) {
  if (!id || conv.id === id) return;
  conv.id = id;
  peerByConversation.set(id, conv.peer);
}

export function forgetAll() {
  for (const conv of convs.values()) {
    clearTimeout(conv.typingTimer);
    clearTimeout(conv.receiptTimer);
  }
  convs.clear();
  peerByConversation.clear();
}

/** What the receipt under one of my messages shows: sending, sent, delivered, read, failed. */
export function myStatusOf(conv, msg) {
  if (msg.status === "failed" || msg.status === "sending") return msg.status;
  let status = msg.status || "sent";
  if (msg.seq && msg.seq <= conv.peerDelivered && RECEIPT_RANK[status] < RECEIPT_RANK.delivered) status = "delivered";
  if (msg.seq && msg.seq <= conv.peerRead) status = "read";
  return status;
}

/** Add or update a stored message (from an ack, a push or history); returns it. */
export function upsertMessage(conv, incoming) {
  const mine = Boolean(incoming.mine) || incoming.sender_id === myId();
  let key = incoming.message_id;
  let msg = key && conv.messages.get(key);
  if (!msg && mine && incoming.client_msg_id) {
    for (const [k, m] of conv.messages) {
      if (m.client_msg_id === incoming.client_msg_id) {
        msg = m;
        conv.messages.delete(k); // re-key under the message id
        break;
      }
    }
  }
  msg = msg || { mine, status: mine ? "sent" : undefined };
  const previous = msg.status;
  Object.assign(msg, incoming, { mine });
  if (mine && previous && incoming.status && RECEIPT_RANK[previous] > RECEIPT_RANK[incoming.status]) msg.status = previous;
  if (!key) key = msg.message_id || `local:${msg.client_msg_id}`;
  conv.messages.set(key, msg);
  if (!mine && msg.seq > conv.maxPeerSeq) conv.maxPeerSeq = msg.seq;
  rememberName(msg.sender_id, msg.sender_name);
  return msg;
}

/** Merge a page of `get_history`, with the receipts it carries. */
export function mergeHistory(conv, messages) {
  const me = myId();
  for (const m of messages) {
    upsertMessage(conv, m);
    if (m.sender_id !== me) {
      if (m.status === "read") conv.readSent = Math.max(conv.readSent, m.seq);
      if (m.status !== "sent") conv.deliveredSent = Math.max(conv.deliveredSent, m.seq);
    } else {
      if (m.status === "read") conv.peerRead = Math.max(conv.peerRead, m.seq);
      if (m.status !== "sent") conv.peerDelivered = Math.max(conv.peerDelivered, m.seq);
    }
  }
}

/** The lowest seq held, for paging back. */
export function oldestSeq(conv) {
  const seqs = [...conv.messages.values()].map((m) => m.seq).filter(Boolean);
  return seqs.length ? Math.min(...seqs) : null;
}

/** Messages in order: by seq, unsent ones last in the order they were written. */
export const ordered = (conv) =>
  [...conv.messages.values()].sort((a, b) => (a.seq || Infinity) - (b.seq || Infinity) || (a.localAt || 0) - (b.localAt || 0));
