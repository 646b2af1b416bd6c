// A gRPC plugin in Node.js on @grpc/grpc-js: plughost.proto's Plugin service plus the standard
// health service, on the Unix socket the host asked for, announced by one handshake line.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const COOKIE = 'd6f3c1a0-plughost-grpc-plugin';
if (process.env.PLUGHOST_GRPC_MAGIC_COOKIE !== COOKIE) {
  console.error('This is a plughost gRPC plugin: it is started by a plughost host, not by hand.');
  process.exit(1);
}

const definition = loader.loadSync(
  [path.join(__dirname, 'plughost.proto'), path.join(__dirname, 'health.proto')],
  { keepCase: true, longs: Number, enums: String, defaults: true });
const proto = grpc.loadPackageDefinition(definition);

let counter = 0;
let hostStream = null;
let nextId = 1;
const waiting = new Map();

// Ask the host for a host operation (checked against this plugin's permissions).
function hostCall(method, params) {
  return new Promise((resolve, reject) => {
    if (!hostStream) return reject(new Error('the host has not opened HostCalls yet'));
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    hostStream.write({ id, method, params_json: JSON.stringify(params || {}) });
  });
}

const targets = {
  echo: async (args) => args,
  count: async ({ by = 1 }) => (counter += by),
  announce: async ({ topic }) => hostCall('host.emit', { topic, payload: { from: 'node' } }),
};

function fail(callback, code, message) {
  callback({ code, details: message });
}

const plugin = {
  Activate(call, callback) {
    callback(null, {
      exports: [
        { kind: 'command', name: 'grpc-node-echo.echo', target: 'echo', options_json: '{}' },
        { kind: 'command', name: 'grpc-node-echo.count', target: 'count', options_json: '{}' },
        { kind: 'channel', name: 'grpc-node-echo.tally', target: 'tally', options_json: '{}' },
      ],
    });
  },
  Deactivate(call, callback) { callback(null, {}); },
  Call(call, callback) {
    const fn = Object.prototype.hasOwnProperty.call(targets, call.request.target)
      ? targets[call.request.target] : null;
    if (!fn) return fail(callback, grpc.status.NOT_FOUND, `no target ${call.request.target}`);
    fn(JSON.parse(call.request.args_json || '{}')).then(
      (result) => callback(null, { result_json: JSON.stringify(result === undefined ? null : result) }),
      (error) => fail(callback, error.code === 'permission.denied'
        ? grpc.status.PERMISSION_DENIED : grpc.status.UNKNOWN, String(error.message)));
  },
  Event(call, callback) { callback(null, {}); },
  ExportState(call, callback) { callback(null, { state_json: JSON.stringify({ counter }) }); },
  ImportState(call, callback) {
    counter = (JSON.parse(call.request.state_json || 'null') || {}).counter || 0;
    callback(null, {});
  },
  // A channel: the first frame names the target; each later frame is one message. This one
  // answers every number with the running total, and ends the stream when the opener closes.
  Channel(stream) {
    let total = 0;
    let opened = false;
    stream.on('data', (frame) => {
      if (!opened) {
        opened = true;
        if (frame.target !== 'tally') {
          stream.destroy({ code: grpc.status.NOT_FOUND, details: `no target ${frame.target}` });
        }
        return;
      }
      total += Number(JSON.parse(frame.data_json || '0'));
      stream.write({ data_json: JSON.stringify(total) });
    });
    stream.on('end', () => stream.end());
  },
  HostCalls(stream) {
    hostStream = stream;
    stream.on('data', (reply) => {
      const waiter = waiting.get(Number(reply.id));
      if (!waiter) return;
      waiting.delete(Number(reply.id));
      if (reply.error_code) {
        const error = new Error(reply.error_message);
        error.code = reply.error_code;
        waiter.reject(error);
      } else {
        waiter.resolve(reply.result_json ? JSON.parse(reply.result_json) : null);
      }
    });
    stream.on('end', () => { hostStream = null; stream.end(); });
  },
};

const health = {
  Check(call, callback) { callback(null, { status: 'SERVING' }); },
  Watch(call) { call.write({ status: 'SERVING' }); },
};

const server = new grpc.Server();
server.addService(proto.plughost.v1.Plugin.service, plugin);
server.addService(proto.grpc.health.v1.Health.service, health);
const address = path.join(process.env.PLUGHOST_GRPC_SOCKET_DIR, 'plugin.sock');
server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) {
    console.error(`cannot listen on ${address}: ${error.message}`);
    process.exit(1);
  }
  process.stdout.write(`1|1|unix|${address}|grpc\n`);
});
