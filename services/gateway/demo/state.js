/* The state the panels share, and how they tell each other about it.
 *
 * A panel keeps what only it shows to itself; what several panels show lives in `state`.
 * A panel that changes shared state calls `notify(topic)`; panels that show it `subscribe`.
 * Panels never import each other: a request from one panel to another is a topic too.
 *
 *   "session"     the signed-in user or role changed (state.me, or signed out)
 *   "online"      a `connected` frame was handled: reload what the server has for this user
 *   "reset"       forget the previous user's data (signed out, or someone else signed in)
 *   "mentors"     state.mentors changed
 *   "open-chat"   {peer}          open the conversation with a user
 *   "place-call"  {peer, type}    call a user
 *   "ask-mentor"  {mentorId}      address the next help request to a mentor
 */

export const state = {
  me: null, // {user_id, role, name} from `connected`; null while not connected
  clockOffsetMs: 0, // server clock − local clock
  names: new Map(), // user id → display name
  mentors: new Map(), // mentor id → mentor status (PROTOCOL §5)
};

const subscribers = new Map(); // topic → Set of functions

/** Call `fn(detail)` on every `notify(topic, detail)`; returns a function that unsubscribes. */
export function subscribe(topic, fn) {
  if (!subscribers.has(topic)) subscribers.set(topic, new Set());
  subscribers.get(topic).add(fn);
  return () => subscribers.get(topic).delete(fn);
}

export function notify(topic, detail) {
  for (const fn of [...(subscribers.get(topic) || [])]) fn(detail);
}

export const nameOf = (id) => state.names.get(id) || id;

export function rememberName(id, name) {
  if (id && name) state.names.set(id, name);
}

export const myId = () => (state.me ? state.me.user_id : null);
export const serverNow = () => Date.now() + state.clockOffsetMs;
/** A server time (ISO) on the local clock, in ms. */
export const localMs = (iso) => Date.parse(iso) - state.clockOffsetMs;
