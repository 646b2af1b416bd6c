// A plughost process plugin in plain Node.js: Content-Length framed JSON-RPC 2.0 on stdin/stdout,
// logs on stderr. Everything a plugin in any language needs is in this one file (see
// docs/protocol.md).
"use strict";

const PROTOCOL = 1;      // core protocol: framing, envelope, handshake, cancellation, shutdown
const APP_PROTOCOL = 1;  // application protocol: the plugin.* / host.* methods
const MAX_FRAME = Number(process.env.PLUGHOST_MAX_FRAME || 16 * 1024 * 1024);

if (!process.env.PLUGHOST_TOKEN) {
  process.stderr.write("This is a plughost plugin; a plughost host starts it.\n");
  process.exit(2);
}

// --- framing ------------------------------------------------------------------------------
function send(msg) {
  const body = Buffer.from(JSON.stringify(msg), "utf8");
  process.stdout.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]));
}

let buffer = Buffer.alloc(0);
process.stdin.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const header = buffer.subarray(0, end).toString("ascii");
    const match = /content-length:\s*(\d+)/i.exec(header);
    if (!match) fail(`bad frame header ${JSON.stringify(header)}`);
    const length = Number(match[1]);
    if (length > MAX_FRAME) fail(`frame of ${length} bytes exceeds ${MAX_FRAME}`);
    if (buffer.length < end + 4 + length) return;
    const body = buffer.subarray(end + 4, end + 4 + length).toString("utf8");
    buffer = buffer.subarray(end + 4 + length);
    dispatch(JSON.parse(body));
  }
});
// Watchdog: the host closed our stdin (it exited or is shutting us down) -> leave now.
process.stdin.on("end", () => process.exit(0));

function fail(why) {
  process.stderr.write(`node-greeter: protocol error: ${why}\n`);
  process.exit(4);
}

// --- requests to the host -----------------------------------------------------------------
let nextId = 0;
const pending = new Map();
function hostCall(method, params) {
  const id = ++nextId;
  send({ jsonrpc: "2.0", id, method, params });
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
function log(level, message) {
  send({ jsonrpc: "2.0", method: "host.log", params: { level, message } });
}

// --- the plugin ---------------------------------------------------------------------------
let config = {};
let greeted = 0;
const cancelled = new Set();
const heard = [];  // events and notices from the host: pings, enable/disable, config changes

const targets = {
  // command "greeter.greet": greet someone and tell the host (needs events:emit:greeter.greeted)
  async greet({ name = "world" }) {
    const count = ++greeted;
    const text = `${config.greeting || "Hello"}, ${name}!`;
    let emitted = null;
    try {
      emitted = await hostCall("host.emit", { topic: "greeter.greeted", payload: { name } });
    } catch (err) {
      emitted = { error: err.kind };  // e.g. "permission.denied"
    }
    return { text, greeted: count, emitted, pid: process.pid };
  },
  // extension point "greeting.format"
  format({ name }) {
    return `Hi ${name}, from Node ${process.version}`;
  },
  // command "greeter.slow": answers after `ms` unless cancelled first
  slow({ ms = 1000 }, id) {
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (cancelled.has(id)) {
          clearInterval(timer);
          reject({ code: -32800, message: "request cancelled" });
        }
      }, 5);
      setTimeout(() => { clearInterval(timer); resolve(ms); }, ms);
    });
  },
  // tries to emit an event it was not granted
  async sneak() {
    return hostCall("host.emit", { topic: "admin.shutdown", payload: {} });
  },
  // command "greeter.heard": what the host told us besides calls
  heard() {
    return heard;
  },
};

// subscriptions, reached by plugin.event {"target", "args": {"topic", "payload", ...}}
const subscriptions = {
  onPing({ topic, payload }) {
    heard.push({ topic, payload });
  },
};

// channel "greeter.chat": each line the opener sends is greeted back; "bye" ends the stream
function send_notification(method, params) {
  send({ jsonrpc: "2.0", method, params });
}
const chats = new Set();

