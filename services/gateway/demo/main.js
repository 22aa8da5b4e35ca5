/* InstantMentor Realtime — WebSocket demo page: wires the modules together.
 *
 * Native ES modules, no build step, no dependency. net.js is the only module that talks to the
 * server; the panels (session, mentors, chat, calls, help, inbox, log) subscribe to its pushes
 * and talk to each other only through state.js. See docs/demo.md for the module map.
 */

import * as calls from "./calls.js";
import * as chat from "./chat.js";
import * as help from "./help.js";
import * as inbox from "./inbox.js";
import * as log from "./log.js";
import * as mentors from "./mentors.js";
import * as net from "./net.js";
import * as session from "./session.js";

async function main() {
  log.init(); // first: it shows every frame, including those the others react to
  session.init(); // before the panels: it sets state.me before they hear "online"
  mentors.init();
  chat.init();
  calls.init();
  help.init();
  inbox.init();
  await net.loadConfig();
  document.body.dataset.ready = "true";
  if (new URLSearchParams(location.search).get("connect") === "1") session.startConnecting();
}

main();
