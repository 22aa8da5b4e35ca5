/* InstantMentor Realtime — WebSocket demo page.
 *
 * Plain JavaScript, no build step, no dependency: it speaks PROTOCOL v1 over one WebSocket
 * (`/ws?token=…`). Every request carries a `ref`; its `ack`/`error` settles a promise.
 * Pushes are dispatched by event name to the panels below (mentors, my status, chat, calls,
 * help). Every frame in and out is shown in the event log.
 */
"use strict";

(() => {
  // -- constants ----------------------------------------------------------------------------
  const USER_ID_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
  const BROADCAST = "broadcast_to_mentors";
  const REQUEST_TIMEOUT_MS = 15000;
  const PING_EVERY_MS = 25000;
  const BACKOFF_MAX_MS = 30000;
  const TYPING_REFRESH_MS = 3000;
  const TYPING_IDLE_MS = 4000;
  const TYPING_SHOWN_MAX_MS = 8000;
  const LOG_MAX = 300;
  const STATUS_LABEL = {
    available: "Available",
    busy: "Busy",
    in_session: "In session",
    break: "On a break",
    offline: "Offline",
  };
  const STATUS_ORDER = { available: 0, in_session: 1, busy: 2, break: 3, offline: 4 };
  const URGENCY_ORDER = { high: 0, medium: 1, low: 2 };
  const RECEIPT_RANK = { failed: -1, sending: 0, sent: 1, delivered: 2, read: 3 };
  const DEFAULT_TEMPLATES = {
    subjects: ["Math", "Programming", "Science", "General"],
    urgencies: [
      { value: "low", label: "Low", color: "#4CAF50", description: "Whenever a mentor is free" },
      { value: "medium", label: "Medium", color: "#FF9800", description: "Within the next hour" },
      { value: "high", label: "High", color: "#F44336", description: "I need help now" },
    ],
    default_urgency: "medium",
    quick_actions: [],
  };

  // -- state --------------------------------------------------------------------------------
  const state = {
    devMode: null, // from GET /dev/config
    token: null,
    me: null, // {user_id, role, name} from `connected`
    ws: null,
    want: false, // the user wants to be connected (reconnect when the socket drops)
    attempt: 0,
    reconnectAt: 0,
    reconnectTimer: null,
    pingTimer: null,
    clockOffsetMs: 0, // server clock − local clock
    refSeq: 0,
    pending: new Map(), // ref → {resolve, reject, timer, event}
    names: new Map(), // user id → display name
    mentors: new Map(), // mentor id → status
    convs: new Map(), // peer id → conversation
    convByID: new Map(), // conversation id → peer id
    openPeer: null,
    typingOut: { peer: null, lastSent: 0, idleTimer: null },
    call: null, // the current call (one at a time)
    callHistory: [],
    templates: DEFAULT_TEMPLATES,
    urgency: "medium",
    sessionUser: null, // whose data the panels hold
    myRequests: new Map(), // request id → {req, status, detail}
    inbox: new Map(), // request id → {req, state, detail}
  };

  // -- tiny DOM helpers ---------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  /** Create an element; children are nodes or text (never parsed as HTML). */
  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "testid") node.dataset.testid = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  const nameOf = (id) => state.names.get(id) || id;
  const rememberName = (id, name) => {
    if (id && name) state.names.set(id, name);
  };
  const serverNow = () => Date.now() + state.clockOffsetMs;
  const localMs = (iso) => Date.parse(iso) - state.clockOffsetMs; // server time → local clock
  const clock = (iso) => {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  };
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  const randomId = () => Math.random().toString(36).slice(2, 10);

  // -- event log ----------------------------------------------------------------------------
  const logList = $("event-log");

  function log(dir, frame, note) {
    if (!$("log-pings").checked && frame && (frame.event === "ping" || frame.event === "pong")) return;
    const isError = frame && frame.event === "error";
    const event = frame ? frame.event : "";
    const body = frame ? JSON.stringify(frame) : note;
    const item = el(
      "li",
      { class: isError ? "error" : "", testid: "log-entry", dataset: { dir, event }, title: body },
      el("span", { class: "t", text: clock() + " " }),
      el("span", { class: "d", text: dir === "in" ? "↓" : dir === "out" ? "↑" : "·" }),
      event ? el("span", { class: "e", text: event }) : null,
      frame ? JSON.stringify(frame.data === undefined ? {} : frame.data) + (frame.ref ? `  ref=${frame.ref}` : "") : note,
    );
    item.addEventListener("click", () => item.classList.toggle("open"));
    const atBottom = logList.scrollHeight - logList.scrollTop - logList.clientHeight < 30;
    logList.append(item);
    while (logList.childElementCount > LOG_MAX) logList.firstElementChild.remove();
    if (atBottom) logList.scrollTop = logList.scrollHeight;
  }

  // -- toasts -------------------------------------------------------------------------------
  function toast(kind, title, text, ms = 6000) {
    const item = el(
      "div",
      { class: `toast ${kind}`, testid: `toast-${kind}`, role: kind === "error" ? "alert" : "status" },
      el("div", {}, el("b", { text: title }), text ? el("div", { text }) : null),
      el("button", { type: "button", "aria-label": "dismiss", text: "×", onclick: () => item.remove() }),
    );
    $("toasts").append(item);
    while ($("toasts").childElementCount > 4) $("toasts").firstElementChild.remove();
    setTimeout(() => item.remove(), ms);
  }

  class ProtocolError extends Error {
    constructor(code, message, event) {
      super(message);
      this.code = code;
      this.event = event;
    }
  }

  // -- connection ---------------------------------------------------------------------------
  function setConn(stateName, label) {
    const conn = $("conn");
    conn.dataset.state = stateName;
    $("conn-label").textContent = label;
    $("retry-now").hidden = stateName !== "reconnecting";
    const busy = state.want;
    for (const id of ["login-preset", "login-user", "login-role", "login-name", "login-token"]) {
      $(id).disabled = busy;
    }
    $("connect").hidden = busy;
    $("disconnect").hidden = !busy;
    $("login").classList.toggle("signed-in", busy);
    const online = stateName === "connected";
    $("chat-input").disabled = !online || !state.openPeer;
    $("chat-send").disabled = !online || !state.openPeer;
  }

  const isOpen = () => state.ws && state.ws.readyState === WebSocket.OPEN && state.me;

  function wsUrl(token) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`;
  }

  async function fetchDevToken() {
    const body = {
      user_id: $("login-user").value.trim(),
      role: $("login-role").value,
      name: $("login-name").value.trim() || null,
    };
    const response = await fetch("/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
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
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!state.want) return;
    setConn("connecting", state.attempt ? `Reconnecting… (attempt ${state.attempt + 1})` : "Connecting…");
    try {
      if (state.devMode) {
        state.token = await fetchDevToken(); // a fresh token on every attempt (they expire)
      } else {
        state.token = $("login-token").value.trim();
      }
    } catch (err) {
      log("sys", null, `token: ${err.message}`);
      if (err.fatal || err.code === "dev_mode_off") {
        giveUp(`Token refused: ${err.message}`);
        if (err.code === "dev_mode_off") await loadConfig();
      } else {
        scheduleReconnect();
      }
      return;
    }
    if (!state.want) return;
    const ws = new WebSocket(wsUrl(state.token));
    state.ws = ws;
    log("sys", null, `opening ${wsUrl("…")}`);
    ws.onopen = () => {
      if (ws === state.ws) setConn("connecting", "Authenticating…");
    };
    ws.onmessage = (message) => {
      if (ws !== state.ws) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        log("sys", null, `unreadable frame: ${String(message.data).slice(0, 200)}`);
        return;
      }
      log("in", frame);
      handleFrame(frame);
    };
    ws.onclose = (close) => {
      if (ws !== state.ws) return;
      onSocketGone(close.code, close.reason);
    };
  }

  function onSocketGone(code, reason) {
    state.ws = null;
    state.me = null;
    clearInterval(state.pingTimer);
    for (const [ref, waiter] of state.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new ProtocolError("disconnected", "the connection dropped", waiter.event));
      state.pending.delete(ref);
    }
    stopTypingOut(false);
    log("sys", null, `socket closed: ${code}${reason ? " " + reason : ""}`);
    if (!state.want) {
      setConn("disconnected", "Disconnected");
      return;
    }
    if (code === 4401) {
      giveUp(`Token refused (4401${reason ? ": " + reason : ""})`);
      return;
    }
    scheduleReconnect();
  }

  function giveUp(message) {
    state.want = false;
    setConn("error", message);
    toast("error", "Not connected", message);
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** state.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.attempt += 1;
    state.reconnectAt = Date.now() + delay;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
    updateReconnectLabel();
  }

  function updateReconnectLabel() {
    if (!state.reconnectTimer) return;
    const left = Math.max(0, Math.ceil((state.reconnectAt - Date.now()) / 1000));
    setConn("reconnecting", `Connection lost — retrying in ${left} s (attempt ${state.attempt})`);
  }

  function disconnect() {
    state.want = false;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    state.attempt = 0;
    const ws = state.ws;
    if (ws) ws.close(1000, "bye");
    else setConn("disconnected", "Disconnected");
    setRole(null);
    resetSession();
  }

  function rawSend(frame) {
    log("out", frame);
    state.ws.send(JSON.stringify(frame));
  }

  /** Send a request with a fresh `ref`; resolves with the ack's data, rejects on `error`. */
  function request(event, data = {}) {
    if (!isOpen()) {
      const err = new ProtocolError("unavailable", "not connected", event);
      toast("error", "Not connected", `${event} was not sent`);
      return Promise.reject(err);
    }
    const ref = `r${++state.refSeq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(ref);
        reject(new ProtocolError("timeout", `no reply within ${REQUEST_TIMEOUT_MS / 1000} s`, event));
      }, REQUEST_TIMEOUT_MS);
      state.pending.set(ref, { resolve, reject, timer, event });
      rawSend({ event, data, ref });
    });
  }

  /** Fire and forget: errors are already shown as toasts. */
  const fire = (event, data) => request(event, data).catch(() => {});

  function startHeartbeat() {
    clearInterval(state.pingTimer);
    state.pingTimer = setInterval(() => {
      const ws = state.ws;
      request("ping", {}).catch((err) => {
        if (err.code === "timeout" && ws === state.ws && ws) ws.close(4000, "no pong"); // → reconnect
      });
    }, PING_EVERY_MS);
  }

  async function api(path) {
    const response = await fetch(path, { headers: { authorization: `Bearer ${state.token}` } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  // -- frames -------------------------------------------------------------------------------
  function handleFrame(frame) {
    const { event, data = {}, ref } = frame;
    if ((event === "ack" || event === "error" || event === "pong") && ref && state.pending.has(ref)) {
      const waiter = state.pending.get(ref);
      state.pending.delete(ref);
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
    const handler = HANDLERS[event];
    if (handler) handler(data);
  }

  function showError(data) {
    toast("error", `error: ${data.code}`, `${data.event ? data.event + " — " : ""}${data.message || ""}`, 9000);
  }

  /** Forget everything about the previous user (a new sign-in may be someone else). */
  function resetSession() {
    stopTypingOut(false);
    for (const conv of state.convs.values()) {
      clearTimeout(conv.typingTimer);
      clearTimeout(conv.receiptTimer);
    }
    state.mentors.clear();
    state.convs.clear();
    state.convByID.clear();
    state.openPeer = null;
    state.call = null;
    state.callHistory = [];
    state.myRequests.clear();
    state.inbox.clear();
    state.sessionUser = null;
    $("call-summary").textContent = "";
    $("chat-title").textContent = "Pick a mentor or type a user id to start chatting.";
    $("help-note").textContent = "";
    renderMentors();
    renderChat();
    renderCall();
    renderMyRequests();
    renderInbox();
  }

  function onConnected(data) {
    if (state.sessionUser && state.sessionUser !== data.user_id) resetSession();
    state.sessionUser = data.user_id;
    state.me = { user_id: data.user_id, role: data.role, name: data.name || data.user_id };
    rememberName(data.user_id, state.me.name);
    state.attempt = 0;
    state.clockOffsetMs = Date.parse(data.server_time) - Date.now() || 0;
    setConn("connected", "Connected");
    $("identity").hidden = false;
    $("identity").replaceChildren(
      "Signed in as ",
      el("b", { testid: "identity-name", text: state.me.name }),
      el("span", { class: "uid", text: ` @${state.me.user_id}` }),
      el("span", { class: "role-pill", testid: "identity-role", text: state.me.role }),
    );
    setRole(state.me.role);
    startHeartbeat();
    loadTemplates();
    refreshConversations();
    refreshHelp();
    restoreCall();
    // Messages that failed because the socket dropped: send them again (same client_msg_id,
    // so the server delivers each at most once).
    for (const conv of state.convs.values()) {
      for (const msg of conv.messages.values()) {
        if (msg.mine && msg.retryOnReconnect) sendStored(conv, msg);
      }
    }
    renderChat();
    renderCall();
  }

  function setRole(role) {
    document.body.dataset.role = role || "";
    for (const node of document.querySelectorAll(".mentor-only")) node.hidden = role !== "mentor";
    for (const node of document.querySelectorAll(".student-only")) node.hidden = role !== "student";
    for (const node of document.querySelectorAll(".offline-only")) node.hidden = Boolean(role);
    if (!role) $("identity").hidden = true;
    renderMentors();
  }

  // -- mentors ------------------------------------------------------------------------------
  const mentorNodes = new Map();

  function upsertMentor(m) {
    state.mentors.set(m.mentor_id, m);
    rememberName(m.mentor_id, m.name);
  }

  function onSnapshot(data) {
    state.mentors.clear();
    for (const m of data.mentors || []) upsertMentor(m);
    renderMentors();
  }

  function onMentorUpdate(data) {
    upsertMentor(data);
    renderMentors();
  }

  function mentorNode(id) {
    let node = mentorNodes.get(id);
    if (node) return node;
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
        el("button", { type: "button", testid: "mentor-chat", text: "Chat", onclick: () => openConversation(id) }),
        el("button", { type: "button", testid: "mentor-call", text: "☎ Call", onclick: () => placeCall(id, "video") }),
        el("button", { type: "button", testid: "mentor-ask", class: "ask", text: "Ask for help", onclick: () => askMentor(id) }),
      ),
    );
    mentorNodes.set(id, node);
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
    for (const [id, node] of mentorNodes) {
      if (!state.mentors.has(id)) {
        node.remove();
        mentorNodes.delete(id);
      }
    }
    const meId = state.me && state.me.user_id;
    mentors.forEach((m, index) => {
      const node = mentorNode(m.mentor_id);
      const mine = m.mentor_id === meId;
      node.dataset.online = String(Boolean(m.online));
      node.dataset.status = m.status;
      node.querySelector(".n").textContent = (m.name || m.mentor_id) + (mine ? " (you)" : "");
      const badge = node.querySelector(".badge");
      badge.dataset.status = m.status;
      badge.textContent = STATUS_LABEL[m.status] || m.status;
      node.querySelector(".dot").title = m.online ? "online" : "offline";
      node.querySelector(".msg").textContent = m.status_message || "";
      node.title = `updated ${clock(m.updated_at)}`;
      node.querySelector(".actions").hidden = mine || !state.me;
      node.querySelector(".ask").hidden = !state.me || state.me.role !== "student";
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    });
    $("mentor-count").textContent = String(mentors.filter((m) => m.online).length) + " online";
    $("mentor-empty").hidden = mentors.length > 0;
    renderMyStatus();
    renderPeerOptions();
    renderHelpTargets();
  }

  function renderPeerOptions() {
    const ids = new Set([...state.mentors.keys(), ...state.convs.keys()]);
    if (state.me) ids.delete(state.me.user_id);
    $("peer-options").replaceChildren(...[...ids].sort().map((id) => el("option", { value: id, text: nameOf(id) })));
  }

  // -- my status (mentors) ------------------------------------------------------------------
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
    const message = $("status-message").value.trim() || null;
    const data = { status_message: message };
    try {
      const ack =
        status === "available" ? await request("mentor_available", data) : await request("mentor_busy", { ...data, status });
      if (ack && ack.mentor_id) onMentorUpdate(ack);
      delete $("status-message").dataset.touched;
    } catch {
      /* shown as a toast */
    }
  }

  // -- chat ---------------------------------------------------------------------------------
  function conversation(peer) {
    let conv = state.convs.get(peer);
    if (!conv) {
      conv = {
        peer,
        id: null,
        messages: new Map(), // key → message
        peerDelivered: 0, // the peer's markers on my messages
        peerRead: 0,
        deliveredSent: 0, // my markers on the peer's messages
        readSent: 0,
        maxPeerSeq: 0,
        unread: 0,
        hasMore: false,
        historyLoaded: false,
        typing: null,
        typingTimer: null,
        receiptTimer: null,
      };
      state.convs.set(peer, conv);
      renderPeerOptions();
    }
    return conv;
  }

  function bindConversation(conv, id) {
    if (!id || conv.id === id) return;
    conv.id = id;
    state.convByID.set(id, conv.peer);
  }

  function myStatusOf(conv, msg) {
    if (msg.status === "failed" || msg.status === "sending") return msg.status;
    let status = msg.status || "sent";
    if (msg.seq && msg.seq <= conv.peerDelivered && RECEIPT_RANK[status] < RECEIPT_RANK.delivered) status = "delivered";
    if (msg.seq && msg.seq <= conv.peerRead) status = "read";
    return status;
  }

  /** Add or update a stored message (from an ack, a push or history); returns it. */
  function upsertMessage(conv, incoming) {
    const mine = Boolean(incoming.mine) || incoming.sender_id === (state.me && state.me.user_id);
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

  function onMessageReceived(data) {
    const meId = state.me && state.me.user_id;
    const mine = data.sender_id === meId;
    const peer = mine ? data.recipient_id : data.sender_id;
    const conv = conversation(peer);
    bindConversation(conv, data.conversation_id);
    const known = conv.messages.has(data.message_id);
    upsertMessage(conv, data);
    if (!mine) {
      if (!known && data.seq > conv.readSent) conv.unread += 1;
      clearTyping(conv);
      if (!state.openPeer) openConversation(peer, { focus: false });
      else if (peer !== state.openPeer && !known) toast("info", `Message from ${data.sender_name || peer}`, data.text.slice(0, 120), 4000);
      scheduleReceipts(conv);
    }
    renderChips();
    if (peer === state.openPeer) renderMessages();
  }

  function onMessageStatus(data) {
    const peer = state.convByID.get(data.conversation_id);
    if (!peer) return;
    const conv = conversation(peer);
    conv.peerDelivered = Math.max(conv.peerDelivered, data.up_to_seq);
    if (data.status === "read") conv.peerRead = Math.max(conv.peerRead, data.up_to_seq);
    if (peer === state.openPeer) renderMessages();
  }

  function conversationVisible(conv) {
    return conv.peer === state.openPeer && document.visibilityState === "visible";
  }

  /** Tell the server what we received (`message_delivered`) and, when the conversation is on
   * screen, what we read (`message_read`) — coalesced, since catch-up pushes come in bursts. */
  function scheduleReceipts(conv) {
    if (conv.receiptTimer) return;
    conv.receiptTimer = setTimeout(() => {
      conv.receiptTimer = null;
      if (!isOpen() || !conv.id || !conv.maxPeerSeq) return;
      const upTo = conv.maxPeerSeq;
      if (upTo > conv.deliveredSent) {
        conv.deliveredSent = upTo;
        fire("message_delivered", { conversation_id: conv.id, up_to_seq: upTo });
      }
      if (conversationVisible(conv) && upTo > conv.readSent) {
        conv.readSent = upTo;
        conv.unread = 0;
        fire("message_read", { conversation_id: conv.id, up_to_seq: upTo });
        renderChips();
      }
    }, 60);
  }

  async function refreshConversations() {
    try {
      const ack = await request("list_conversations", {});
      for (const summary of ack.conversations || []) {
        const conv = conversation(summary.peer_id);
        bindConversation(conv, summary.conversation_id);
        if (summary.last_message) {
          const last = summary.last_message;
          if (last.sender_id !== state.me.user_id) rememberName(last.sender_id, last.sender_name);
          upsertMessage(conv, last);
        }
        if (!conversationVisible(conv)) conv.unread = summary.unread_count;
      }
      renderChips();
      if (state.openPeer) await loadHistory(conversation(state.openPeer));
    } catch {
      /* shown as a toast */
    }
  }

  async function loadHistory(conv, { older = false } = {}) {
    if (!conv.id || !isOpen()) return;
    const data = { conversation_id: conv.id, limit: 50 };
    if (older) {
      const seqs = [...conv.messages.values()].map((m) => m.seq).filter(Boolean);
      if (seqs.length) data.before_seq = Math.min(...seqs);
    }
    try {
      const ack = await request("get_history", data);
      for (const m of ack.messages) {
        upsertMessage(conv, m);
        if (m.sender_id !== state.me.user_id) {
          if (m.status === "read") conv.readSent = Math.max(conv.readSent, m.seq);
          if (m.status !== "sent") conv.deliveredSent = Math.max(conv.deliveredSent, m.seq);
        } else {
          if (m.status === "read") conv.peerRead = Math.max(conv.peerRead, m.seq);
          if (m.status !== "sent") conv.peerDelivered = Math.max(conv.peerDelivered, m.seq);
        }
      }
      if (older || !conv.historyLoaded) conv.hasMore = ack.has_more;
      conv.historyLoaded = true;
      scheduleReceipts(conv);
      if (conv.peer === state.openPeer) renderMessages({ keepScroll: older });
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
    if (state.me && peer === state.me.user_id) {
      toast("error", "That's you", "Pick someone else to chat with.");
      return;
    }
    if (state.openPeer && state.openPeer !== peer) stopTypingOut(true);
    state.openPeer = peer;
    const conv = conversation(peer);
    $("chat-peer").value = peer;
    renderChat();
    if (conv.id && !conv.historyLoaded) loadHistory(conv);
    scheduleReceipts(conv);
    if (focus) $("chat-input").focus();
  }

  function renderChat() {
    renderChips();
    renderMessages();
    const online = Boolean(isOpen());
    $("chat-input").disabled = !online || !state.openPeer;
    $("chat-send").disabled = !online || !state.openPeer;
  }

  function renderChips() {
    const chips = [...state.convs.values()].map((conv) => {
      const typing = conv.typing ? el("span", { class: "typing-dot", title: "typing", text: "✎" }) : null;
      return el(
        "button",
        {
          type: "button",
          class: "chip",
          testid: `conv-chip-${conv.peer}`,
          "aria-current": String(conv.peer === state.openPeer),
          onclick: () => openConversation(conv.peer),
        },
        nameOf(conv.peer),
        typing,
        conv.unread > 0 && conv.peer !== state.openPeer ? el("span", { class: "unread", testid: "conv-unread", text: String(conv.unread) }) : null,
      );
    });
    $("conv-chips").replaceChildren(...chips);
  }

  function renderMessages({ keepScroll = false } = {}) {
    const scroller = $("chat-scroll");
    const list = $("chat-messages");
    const title = $("chat-title");
    if (!state.openPeer) {
      list.replaceChildren();
      $("load-older").hidden = true;
      $("typing").hidden = true;
      return;
    }
    const conv = conversation(state.openPeer);
    const mentor = state.mentors.get(conv.peer);
    title.replaceChildren(
      `Chat with ${nameOf(conv.peer)}`,
      el("span", { class: "sub", text: `@${conv.peer}` }),
      ...(mentor ? [el("span", { class: "badge", dataset: { status: mentor.status }, style: "margin-left:8px", text: STATUS_LABEL[mentor.status] })] : []),
    );
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
    const oldHeight = scroller.scrollHeight;
    const messages = [...conv.messages.values()].sort((a, b) => (a.seq || Infinity) - (b.seq || Infinity) || (a.localAt || 0) - (b.localAt || 0));
    list.replaceChildren(
      ...messages.map((msg) => {
        const status = msg.mine ? myStatusOf(conv, msg) : null;
        return el(
          "li",
          {
            class: `msg-item ${msg.mine ? "mine" : "theirs"}`,
            testid: "chat-message",
            dataset: { mine: String(msg.mine), seq: String(msg.seq || ""), status: status || "received" },
          },
          el("div", { class: "bubble", testid: "message-text", text: msg.text }),
          el(
            "div",
            { class: "msg-meta" },
            msg.mine ? null : el("span", { text: msg.sender_name || nameOf(msg.sender_id) }),
            el("span", { text: msg.sent_at ? clock(msg.sent_at) : "" }),
            msg.mine ? receiptNode(status) : null,
            msg.mine && status === "failed"
              ? el("button", { type: "button", class: "link", testid: "message-retry", text: "retry", onclick: () => sendStored(conv, msg) })
              : null,
          ),
        );
      }),
    );
    if (!messages.length) list.append(el("li", { class: "empty", text: conv.id ? "No messages yet." : "No messages yet — say hello." }));
    $("load-older").hidden = !conv.hasMore;
    const switched = list.dataset.peer !== conv.peer;
    list.dataset.peer = conv.peer;
    if (keepScroll) scroller.scrollTop = scroller.scrollHeight - oldHeight;
    else if (nearBottom || switched) scroller.scrollTop = scroller.scrollHeight;
    renderTyping();
  }

  function receiptNode(status) {
    const text = { sending: "sending…", sent: "✓", delivered: "✓✓", read: "✓✓ Read", failed: "⚠ not sent" }[status];
    const title = { sending: "sending", sent: "sent", delivered: "delivered", read: "read", failed: "failed" }[status];
    return el("span", { class: "receipt", testid: "message-receipt", dataset: { status }, title, text });
  }

  function sendMessage() {
    const peer = state.openPeer;
    const input = $("chat-input");
    const text = input.value;
    if (!peer || !text.trim()) return;
    const conv = conversation(peer);
    const clientMsgId = `${state.me.user_id}-${Date.now().toString(36)}-${randomId()}`;
    const msg = upsertMessage(conv, {
      mine: true,
      sender_id: state.me.user_id,
      sender_name: state.me.name,
      recipient_id: peer,
      text,
      client_msg_id: clientMsgId,
      status: "sending",
      localAt: Date.now(),
    });
    input.value = "";
    stopTypingOut(true);
    renderMessages();
    sendStored(conv, msg);
  }

  async function sendStored(conv, msg) {
    msg.status = "sending";
    msg.retryOnReconnect = false;
    if (conv.peer === state.openPeer) renderMessages();
    const data = { recipient_id: conv.peer, text: msg.text, client_msg_id: msg.client_msg_id };
    try {
      const ack = await request("send_message", data);
      bindConversation(conv, ack.conversation_id);
      upsertMessage(conv, { ...ack, mine: true, sender_id: state.me.user_id, status: "sent" });
    } catch (err) {
      msg.status = "failed";
      msg.retryOnReconnect = err.code === "disconnected" || err.code === "unavailable" || err.code === "timeout";
    }
    if (conv.peer === state.openPeer) renderMessages();
  }

  // typing: ours (throttled) and theirs
  function onComposerInput() {
    const peer = state.openPeer;
    if (!peer || !isOpen()) return;
    const out = state.typingOut;
    const now = Date.now();
    if (!$("chat-input").value) {
      stopTypingOut(true);
      return;
    }
    if (out.peer !== peer || now - out.lastSent > TYPING_REFRESH_MS) {
      out.peer = peer;
      out.lastSent = now;
      fire("user_typing", { recipient_id: peer });
    }
    clearTimeout(out.idleTimer);
    out.idleTimer = setTimeout(() => stopTypingOut(true), TYPING_IDLE_MS);
  }

  function stopTypingOut(tell) {
    const out = state.typingOut;
    clearTimeout(out.idleTimer);
    if (out.peer && tell && isOpen()) fire("user_stopped_typing", { recipient_id: out.peer });
    out.peer = null;
    out.lastSent = 0;
  }

  function onTyping(data) {
    if (state.me && data.user_id === state.me.user_id) return;
    const conv = conversation(data.user_id);
    bindConversation(conv, data.conversation_id);
    rememberName(data.user_id, data.user_name);
    conv.typing = data.user_name || data.user_id;
    clearTimeout(conv.typingTimer);
    conv.typingTimer = setTimeout(() => clearTyping(conv), TYPING_SHOWN_MAX_MS);
    renderChips();
    renderTyping();
  }

  function onStoppedTyping(data) {
    const conv = state.convs.get(data.user_id);
    if (conv) clearTyping(conv);
  }

  function clearTyping(conv) {
    clearTimeout(conv.typingTimer);
    if (!conv.typing) return;
    conv.typing = null;
    renderChips();
    renderTyping();
  }

  function renderTyping() {
    const conv = state.openPeer && state.convs.get(state.openPeer);
    const node = $("typing");
    node.hidden = !(conv && conv.typing);
    node.textContent = conv && conv.typing ? `${conv.typing} is typing…` : "";
  }

  // -- calls --------------------------------------------------------------------------------
  /* state.call: {call_id, direction: "out"|"in", peer, peerName, type, phase: "placing"|
   * "ringing"|"accepted", expiresAt (local ms), acceptedAt (local ms)} */

  async function placeCall(peer, type) {
    peer = (peer || "").trim();
    if (!USER_ID_RE.test(peer)) {
      toast("error", "Not a user id", "Type the id of the person to call.");
      return;
    }
    if (state.call) {
      toast("error", "Already in a call", "End the current call first.");
      return;
    }
    $("call-peer").value = peer;
    const call = { call_id: null, direction: "out", peer, type, phase: "placing" };
    state.call = call;
    renderCall();
    try {
      const ack = await request("initiate_call", { receiver_id: peer, call_type: type, call_data: { client: "web-demo" } });
      if (state.call !== call) return;
      call.call_id = ack.call_id;
      call.expiresAt = localMs(ack.expires_at);
      if (ack.state === "rejected") {
        finishCall(call, rejectedText(call, null, ack.reason));
      } else if (call.phase === "placing") {
        call.phase = "ringing";
      }
    } catch (err) {
      if (state.call === call) finishCall(call, `Call to ${nameOf(peer)} failed: ${err.message}`);
    }
    renderCall();
  }

  const callMatches = (data) => state.call && state.call.call_id && state.call.call_id === data.call_id;

  function onCallInitiated(data) {
    const meId = state.me && state.me.user_id;
    const outgoing = data.caller_id === meId;
    rememberName(data.caller_id, data.caller_name);
    if (state.call && state.call.call_id === data.call_id) return;
    if (state.call && state.call.phase === "placing" && outgoing && state.call.peer === data.receiver_id) {
      state.call.call_id = data.call_id; // our own call, its push came before the ack
    } else if (state.call) {
      return; // one call at a time (the server answers a third party with "busy")
    } else {
      state.call = {
        call_id: data.call_id,
        direction: outgoing ? "out" : "in",
        peer: outgoing ? data.receiver_id : data.caller_id,
        type: data.call_type,
      };
    }
    state.call.phase = "ringing";
    state.call.expiresAt = localMs(data.expires_at);
    renderCall();
  }

  function onCallAccepted(data) {
    if (!callMatches(data)) return;
    state.call.phase = "accepted";
    state.call.acceptedAt = localMs(data.accepted_at);
    renderCall();
  }

  function rejectedText(call, by, reason) {
    const who = nameOf(call.peer);
    if (by === null || by === undefined) {
      if (reason === "offline") return `${who} is offline — call not placed`;
      if (reason === "busy") return `${who} is busy in another call`;
      return `Call refused${reason ? ": " + reason : ""}`;
    }
    if (by === (state.me && state.me.user_id)) return `You rejected the call from ${who}`;
    return `${who} rejected the call${reason ? ` (${reason})` : ""}`;
  }

  function onCallRejected(data) {
    if (!callMatches(data)) return;
    finishCall(state.call, rejectedText(state.call, data.rejected_by, data.reason));
  }

  function onCallEnded(data) {
    if (!callMatches(data)) return;
    const call = state.call;
    const who = nameOf(call.peer);
    let text;
    if (data.reason === "cancelled") text = call.direction === "out" ? `You cancelled the call to ${who}` : `Missed call from ${who} (cancelled)`;
    else if (data.reason === "connection_lost") text = `Call with ${who} dropped (connection lost) · ${duration(data.duration_s)}`;
    else text = `Call with ${who} ended by ${data.ended_by === state.me.user_id ? "you" : who} · ${duration(data.duration_s)}`;
    finishCall(call, text);
  }

  function onCallTimeout(data) {
    if (!callMatches(data)) return;
    const call = state.call;
    finishCall(call, call.direction === "out" ? `No answer from ${nameOf(call.peer)} (30 s)` : `Missed call from ${nameOf(call.peer)}`);
  }

  function onCallSignal(data) {
    if (!callMatches(data)) return;
    toast("info", `Signal from ${nameOf(data.from_user_id)}`, JSON.stringify(data.signal).slice(0, 120), 3000);
  }

  function finishCall(call, text) {
    if (state.call === call) state.call = null;
    $("call-summary").textContent = text;
    state.callHistory.unshift(`${clock()} · ${call.type || ""} · ${text}`);
    state.callHistory.length = Math.min(state.callHistory.length, 5);
    renderCall();
  }

  async function answerCall(accept) {
    const call = state.call;
    if (!call || call.direction !== "in" || call.phase !== "ringing") return;
    try {
      if (accept) {
        await request("accept_call", { call_id: call.call_id, call_data: { client: "web-demo" } });
        if (state.call === call && call.phase === "ringing") {
          call.phase = "accepted";
          call.acceptedAt = call.acceptedAt || Date.now();
        }
      } else {
        await request("reject_call", { call_id: call.call_id, reason: "declined in the demo" });
        if (state.call === call) finishCall(call, rejectedText(call, state.me.user_id, null));
      }
    } catch {
      /* shown as a toast */
    }
    renderCall();
  }

  async function endCall() {
    const call = state.call;
    if (!call || !call.call_id) return;
    try {
      await request("end_call", { call_id: call.call_id });
    } catch {
      /* shown as a toast */
    }
  }

  async function restoreCall() {
    // Ringing calls are pushed again as call_initiated after connecting; an accepted call is
    // not, so it is looked up in the call history — which also tells whether the call we
    // showed before the connection dropped ended meanwhile.
    try {
      const calls = (await api("/api/calls")).calls || [];
      const current = state.call;
      if (current && current.call_id) {
        const record = calls.find((c) => c.call_id === current.call_id);
        if (record && record.state !== "ringing" && record.state !== "accepted" && state.call === current) {
          finishCall(current, `Call with ${nameOf(current.peer)} ended while you were away (${record.outcome})`);
        }
        return;
      }
      const live = calls.find((c) => c.state === "accepted");
      if (live && !state.call) {
        rememberName(live.peer_id, live.peer_name);
        state.call = {
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
    const call = state.call;
    const box = $("call-state");
    const phase = !call ? "idle" : call.phase === "accepted" ? "accepted" : call.direction === "in" ? "incoming" : "outgoing";
    box.dataset.state = phase;
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
    const banner = $("incoming-call");
    banner.hidden = phase !== "incoming";
    if (phase === "incoming") $("incoming-text").textContent = `${who} is calling you (${call.type})`;
    $("call-history").replaceChildren(...state.callHistory.map((line) => el("li", { text: line })));
    if (phase !== "idle") $("call-summary").textContent = "";
    tickCall();
  }

  function tickCall() {
    const call = state.call;
    let countdown = "";
    let elapsed = "";
    if (call && call.phase === "ringing" && call.expiresAt) {
      countdown = `${Math.max(0, Math.ceil((call.expiresAt - Date.now()) / 1000))} s`;
    }
    if (call && call.phase === "accepted") {
      elapsed = duration((Date.now() - (call.acceptedAt || Date.now())) / 1000);
    }
    $("call-countdown").textContent = countdown;
    $("incoming-countdown").textContent = countdown;
    $("call-duration").textContent = elapsed;
  }

  // -- help ---------------------------------------------------------------------------------
  async function loadTemplates() {
    try {
      state.templates = await api("/api/help/templates");
    } catch {
      state.templates = DEFAULT_TEMPLATES;
    }
    if (!state.urgency || !state.templates.urgencies.some((u) => u.value === state.urgency)) {
      state.urgency = state.templates.default_urgency;
    }
    renderHelpForm();
  }

  function renderHelpForm() {
    const subject = $("help-subject");
    const current = subject.value;
    subject.replaceChildren(...state.templates.subjects.map((s) => el("option", { value: s, text: s })));
    if (current && state.templates.subjects.includes(current)) subject.value = current;
    $("help-urgencies").replaceChildren(
      ...state.templates.urgencies.map((u) => {
        const checked = u.value === state.urgency;
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
              state.urgency = u.value;
              renderHelpForm();
            },
          },
          el("span", { class: "u-label", text: u.label }),
          u.description,
        );
      }),
    );
    renderQuickActions();
    renderHelpTargets();
  }

  function renderQuickActions() {
    const subject = $("help-subject").value;
    const actions = state.templates.quick_actions.filter((q) => q.subject === subject);
    $("help-quick").replaceChildren(
      ...actions.map((q) =>
        el("button", {
          type: "button",
          testid: "help-quick-action",
          text: q.text,
          onclick: () => {
            $("help-message").value = q.text;
          },
        }),
      ),
    );
  }

  function renderHelpTargets() {
    const select = $("help-target");
    const current = select.value || BROADCAST;
    const mentors = [...state.mentors.values()].sort((a, b) => (a.name || "").localeCompare(b.name || ""));
    select.replaceChildren(
      el("option", { value: BROADCAST, text: "All available mentors" }),
      ...mentors.map((m) =>
        el("option", { value: m.mentor_id, text: `${m.name || m.mentor_id} — ${m.online ? STATUS_LABEL[m.status] : "offline"}` }),
      ),
    );
    select.value = [...select.options].some((o) => o.value === current) ? current : BROADCAST;
  }

  function askMentor(id) {
    $("help-target").value = id;
    $("help-message").focus();
  }

  async function sendHelpRequest() {
    const note = $("help-note");
    const data = {
      subject: $("help-subject").value,
      message: $("help-message").value.trim(),
      urgency: state.urgency,
      mentor_id: $("help-target").value || BROADCAST,
    };
    if (!data.message) {
      note.textContent = "Write what you need help with.";
      note.className = "form-note error";
      return;
    }
    try {
      const ack = await request("student_request_help", data);
      state.myRequests.set(ack.request_id, {
        req: {
          ...data,
          request_id: ack.request_id,
          mentor_id: data.mentor_id === BROADCAST ? null : data.mentor_id,
          created_at: new Date(serverNow()).toISOString(),
          expires_at: ack.expires_at,
        },
        status: "open",
        detail: `sent to ${ack.delivered_to} mentor${ack.delivered_to === 1 ? "" : "s"} now`,
      });
      $("help-message").value = "";
      note.textContent = `Request sent — ${ack.delivered_to} mentor${ack.delivered_to === 1 ? "" : "s"} notified.`;
      note.className = "form-note";
      renderMyRequests();
    } catch (err) {
      note.textContent = `${err.code}: ${err.message}`;
      note.className = "form-note error";
    }
  }

  async function refreshHelp() {
    try {
      const ack = await request("list_help_requests", {});
      const role = state.me && state.me.role;
      for (const req of ack.requests || []) {
        rememberName(req.student_id, req.student_name);
        if (role === "student") {
          const known = state.myRequests.get(req.request_id);
          state.myRequests.set(req.request_id, {
            req,
            status: known && known.status !== "open" ? known.status : req.status,
            detail: known ? known.detail : "",
          });
        } else if (!state.inbox.has(req.request_id)) {
          state.inbox.set(req.request_id, { req, state: "open" });
        }
      }
      renderMyRequests();
      renderInbox();
    } catch {
      /* shown as a toast */
    }
  }

  function myRequest(id) {
    return state.myRequests.get(id);
  }

  function onHelpAccepted(data) {
    rememberName(data.mentor_id, data.mentor_name);
    const item = myRequest(data.request_id);
    if (item) {
      item.status = "accepted";
      item.mentorId = data.mentor_id;
      item.detail = `accepted by ${data.mentor_name}`;
    }
    toast("ok", "Help is on the way", `${data.mentor_name} accepted your request.`);
    renderMyRequests();
  }

  function onHelpDeclined(data) {
    const item = myRequest(data.request_id);
    if (item) {
      item.status = "declined";
      item.detail = `declined by ${nameOf(data.mentor_id)}${data.reason ? `: ${data.reason}` : ""}`;
    }
    renderMyRequests();
  }

  function onHelpExpired(data) {
    const item = myRequest(data.request_id);
    if (item) {
      item.status = "expired";
      item.detail = "nobody accepted it in time";
    }
    renderMyRequests();
  }

  async function cancelHelp(id) {
    try {
      await request("cancel_help_request", { request_id: id });
      const item = myRequest(id);
      if (item) {
        item.status = "cancelled";
        item.detail = "you cancelled it";
      }
      renderMyRequests();
    } catch {
      /* shown as a toast */
    }
  }

  function helpCard(req, status, extra) {
    return el(
      "li",
      { class: "help-card", testid: extra.testid, dataset: { urgency: req.urgency, requestId: req.request_id, status, ...(extra.dataset || {}) } },
      el(
        "div",
        { class: "top" },
        el("span", { class: "u-pill", dataset: { urgency: req.urgency }, text: req.urgency }),
        el("span", { class: "subject", text: req.subject }),
        el("span", { class: "s-pill", testid: "help-status", dataset: { status }, text: status }),
        el("span", { class: "who", text: extra.who }),
      ),
      el("div", { class: "text", text: req.message }),
      extra.detail ? el("div", { class: "state", testid: "help-detail", text: extra.detail }) : null,
      extra.actions && extra.actions.length ? el("div", { class: "actions" }, ...extra.actions) : null,
    );
  }

  function renderMyRequests() {
    const items = [...state.myRequests.values()].sort((a, b) => (b.req.created_at || "").localeCompare(a.req.created_at || ""));
    $("my-requests").replaceChildren(
      ...items.map((item) => {
        const { req, status } = item;
        const actions = [];
        if (status === "open") {
          actions.push(el("button", { type: "button", testid: "help-cancel", text: "Cancel", onclick: () => cancelHelp(req.request_id) }));
        }
        const mentor = item.mentorId || (status === "accepted" ? req.mentor_id : null);
        if (status === "accepted" && mentor) {
          actions.push(el("button", { type: "button", text: "Chat", onclick: () => openConversation(mentor) }));
          actions.push(el("button", { type: "button", text: "☎ Call", onclick: () => placeCall(mentor, "video") }));
        }
        const to = req.mentor_id ? `to ${nameOf(req.mentor_id)}` : "to all mentors";
        return helpCard(req, status, {
          testid: "my-help-request",
          who: `${to} · ${clock(req.created_at)}`,
          detail: item.detail,
          actions,
        });
      }),
    );
    if (!items.length) $("my-requests").append(el("li", { class: "empty", text: "No request yet." }));
  }

  function onHelpReceived(req) {
    rememberName(req.student_id, req.student_name);
    const known = state.inbox.get(req.request_id);
    state.inbox.set(req.request_id, { ...(known || {}), req, state: known ? known.state : "open" });
    if (!known) toast("info", `${req.student_name} needs help (${req.urgency})`, `${req.subject}: ${req.message.slice(0, 80)}`, 5000);
    renderInbox();
  }

  function onHelpClosed(data) {
    const item = state.inbox.get(data.request_id);
    if (!item || item.state === "mine") return;
    item.state = "closed";
    item.detail = {
      accepted: "another mentor accepted it",
      cancelled: "the student cancelled it",
      expired: "it expired",
    }[data.reason] || data.reason;
    renderInbox();
  }

  async function acceptHelp(id) {
    const item = state.inbox.get(id);
    try {
      await request("accept_help_request", { request_id: id });
      item.state = "mine";
      item.detail = `you are helping ${item.req.student_name}`;
    } catch (err) {
      if (err.code === "conflict" || err.code === "not_found") {
        item.state = "closed";
        item.detail = err.message;
      }
    }
    renderInbox();
  }

  async function declineHelp(id) {
    try {
      await request("decline_help_request", { request_id: id, reason: "not available right now" });
      state.inbox.delete(id);
    } catch {
      /* shown as a toast */
    }
    renderInbox();
  }

  function renderInbox() {
    const items = [...state.inbox.values()].sort(
      (a, b) =>
        Number(a.state !== "open") - Number(b.state !== "open") ||
        URGENCY_ORDER[a.req.urgency] - URGENCY_ORDER[b.req.urgency] ||
        (a.req.created_at || "").localeCompare(b.req.created_at || ""),
    );
    $("help-inbox").replaceChildren(
      ...items.map((item) => {
        const { req } = item;
        const id = req.request_id;
        const actions = [];
        if (item.state === "open") {
          actions.push(el("button", { type: "button", class: "ok", testid: "help-accept", text: "Accept", onclick: () => acceptHelp(id) }));
          actions.push(el("button", { type: "button", testid: "help-decline", text: "Decline", onclick: () => declineHelp(id) }));
        } else if (item.state === "mine") {
          actions.push(el("button", { type: "button", testid: "help-chat", text: "Chat", onclick: () => openConversation(req.student_id) }));
          actions.push(el("button", { type: "button", text: "☎ Call", onclick: () => placeCall(req.student_id, "video") }));
        } else {
          actions.push(el("button", { type: "button", class: "link", text: "dismiss", onclick: () => (state.inbox.delete(id), renderInbox()) }));
        }
        const status = item.state === "mine" ? "accepted" : item.state === "closed" ? "closed" : "open";
        return helpCard(req, status, {
          testid: "help-card",
          dataset: { state: item.state },
          who: `${req.student_name} · ${clock(req.created_at)}${req.mentor_id ? " · to you" : ""}`,
          detail: item.detail,
          actions,
        });
      }),
    );
    const open = items.filter((i) => i.state === "open").length;
    $("inbox-count").textContent = String(open);
    $("inbox-empty").hidden = items.length > 0;
  }

  // -- dispatch table -----------------------------------------------------------------------
  const HANDLERS = {
    connected: onConnected,
    mentor_status_snapshot: onSnapshot,
    mentor_status_update: onMentorUpdate,
    message_received: onMessageReceived,
    message_status: onMessageStatus,
    user_typing: onTyping,
    user_stopped_typing: onStoppedTyping,
    call_initiated: onCallInitiated,
    call_accepted: onCallAccepted,
    call_rejected: onCallRejected,
    call_ended: onCallEnded,
    call_timeout: onCallTimeout,
    call_signal: onCallSignal,
    help_request_received: onHelpReceived,
    help_request_accepted: onHelpAccepted,
    help_request_declined: onHelpDeclined,
    help_request_expired: onHelpExpired,
    help_request_closed: onHelpClosed,
  };

  // -- startup ------------------------------------------------------------------------------
  async function loadConfig() {
    try {
      const response = await fetch("/dev/config");
      state.devMode = response.ok && Boolean((await response.json()).dev_mode);
    } catch {
      state.devMode = false;
    }
    for (const node of document.querySelectorAll(".dev-only")) node.hidden = !state.devMode;
    for (const node of document.querySelectorAll(".token-only")) node.hidden = state.devMode;
    const note = $("dev-note");
    note.hidden = state.devMode;
    note.textContent = state.devMode
      ? ""
      : "Dev tokens are off on this gateway (IM_DEV_MODE=false): paste a JWT signed with IM_JWT_SECRET, e.g. from “make token USER=sam ROLE=student NAME=Sam”.";
    document.body.dataset.devMode = String(state.devMode);
  }

  function startConnecting() {
    if (state.devMode) {
      const user = $("login-user").value.trim();
      if (!USER_ID_RE.test(user)) {
        toast("error", "Pick a user id", "1–64 characters of A–Z a–z 0–9 _ . @ -");
        return;
      }
      sessionStorage.setItem("im-demo-login", JSON.stringify({ user, role: $("login-role").value, name: $("login-name").value }));
    } else if (!$("login-token").value.trim()) {
      toast("error", "Paste a token", "This gateway does not hand out dev tokens.");
      return;
    }
    state.want = true;
    state.attempt = 0;
    connect();
  }

  function bindUi() {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      startConnecting();
    });
    $("disconnect").addEventListener("click", disconnect);
    $("retry-now").addEventListener("click", () => {
      clearTimeout(state.reconnectTimer);
      state.reconnectTimer = null;
      connect();
    });
    $("login-preset").addEventListener("change", (event) => {
      const [user, role, name] = event.target.value.split("|");
      if (!user) return;
      $("login-user").value = user;
      $("login-role").value = role;
      $("login-name").value = name;
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

    $("chat-peer-form").addEventListener("submit", (event) => {
      event.preventDefault();
      openConversation($("chat-peer").value);
    });
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage();
    });
    $("chat-input").addEventListener("input", onComposerInput);
    $("chat-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        sendMessage();
      }
    });
    $("load-older").addEventListener("click", () => state.openPeer && loadHistory(conversation(state.openPeer), { older: true }));
    document.addEventListener("visibilitychange", () => {
      if (state.openPeer) scheduleReceipts(conversation(state.openPeer));
    });
    window.addEventListener("focus", () => {
      if (state.openPeer) scheduleReceipts(conversation(state.openPeer));
    });

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
      if (state.call) fire("call_signal", { call_id: state.call.call_id, signal: { type: "demo", sent_at: new Date().toISOString() } });
    });

    $("help-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sendHelpRequest();
    });
    $("help-subject").addEventListener("change", renderQuickActions);

    $("log-clear").addEventListener("click", () => logList.replaceChildren());
    $("log-toggle").addEventListener("click", () => {
      const collapsed = $("log-panel").classList.toggle("collapsed");
      $("log-toggle").textContent = collapsed ? "show" : "hide";
    });

    setInterval(() => {
      tickCall();
      updateReconnectLabel();
    }, 250);
  }

  async function init() {
    bindUi();
    const saved = JSON.parse(sessionStorage.getItem("im-demo-login") || "null");
    const params = new URLSearchParams(location.search);
    $("login-user").value = params.get("user") || (saved && saved.user) || "sam";
    $("login-role").value = params.get("role") || (saved && saved.role) || "student";
    $("login-name").value = params.get("name") || (saved && saved.name) || "";
    if (params.get("token")) $("login-token").value = params.get("token");
    setRole(null);
    renderHelpForm();
    renderMyRequests();
    renderInbox();
    renderCall();
    renderChat();
    setConn("disconnected", "Disconnected");
    await loadConfig();
    document.body.dataset.ready = "true";
    if (params.get("connect") === "1") startConnecting();
  }

  init();
})();