const methods = {
  "plugin.activate"(params) {
    config = params.config || {};
    log("info", `activated with config ${JSON.stringify(config)}`);
    return {
      exports: [
        { kind: "command", name: "greeter.greet", target: "greet", options: {} },
        { kind: "command", name: "greeter.slow", target: "slow", options: {} },
        { kind: "command", name: "greeter.sneak", target: "sneak", options: {} },
        { kind: "command", name: "greeter.heard", target: "heard", options: {} },
        { kind: "hook", name: "greeting.format", target: "format", options: {} },
        { kind: "event", name: "greeter.ping", target: "onPing", options: {} },
        { kind: "channel", name: "greeter.chat", target: "chat", options: {} },
      ],
    };
  },
  "plugin.call"(params, id) {
    const fn = targets[params.target];
    if (!fn) throw { code: -32004, message: `no export with target ${params.target}` };
    return fn(params.args || {}, id);
  },
  "plugin.event"(params) {
    const fn = subscriptions[params.target];
    if (fn) fn(params.args || {});
    return null;
  },
  "plugin.health"() { return { ok: true, detail: "", data: { greeted } }; },
  "plugin.export_state"() { return { state: { greeted } }; },
  "plugin.import_state"(params) { greeted = (params.state || {}).greeted || 0; return null; },
  "plugin.config_change"(params) {
    if (params.new.greeting === "") throw { code: -32000, message: "the greeting cannot be empty" };
    config = params.new;
    heard.push({ config: config.greeting });
    return null;
  },
  "plugin.enable"() { heard.push("enabled"); return null; },
  "plugin.disable"() { heard.push("disabled"); return null; },
  "plugin.deactivate"() { log("info", "deactivating"); return null; },
  // channels: the host opens a stream, then relays the opener's messages (notifications)
  "channel.open"({ channel, stream }) { chats.add(`${channel}/${stream}`); },
  "channel.message"({ channel, stream, data }) {
    if (!chats.has(`${channel}/${stream}`)) return;
    if (data === "bye") {
      chats.delete(`${channel}/${stream}`);
      send_notification("channel.close", { channel, stream });
    } else {
      send_notification("channel.message", {
        channel, stream, data: `${config.greeting || "Hello"}, ${data}!`,
      });
    }
  },
  "channel.close"({ channel, stream }) { chats.delete(`${channel}/${stream}`); },
};

async function dispatch(msg) {
  if (msg.method === undefined) {                 // a response to one of our host calls
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (waiter && msg.error) waiter.reject({ ...msg.error, kind: (msg.error.data || {}).code });
    else if (waiter) waiter.resolve(msg.result);
    return;
  }
  if (msg.method === "$/cancelRequest") { cancelled.add(msg.params.id); return; }
  if (msg.method === "$/exit") process.exit(0);
  const handler = methods[msg.method];
  try {
    if (!handler) throw { code: -32601, message: `method ${msg.method} not supported` };
    const result = await handler(msg.params || {}, msg.id);
    if (msg.id !== undefined) send({ jsonrpc: "2.0", id: msg.id, result: result ?? null });
  } catch (err) {
    if (msg.id === undefined) return;
    const error = err && typeof err.code === "number"
      ? { code: err.code, message: err.message }
      : { code: -32000, message: String((err && err.message) || err), data: { code: "plugin.error" } };
    send({ jsonrpc: "2.0", id: msg.id, error });
  } finally {
    cancelled.delete(msg.id);
  }
}

// --- handshake: our first message ---------------------------------------------------------
send({
  jsonrpc: "2.0",
  method: "$/hello",
  params: {
    protocol: PROTOCOL,
    app_protocol: APP_PROTOCOL,
    plugin_id: process.env.PLUGHOST_PLUGIN_ID,
    token: process.env.PLUGHOST_TOKEN,
    pid: process.pid,
    implementation: `node-greeter/1.0.0 node/${process.version}`,
  },
});
