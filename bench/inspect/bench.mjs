#!/usr/bin/env node
/**
 * Micro-benchmark of wire inspection (not a test; no assertions on time).
 *
 *   npx tsc -p tsconfig.json && node bench/inspect/bench.mjs [--seconds 2]
 *
 * 1. In-process: parser + scanner + policy over the recorded 2022.12
 *    conversations and over a bulk stream (1 MiB payload frames), 64 KiB chunks.
 * 2. Through a loopback TCP relay that is the terminator's own pipe
 *    (dist/terminator/pipe.js pipeBoth, with and without an inspector):
 *    bulk throughput and small-message round trips, inspection on vs off.
 *    The ratio is the cost.
 * Imports the compiled code in dist/ (what production runs).
 */
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { pack } from 'msgpackr';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { createInspectorFactory } = await import(join(root, 'dist/policy/inspector.js'));
const { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS } = await import(join(root, 'dist/policy/rules.js'));
const { createLogger } = await import(join(root, 'dist/log/logger.js'));
const { pipeBoth } = await import(join(root, 'dist/terminator/pipe.js'));
const { createMetrics } = await import(join(root, 'dist/runtime/metrics.js'));

const SECONDS = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 2;
const LIMITS = { maxFrames: 1_000_000, maxFrame0Bytes: 64 * 1024 * 1024, maxMessageBytes: 16 * 2 ** 30 };
const policy = compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, 'default');
const factory = createInspectorFactory({ current: () => policy }, {
  log: createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) }),
  metrics: createMetrics({ defaultMetrics: false }),
  limits: LIMITS,
});
const peer = (role) => ({ identity: { cluster: 'bench', role, name: 'b' }, serial: '01', remoteAddress: '127.0.0.1', sanHosts: [], connectionId: 'bench' });
const HOOKS = { refused: () => { throw new Error('refused'); } };
const inspector = (role) => factory(peer(role), HOOKS);
/** Feeds one chunk; what the inspector forwards or answers is discarded. */
const feed = (insp, c, up = [], down = []) => {
  const denial = insp.fromPeer(c, up, down);
  if (denial !== null) throw new Error(`denied: ${denial.code}`);
  up.length = down.length = 0;
};

function u64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function message(frames) {
  const sum = frames.reduce((s, f) => s + f.length, 0);
  return Buffer.concat([u64(8 + 8 * frames.length + sum), u64(frames.length), ...frames.map((f) => u64(f.length)), ...frames]);
}
const HANDSHAKE = message([pack({ compression: null, python: [3, 11, 2], 'pickle-protocol': 5 })]);

function chunks(buf, size) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

function timeLoop(fn) {
  let iters = 0;
  let bytes = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadline) {
    bytes += fn();
    iters++;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return { iters, bytes, secs };
}

function inProcess() {
  const rec = JSON.parse(readFileSync(join(root, 'test/fixtures/wire/recorded-2022.12.json'), 'utf8'));
  const streams = rec.connections.map((c) => Buffer.from(c.toScheduler, 'hex'));
  let messages = 0;
  for (const s of streams) for (let p = 0; p + 16 <= s.length; messages++) p += 8 + Number(s.readBigUInt64LE(p)) + trailing(s, p);
  const recChunks = streams.map((s) => chunks(s, 65536));
  const r1 = timeLoop(() => {
    let n = 0;
    for (const cs of recChunks) {
      const insp = inspector('admin');
      for (const c of cs) {
        feed(insp, c);
        n += c.length;
      }
    }
    return n;
  });
  console.log(`recorded conversations: ${(r1.bytes / r1.secs / 1e6).toFixed(1)} MB/s, ${((r1.iters * messages) / r1.secs / 1e6).toFixed(2)} M messages/s (${messages} messages, ${streams.length} connections per pass)`);

  const bulkMsg = message([pack({ op: 'update_data', data: { k: { __Serialized__: 1 } }, client: 'c' }), pack({ serializer: 'pickle' }), Buffer.alloc(1 << 20)]);
  const bulk = Buffer.concat([HANDSHAKE, ...Array.from({ length: 64 }, () => bulkMsg)]);
  const bulkChunks = chunks(bulk, 65536);
  const r2 = timeLoop(() => {
    const insp = inspector('client');
    for (const c of bulkChunks) feed(insp, c);
    return bulk.length;
  });
  console.log(`bulk (1 MiB payload frames, 64 KiB chunks): ${(r2.bytes / r2.secs / 1e9).toFixed(2)} GB/s of inspection`);

  const small = Buffer.concat([HANDSHAKE, ...Array.from({ length: 10000 }, () => message([pack({ op: 'heartbeat-client', client: 'c' })]))]);
  const register = message([pack({ op: 'register-client', client: 'c', reply: false })]);
  const smallStream = Buffer.concat([small.subarray(0, HANDSHAKE.length), register, small.subarray(HANDSHAKE.length)]);
  const smallMsgs = chunks(smallStream, 64);
  const r3 = timeLoop(() => {
    const insp = inspector('client');
    for (const c of smallMsgs) feed(insp, c);
    return smallStream.length;
  });
  console.log(`small messages (heartbeat-client, 64-byte chunks): ${((r3.iters * 10001) / r3.secs / 1e6).toFixed(2)} M messages/s`);
}

