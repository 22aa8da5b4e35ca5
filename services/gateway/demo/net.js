/* The connection to the gateway — the only module that talks to the server.
 *
 * One WebSocket (`/ws?token=…`, PROTOCOL v1): connect, reconnect with backoff, heartbeat.
 * `request(event, data)` sends a frame with a fresh `ref` and settles with its `ack` or `error`;
 * `on(event, fn)` subscribes to pushes. The HTTP side: `/dev/config`, `/dev/token` and the
 * Bearer-authenticated `api(path)`. It knows nothing of the page; it tells whoever listens:
 *
 *   "net:frame"    {dir: "in"|"out"|"sys", frame, note}   every frame in and out, and notes
 *   "net:status"   {state, label, want}   connecting / connected / reconnecting / error / …
 *   "net:problem"  {title, text, ms}      an `error` frame, or a request that could not be sent
 *   "net:closed"   {code, reason}         the socket is gone (pending requests were rejected)
 *   "net:config"   {devMode}              what `/dev/config` said
 */

const REQUEST_TIMEOUT_MS = 15000;
const PING_EVERY_MS = 25000;
const BACKOFF_MAX_MS = 30000;

export class ProtocolError extends Error {
  constructor(code, message, event) {
    super(message);
    this.code = code;
    this.event = event;
  }
}

const conn = {
  devMode: null, // from GET /dev/config
  credentials: null, // {user_id, role, name} for a dev token, or {token}
  token: null,
  ws: null,
  open: false, // the `connected` frame has come
  want: false, // the user wants to be connected (reconnect when the socket drops)
  attempt: 0,
  reconnectAt: 0,
  reconnectTimer: null,
  labelTimer: null,
  pingTimer: null,
  refSeq: 0,
  pending: new Map(), // ref → {resolve, reject, timer, event}
};

const listeners = new Map(); // event name (or "net:…") → Set of functions

/** Subscribe to a push (`mentor_status_update`, …) or to one of the "net:…" notices. */
export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}

function emit(event, data) {
  for (const fn of [...(listeners.get(event) || [])]) fn(data);
}

const note = (text) => emit("net:frame", { dir: "sys", frame: null, note: text });
const status = (state, label) => emit("net:status", { state, label, want: conn.want });

export const isOpen = () => Boolean(conn.ws && conn.ws.readyState === WebSocket.OPEN && conn.open);
export const devMode = () => conn.devMode;

export async function loadConfig() {
  try {
    const response = await fetch("/dev/config");
    conn.devMode = response.ok && Boolean((await response.json()).dev_mode);
  } catch {
    conn.devMode = false;
  }
  emit("net:config", { devMode: conn.devMode });
  return conn.devMode;
}

/** Connect as `credentials` and stay connected (reconnecting) until `stop()`. */
export function start(credentials) {
  conn.credentials = credentials;
  conn.want = true;
  conn.attempt = 0;
  connect();
}

/** Sign out: close the socket for good. */
export function stop() {
  conn.want = false;
  clearReconnect();
  conn.attempt = 0;
  if (conn.ws) conn.ws.close(1000, "bye");
  else status("disconnected", "Disconnected");
}

export function retryNow() {
  clearReconnect();
  connect();
}

function clearReconnect() {
  clearTimeout(conn.reconnectTimer);
  clearInterval(conn.labelTimer);
  conn.reconnectTimer = null;
  conn.labelTimer = null;
}

