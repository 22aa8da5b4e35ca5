/* The top bar: sign in and out, the connection pill, who is signed in, and the page's role
 * (which panels a student or a mentor sees). Sets `state.me` and tells the other panels
 * ("session", "online", "reset"). */

import { $, el, toast, USER_ID_RE } from "./dom.js";
import * as net from "./net.js";
import { notify, rememberName, state } from "./state.js";

const SAVED_LOGIN = "im-demo-login";
const LOGIN_FIELDS = ["login-preset", "login-user", "login-role", "login-name", "login-token"];

let sessionUser = null; // whose data the panels hold

function renderStatus({ state: name, label, want }) {
  $("conn").dataset.state = name;
  $("conn-label").textContent = label;
  $("retry-now").hidden = name !== "reconnecting";
  for (const id of LOGIN_FIELDS) $(id).disabled = want;
  $("connect").hidden = want;
  $("disconnect").hidden = !want;
  $("login").classList.toggle("signed-in", want);
}

function renderConfig({ devMode }) {
  for (const node of document.querySelectorAll(".dev-only")) node.hidden = !devMode;
  for (const node of document.querySelectorAll(".token-only")) node.hidden = devMode;
  const note = $("dev-note");
  note.hidden = devMode;
  note.textContent = devMode
    ? ""
    : "Dev tokens are off on this gateway (IM_DEV_MODE=false): paste a JWT signed with IM_JWT_SECRET, e.g. from “make token USER=sam ROLE=student NAME=Sam”.";
  document.body.dataset.devMode = String(devMode);
}

function setRole(role) {
  document.body.dataset.role = role || "";
  for (const node of document.querySelectorAll(".mentor-only")) node.hidden = role !== "mentor";
  for (const node of document.querySelectorAll(".student-only")) node.hidden = role !== "student";
  for (const node of document.querySelectorAll(".offline-only")) node.hidden = Boolean(role);
  if (!role) $("identity").hidden = true;
  notify("session");
}

/** Forget everything about the previous user (a new sign-in may be someone else). */
function resetSession() {
  sessionUser = null;
  notify("reset");
}

function onConnected(data) {
  if (sessionUser && sessionUser !== data.user_id) resetSession();
  sessionUser = data.user_id;
  state.me = { user_id: data.user_id, role: data.role, name: data.name || data.user_id };
  state.clockOffsetMs = Date.parse(data.server_time) - Date.now() || 0;
  rememberName(data.user_id, state.me.name);
  $("identity").hidden = false;
  $("identity").replaceChildren(
    "Signed in as ",
    el("b", { testid: "identity-name", text: state.me.name }),
    el("span", { class: "uid", text: ` @${state.me.user_id}` }),
    el("span", { class: "role-pill", testid: "identity-role", text: state.me.role }),
  );
  setRole(state.me.role);
  notify("online");
}

export function startConnecting() {
  if (net.devMode()) {
    const user = $("login-user").value.trim();
    if (!USER_ID_RE.test(user)) {
      toast("error", "Pick a user id", "1–64 characters of A–Z a–z 0–9 _ . @ -");
      return;
    }
    const role = $("login-role").value;
    const name = $("login-name").value;
    sessionStorage.setItem(SAVED_LOGIN, JSON.stringify({ user, role, name }));
    net.start({ user_id: user, role, name: name.trim() });
  } else {
    const token = $("login-token").value.trim();
    if (!token) {
      toast("error", "Paste a token", "This gateway does not hand out dev tokens.");
      return;
    }
    net.start({ token });
  }
}

function signOut() {
  net.stop();
  setRole(null);
  resetSession();
}

export function init() {
  net.on("net:status", renderStatus);
  net.on("net:config", renderConfig);
  net.on("net:problem", ({ title, text, ms }) => toast("error", title, text, ms));
  net.on("net:closed", () => {
    state.me = null;
  });
  net.on("connected", onConnected);

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    startConnecting();
  });
  $("disconnect").addEventListener("click", signOut);
  $("retry-now").addEventListener("click", net.retryNow);
  $("login-preset").addEventListener("change", (event) => {
    const [user, role, name] = event.target.value.split("|");
    if (!user) return;
    $("login-user").value = user;
    $("login-role").value = role;
    $("login-name").value = name;
  });

  const saved = JSON.parse(sessionStorage.getItem(SAVED_LOGIN) || "null");
  const params = new URLSearchParams(location.search);
  $("login-user").value = params.get("user") || (saved && saved.user) || "sam";
  $("login-role").value = params.get("role") || (saved && saved.role) || "student";
  $("login-name").value = params.get("name") || (saved && saved.name) || "";
  if (params.get("token")) $("login-token").value = params.get("token");
  setRole(null);
  renderStatus({ state: "disconnected", label: "Disconnected", want: false });
}