function trailing(s, p) {
  const n = Number(s.readBigUInt64LE(p + 8));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Number(s.readBigUInt64LE(p + 16 + 8 * i));
  return 8 + 8 * n + sum - Number(s.readBigUInt64LE(p));
}

/** A relay that is the terminator's pipe, with or without an inspector. */
function startRelay(upstreamPort, inspect) {
  return new Promise((resolve) => {
    const server = createServer((peerSock) => {
      const up = connect(upstreamPort, '127.0.0.1');
      pipeBoth(peerSock, up, inspect ? inspector('client') : undefined, 5000, {
        onClosed: () => {},
        onDenied: (d) => console.error(`relay: denied ${d.code}`),
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function throughput(inspect) {
  const sink = createServer((s) => s.on('data', () => {}).on('end', () => s.end()));
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  const relay = await startRelay(sink.address().port, inspect);
  const bulkMsg = message([pack({ op: 'update_data', data: { k: { __Serialized__: 1 } }, client: 'c' }), pack({ serializer: 'pickle' }), Buffer.alloc(4 << 20)]);
  const sock = connect(relay.address().port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write(HANDSHAKE);
  let sent = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadline) {
    sent += bulkMsg.length;
    if (!sock.write(bulkMsg)) await new Promise((r) => sock.once('drain', r));
  }
  await new Promise((r) => sock.end(r));
  await new Promise((r) => sock.once('close', r));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  relay.close();
  sink.close();
  return sent / secs;
}

async function roundTrips(inspect) {
  // An echo "scheduler": answers each small request with a small reply.
  const reply = message([pack({ status: 'OK', time: 1.5 })]);
  const sched = createServer((s) => {
    let pending = 0;
    s.write(HANDSHAKE);
    s.on('data', (d) => {
      pending += d.length;
      while (pending >= REQ.length) {
        pending -= REQ.length;
        s.write(reply);
      }
    });
  });
  const REQ = message([pack({ op: 'identity', reply: true })]);
  await new Promise((r) => sched.listen(0, '127.0.0.1', r));
  const relay = await startRelay(sched.address().port, inspect);
  const sock = connect(relay.address().port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  sock.write(HANDSHAKE);
  let got = 0;
  let trips = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  await new Promise((resolve) => {
    sock.on('data', (d) => {
      got += d.length;
      while (got >= HANDSHAKE.length + reply.length * (trips + 1)) {
        trips++;
        if (process.hrtime.bigint() > deadline) return resolve();
        sock.write(REQ);
      }
    });
    sock.write(REQ);
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  sock.destroy();
  relay.close();
  sched.close();
  return { perSec: trips / secs, usPerTrip: (secs / trips) * 1e6 };
}

console.log(`node ${process.version}, ${SECONDS}s per measurement, default policy\n`);
inProcess();
console.log('');
// The machine is shared: alternate off/on rounds and report medians.
const ROUNDS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bulk = { off: [], on: [] };
const trips = { off: [], on: [] };
for (let round = 0; round < ROUNDS; round++) {
  bulk.off.push(await throughput(false));
  bulk.on.push(await throughput(true));
  trips.off.push((await roundTrips(false)).perSec);
  trips.on.push((await roundTrips(true)).perSec);
}
const [bOff, bOn, tOff, tOn] = [median(bulk.off), median(bulk.on), median(trips.off), median(trips.on)];
console.log(`relay bulk (4 MiB messages), median of ${ROUNDS}: off ${(bOff / 1e9).toFixed(2)} GB/s, on ${(bOn / 1e9).toFixed(2)} GB/s, on/off ${(bOn / bOff).toFixed(3)}`);
console.log(`relay small round trips, median of ${ROUNDS}: off ${tOff.toFixed(0)}/s (${(1e6 / tOff).toFixed(1)} us), on ${tOn.toFixed(0)}/s (${(1e6 / tOn).toFixed(1)} us), on/off ${(tOn / tOff).toFixed(3)}`);