function wsUrl(token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`;
}

async function fetchDevToken() {
  const { user_id, role, name } = conn.credentials;
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id, role, name: name || null }),
  });
  if (response.status === 404) throw new ProtocolError("dev_mode_off", "this gateway has dev tokens off", "dev_token");
  if (!response.ok) {
    const text = await response.text();
    const fatal = response.status >= 400 && response.status < 500;
    throw Object.assign(new ProtocolError(`http_${response.status}`, text.slice(0, 200), "dev_token"), { fatal });
  }
  return (await response.json()).token;
}

async function connect() {
  clearReconnect();
  if (!conn.want) return;
  status("connecting", conn.attempt ? `Reconnecting… (attempt ${conn.attempt + 1})` : "Connecting…");
  try {
    // In dev mode a fresh token on every attempt (they expire); otherwise the pasted one.
    conn.token = conn.devMode ? await fetchDevToken() : conn.credentials.token;
  } catch (err) {
    note(`token: ${err.message}`);
    if (err.fatal || err.code === "dev_mode_off") {
      giveUp(`Token refused: ${err.message}`);
      if (err.code === "dev_mode_off") await loadConfig();
    } else {
      scheduleReconnect();
    }
    return;
  }
  if (!conn.want) return;
  const ws = new WebSocket(wsUrl(conn.token));
  conn.ws = ws;
  note(`opening ${wsUrl("…")}`);
  ws.onopen = () => {
    if (ws === conn.ws) status("connecting", "Authenticating…");
  };
  ws.onmessage = (message) => {
    if (ws !== conn.ws) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      note(`unreadable frame: ${String(message.data).slice(0, 200)}`);
      return;
    }
    emit("net:frame", { dir: "in", frame });
    handleFrame(frame);
  };
  ws.onclose = (close) => {
    if (ws === conn.ws) onSocketGone(close.code, close.reason);
  };
}

function onSocketGone(code, reason) {
  conn.ws = null;
  conn.open = false;
  clearInterval(conn.pingTimer);
  for (const [ref, waiter] of conn.pending) {
    clearTimeout(waiter.timer);
    waiter.reject(new ProtocolError("disconnected", "the connection dropped", waiter.event));
    conn.pending.delete(ref);
  }
  emit("net:closed", { code, reason });
  note(`socket closed: ${code}${reason ? " " + reason : ""}`);
  if (!conn.want) status("disconnected", "Disconnected");
  else if (code === 4401) giveUp(`Token refused (4401${reason ? ": " + reason : ""})`);
  else scheduleReconnect();
}

function giveUp(message) {
  conn.want = false;
  status("error", message);
  emit("net:problem", { title: "Not connected", text: message });
}

function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** conn.attempt);
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  clearReconnect();
  conn.attempt += 1;
  conn.reconnectAt = Date.now() + delay;
  conn.reconnectTimer = setTimeout(connect, delay);
  conn.labelTimer = setInterval(reconnectLabel, 250);
  reconnectLabel();
}

function reconnectLabel() {
  const left = Math.max(0, Math.ceil((conn.reconnectAt - Date.now()) / 1000));
  status("reconnecting", `Connection lost — retrying in ${left} s (attempt ${conn.attempt})`);
}

function handleFrame(frame) {
  const { event, data = {}, ref } = frame;
  if ((event === "ack" || event === "error" || event === "pong") && ref && conn.pending.has(ref)) {
    const waiter = conn.pending.get(ref);
    conn.pending.delete(ref);
    clearTimeout(waiter.timer);
    if (event === "error") {
      showError(data);
      waiter.reject(new ProtocolError(data.code, data.message, data.event || waiter.event));
    } else {
      waiter.resolve(data);
    }
    return;
  }
  if (event === "error") {
    showError(data);
    return;
  }
  if (event === "connected") {
    conn.open = true;
    conn.attempt = 0;
    startHeartbeat();
    status("connected", "Connected");
  }
  emit(event, data);
}

function showError(data) {
  const text = `${data.event ? data.event + " — " : ""}${data.message || ""}`;
  emit("net:problem", { title: `error: ${data.code}`, text, ms: 9000 });
}

function startHeartbeat() {
  clearInterval(conn.pingTimer);
  conn.pingTimer = setInterval(() => {
    const ws = conn.ws;
    request("ping", {}).catch((err) => {
      if (err.code === "timeout" && ws === conn.ws && ws) ws.close(4000, "no pong"); // → reconnect
    });
  }, PING_EVERY_MS);
}

/** Send a request with a fresh `ref`; resolves with the ack's data, rejects on `error`. */
export function request(event, data = {}) {
  if (!isOpen()) {
    emit("net:problem", { title: "Not connected", text: `${event} was not sent` });
    return Promise.reject(new ProtocolError("unavailable", "not connected", event));
  }
  const ref = `r${++conn.refSeq}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.pending.delete(ref);
      reject(new ProtocolError("timeout", `no reply within ${REQUEST_TIMEOUT_MS / 1000} s`, event));
    }, REQUEST_TIMEOUT_MS);
    conn.pending.set(ref, { resolve, reject, timer, event });
    const frame = { event, data, ref };
    emit("net:frame", { dir: "out", frame });
    conn.ws.send(JSON.stringify(frame));
  });
}

/** Fire and forget: an error is already shown (as a "net:problem"). */
export const fire = (event, data) => request(event, data).catch(() => {});

/** GET a Bearer-authenticated JSON endpoint (PROTOCOL §7) as the connected user. */
export async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${conn.token}` } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}
