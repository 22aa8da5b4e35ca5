// One socket.io-client socket, driven over JSON lines (tests/support/socketio_client.py).
//
// stdin, one command a line:
//   {"op": "connect", "url": "http://host:port", "options": {...}}  io(url, options)
//   {"op": "emit", "seq": 1, "event": "send_message", "args": [{...}], "ack": true}
//   {"op": "disconnect"} | {"op": "connect_again", "auth": {...}?}
// stdout, one report a line:
//   {"type": "event", "name": "<event>", "args": [...]}     every event the server emitted
//   {"type": "ack", "seq": 1, "args": [...]}                the acknowledgement of an emit
//   {"type": "connect", "id", "transport"} | {"type": "disconnect", "reason"}
//   {"type": "connect_error", "message", "data"}
//   {"type": "reconnect_attempt", "attempt"} | {"type": "reconnect", "attempt"}
//   {"type": "open", "transport"}                            Engine.IO's connection opened
//   {"type": "upgrade", "transport"} | {"type": "fatal", "message"}
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;

function report(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function open(url, options) {
  socket = io(url, { ...options, forceNew: true });
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    report({ type: "open", transport: engine.transport.name });
    engine.on("upgrade", (transport) => report({ type: "upgrade", transport: transport.name }));
  });
  socket.on("connect", () =>
    report({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name }),
  );
  socket.on("connect_error", (err) =>
    report({ type: "connect_error", message: err.message, data: err.data ?? null }),
  );
  socket.on("disconnect", (reason) => report({ type: "disconnect", reason }));
  socket.onAny((name, ...args) => report({ type: "event", name, args }));
  socket.io.on("reconnect_attempt", (attempt) => report({ type: "reconnect_attempt", attempt }));
  socket.io.on("reconnect", (attempt) => report({ type: "reconnect", attempt }));
}

function run(command) {
  switch (command.op) {
    case "connect":
      open(command.url, command.options ?? {});
      break;
    case "emit":
      if (command.ack) {
        socket.emit(command.event, ...command.args, (...args) =>
          report({ type: "ack", seq: command.seq, args }),
        );
      } else {
        socket.emit(command.event, ...command.args);
      }
      break;
    case "disconnect":
      socket.disconnect();
      break;
    case "connect_again":
      if (command.auth) socket.auth = command.auth;
      socket.connect();
      break;
    default:
      report({ type: "fatal", message: `unknown op ${command.op}` });
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  try {
    run(JSON.parse(line));
  } catch (err) {
    report({ type: "fatal", message: String(err) });
  }
});
lines.on("close", () => {
  if (socket) socket.disconnect();
  process.exit(0);
});
