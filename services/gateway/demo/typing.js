/* Typing indicators for the chat panel: ours (`user_typing` at most every 3 s while typing,
 * `user_stopped_typing` after 4 s idle or on send) and the peer's ("Maya is typing…"). */

import { $ } from "./dom.js";
import * as net from "./net.js";
import { myId, rememberName } from "./state.js";
import { bindConversation, conversation, convs } from "./conversations.js";

const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MAX_MS = 8000;

const out = { peer: null, lastSent: 0, idleTimer: null };
let panel = { openPeer: () => null, changed: () => {} };

function onComposerInput() {
  const peer = panel.openPeer();
  if (!peer || !net.isOpen()) return;
  if (!$("chat-input").value) {
    stopTypingOut(true);
    return;
  }
  const now = Date.now();
  if (out.peer !== peer || now - out.lastSent > TYPING_REFRESH_MS) {
    out.peer = peer;
    out.lastSent = now;
    net.fire("user_typing", { recipient_id: peer });
  }
  clearTimeout(out.idleTimer);
  out.idleTimer = setTimeout(() => stopTypingOut(true), TYPING_IDLE_MS);
}

/** We stopped typing (to `out.peer`); `tell` the server, or just forget it. */
export function stopTypingOut(tell) {
  clearTimeout(out.idleTimer);
  if (out.peer && tell && net.isOpen()) net.fire("user_stopped_typing", { recipient_id: out.peer });
  out.peer = null;
  out.lastSent = 0;
}

function onTyping(data) {
  if (data.user_id === myId()) return;
  const conv = conversation(data.user_id);
  bindConversation(conv, data.conversation_id);
  rememberName(data.user_id, data.user_name);
  conv.typing = data.user_name || data.user_id;
  clearTimeout(conv.typingTimer);
  conv.typingTimer = setTimeout(() => clearTyping(conv), TYPING_SHOWN_MAX_MS);
  panel.changed();
  renderTyping();
}

function onStoppedTyping(data) {
  const conv = convs.get(data.user_id);
  if (conv) clearTyping(conv);
}

export function clearTyping(conv) {
  clearTimeout(conv.typingTimer);
  if (!conv.typing) return;
  conv.typing = null;
  panel.changed();
  renderTyping();
}

/** The indicator under the open conversation. */
export function renderTyping() {
  const peer = panel.openPeer();
  const conv = peer && convs.get(peer);
  const node = $("typing");
  node.hidden = !(conv && conv.typing);
  node.textContent = conv && conv.typing ? `${conv.typing} is typing…` : "";
}

/** `openPeer()`: the conversation on screen; `changed()`: a peer started or stopped typing. */
export function init({ openPeer, changed }) {
  panel = { openPeer, changed };
  net.on("user_typing", onTyping);
  net.on("user_stopped_typing", onStoppedTyping);
  net.on("net:closed", () => stopTypingOut(false));
  $("chat-input").addEventListener("input", onComposerInput);
}
