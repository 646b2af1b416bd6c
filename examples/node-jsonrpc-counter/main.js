// A plughost process plugin on the vscode-jsonrpc npm package (the JSON-RPC library of VS Code's
// language servers), written from docs/protocol.md alone: the library does the Content-Length
// framing, request ids and $/cancelRequest; this file only names the methods of the protocol.
//
// It keeps a counter: commands to add and read it (the add emits "counter.changed"), a command
// that calls another command through the host, a subscription that resets it, a channel that
// streams it live, its value carried over updates and rollbacks, a configured step that the
// operator may change (a step below 1 is refused), and enable/disable notices.
"use strict";

const rpc = require("vscode-jsonrpc/node");

const PROTOCOL = 1;      // docs/protocol.md: core protocol version
const APP_PROTOCOL = 1;  // and application protocol version

if (!process.env.PLUGHOST_TOKEN) {  // §1: started by hand, not by a host
  process.stderr.write("node-jsonrpc-counter is a plughost plugin; a plughost host starts it.\n");
  process.exit(2);
}

const connection = rpc.createMessageConnection(
  new rpc.StreamMessageReader(process.stdin),
  new rpc.StreamMessageWriter(process.stdout),
);

// --- the plugin's state ---------------------------------------------------------------------
let value = 0;
let config = { step: 1 };
let enabled = true;
const notices = [];  // what the host told us besides calls: imports, enable/disable, config
const streams = new Map();  // "channel/stream" -> {channel, stream}

function log(level, message) {  // §7 host.log, a notification
  connection.sendNotification("host.log", { level, message });
}

// A handler error the host maps to PluginError with this plughost code (§9, -32000).
function refuse(message, code = "plugin.error") {
  return new rpc.ResponseError(-32000, message, { code });
}

async function add(by) {
  value += by;
  // §7 host.emit: checked against the plugin's grants (events:emit:counter.changed)
  await connection.sendRequest("host.emit", { topic: "counter.changed", payload: { value } });
  return value;
}

// plugin.call targets: commands (name -> target in the exports below)
const targets = {
  add: ({ by } = {}) => add(by === undefined ? config.step : by),
  value: () => value,
  notices: () => notices,
  // a command that runs another command through the host (commands:execute:<command>)
  ask: ({ command, args = {} }) => connection.sendRequest("host.execute", { command, args }),
};

// plugin.event targets: subscriptions
const subscriptions = {
  onReset: ({ topic, payload, source }) => {
    value = (payload && payload.to) || 0;
    notices.push(`reset by ${topic} from ${source} to ${value}`);
  },
};

// --- host -> plugin (§6) --------------------------------------------------------------------
connection.onRequest("plugin.activate", (params) => {
  config = { step: 1, ...(params.config || {}) };
  log("info", `activated with step ${config.step}`);
  return {
    exports: [
      { kind: "command", name: "counter.add", target: "add", options: {} },
      { kind: "command", name: "counter.value", target: "value", options: {} },
      { kind: "command", name: "counter.notices", target: "notices", options: {} },
      { kind: "command", name: "counter.ask", target: "ask", options: {} },
      { kind: "event", name: "counter.reset", target: "onReset", options: {} },
      { kind: "channel", name: "counter.live", target: "live", options: {} },
    ],
  };
});

connection.onRequest("plugin.call", async ({ target, args }) => {
  const fn = targets[target];
  if (!fn) throw new rpc.ResponseError(-32004, `no export with target ${target}`);
  return (await fn(args || {})) ?? null;
});

// plugin.event is a notification, or a request answered null (§6)
function onEvent({ target, args }) {
  const fn = subscriptions[target];
  if (fn) fn(args || {});
  return null;
}
connection.onNotification("plugin.event", onEvent);
connection.onRequest("plugin.event", onEvent);

connection.onRequest("plugin.health", () => ({ ok: true, detail: "", data: { value, enabled } }));

connection.onRequest("plugin.export_state", () => ({ state: { value } }));

connection.onRequest("plugin.import_state", ({ state, from_version }) => {
  value = (state && state.value) || 0;
  notices.push(`imported ${value} from ${from_version}`);
  return null;
});

connection.onRequest("plugin.config_change", ({ old, new: next }) => {
  if (!(Number.isInteger(next.step) && next.step >= 1)) {
    throw refuse(`step must be a whole number of at least 1, got ${JSON.stringify(next.step)}`);
  }
  config = { step: 1, ...next };
  notices.push(`step ${old.step} -> ${config.step}`);
  return null;
});

connection.onRequest("plugin.enable", () => {
  enabled = true;
  notices.push("enabled");
  log("info", "enabled by the operator");
  return null;
});
connection.onRequest("plugin.disable", () => {
  enabled = false;
  notices.push("disabled");
  log("info", "disabled by the operator");
  return null;
});

connection.onRequest("plugin.deactivate", () => {
  log("info", "deactivating");
  return null;
});

// --- channels (§7): one conversation per stream ---------------------------------------------
function say(channel, stream, data) {
  connection.sendNotification("channel.message", { channel, stream, data });
}

connection.onNotification("channel.open", ({ channel, stream, target }) => {
  if (target !== "live") {
    connection.sendNotification("channel.close", { channel, stream, reason: `no channel ${target}` });
    return;
  }
  streams.set(`${channel}/${stream}`, { channel, stream });
  say(channel, stream, { value });  // greet the opener with the current value
});

connection.onNotification("channel.message", async ({ channel, stream, data }) => {
  if (!streams.has(`${channel}/${stream}`)) return;
  if (data && data.add !== undefined) {
    say(channel, stream, { value: await add(data.add) });
  } else if (data === "bye") {
    streams.delete(`${channel}/${stream}`);
    connection.sendNotification("channel.close", { channel, stream });
  } else {
    streams.delete(`${channel}/${stream}`);
    connection.sendNotification("channel.close", {
      channel, stream, reason: `cannot understand ${JSON.stringify(data)}`,
    });
  }
});

connection.onNotification("channel.close", ({ channel, stream }) => {
  streams.delete(`${channel}/${stream}`);
});

// --- shutdown (§8): on $/exit and at the end of stdin ---------------------------------------
connection.onNotification("$/exit", () => process.exit(0));
connection.onClose(() => process.exit(0));
process.stdin.on("end", () => process.exit(0));

connection.listen();

// --- handshake (§5): the first message ------------------------------------------------------
connection.sendNotification("$/hello", {
  protocol: PROTOCOL,
  app_protocol: APP_PROTOCOL,
  plugin_id: process.env.PLUGHOST_PLUGIN_ID,
  token: process.env.PLUGHOST_TOKEN,
  pid: process.pid,
  implementation: `node-jsonrpc-counter/1.0.0 vscode-jsonrpc node/${process.version}`,
});
