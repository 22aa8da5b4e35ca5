/* Editing and deleting one's own messages (PROTOCOL v1.1 §4), a part of the chat panel:
 * the edit/delete buttons under a message, and the `message_edited` / `message_deleted`
 * pushes both participants get. The server's push is the one place a change is applied. */

import { el, toast } from "./dom.js";
import * as net from "./net.js";
import * as model from "./conversations.js";

let changed = () => {};

/** Apply a `message_edited` / `message_deleted` push to the message it names, if held. */
function apply(data) {
  const peer = model.peerOf(data.conversation_id);
  const msg = peer && model.conversation(peer).messages.get(data.message_id);
  if (!msg) return;
  msg.text = data.text;
  if (data.edited_at) msg.edited_at = data.edited_at;
  if (data.deleted_at) msg.deleted_at = data.deleted_at;
  changed(peer);
}

async function edit(conv, msg) {
  const text = window.prompt("Edit your message", msg.text);
  if (text === null || text === msg.text) return;
  try {
    await net.request("edit_message", { conversation_id: conv.id, message_id: msg.message_id, text });
  } catch (err) {
    toast("error", "Not edited", err.message);
  }
}

async function remove(conv, msg) {
  if (!window.confirm("Delete this message for both of you?")) return;
  try {
    await net.request("delete_message", { conversation_id: conv.id, message_id: msg.message_id });
  } catch (err) {
    toast("error", "Not deleted", err.message);
  }
}

/** The bubble's text: the message's, or a note where it was deleted. */
export const shownText = (msg) => (msg.deleted_at ? "message deleted" : msg.text);

/** "edited" and the edit/delete links of a message: only one's own, stored and not deleted. */
export function controls(conv, msg) {
  if (msg.deleted_at) return [];
  const edited = msg.edited_at ? el("span", { testid: "message-edited", text: "edited" }) : null;
  if (!msg.mine || !msg.message_id || !conv.id) return [edited];
  const link = (testid, text, onclick) => el("button", { type: "button", class: "link", testid, text, onclick });
  return [edited, link("message-edit", "edit", () => edit(conv, msg)), link("message-delete", "delete", () => remove(conv, msg))];
}

export function init({ render }) {
  changed = render;
  net.on("message_edited", apply);
  net.on("message_deleted", apply);
}
