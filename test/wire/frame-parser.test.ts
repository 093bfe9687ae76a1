import t from 'tap';
import { readFileSync } from 'node:fs';
import { DROP, FrameParser, type FrameLimits } from '../../src/wire/frame-parser.js';
import { GatewayError } from '../../src/errors/base.js';
import { collectOps, message, msg, oneByteAtATime, prng, randomSplits, recordedConnections, HANDSHAKE, WIDE_LIMITS } from './wire-helpers.js';

const appendix = JSON.parse(readFileSync(new URL('../fixtures/wire/appendix-a.json', import.meta.url), 'utf8')) as { messages: Record<string, string> };
const hex = (k: string) => Buffer.from(appendix.messages[k]!, 'hex');

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

t.test('decodes the Appendix A captures: handshake then register_nanny, and the 3-frame gather reply', async (t) => {
  t.same(collectOps([hex('A.2 nanny to scheduler')]).ops, ['map:-:1', 'map:register_nanny:1']);
  t.same(collectOps([hex('A.1 scheduler to nanny')]).ops, ['map:-:1', 'map:-:1']);
  const gather = collectOps([hex('A.3 gather reply')]);
  t.same(gather.ops, ['map:-:3'], 'frame 0 only, with n = 3');
  t.equal(gather.error, null);
});

t.test('recorded real conversations decode to the same operations at every chunking', async (t) => {
  const conns = recordedConnections();
  t.ok(conns.length >= 5, 'the fixture holds the client, client pool, nanny, worker and worker pool connections');
  const seen = new Set<string>();
  for (const c of conns) {
    for (const [dir, bytes] of [['to', c.toScheduler], ['from', c.fromScheduler]] as const) {
      const whole = collectOps([bytes]);
      t.equal(whole.error, null, `connection ${c.index} ${dir}: no error`);
      t.ok(whole.ops.length >= 2, `connection ${c.index} ${dir}: handshake plus at least one message`);
      if (dir === 'to') whole.ops.forEach((o) => seen.add(o.split(':')[1]!));
      const bytewise = collectOps(oneByteAtATime(bytes));
      t.same(bytewise.ops, whole.ops, `connection ${c.index} ${dir}: 1 byte at a time`);
      t.ok(bytewise.maxBuffered <= largestHead(bytes), 'buffers at most one prelude and frame 0');
      for (let seed = 1; seed <= 20; seed++) {
        const split = collectOps(randomSplits(bytes, prng(seed), 1 + seed * 13));
        if (JSON.stringify(split.ops) !== JSON.stringify(whole.ops)) t.fail(`connection ${c.index} ${dir}: seed ${seed} differs`);
      }
    }
  }
  for (const op of ['register-client', 'update-graph-hlg', 'gather', 'scatter', 'broadcast', 'run_function', 'register_nanny', 'register-worker', 'task-finished', 'heartbeat_worker', 'close-stream']) {
    t.ok(seen.has(op), `the capture contains ${op}`);
  }
});

/** The largest prelude + frame 0 of any message in the stream. */
function largestHead(stream: Buffer): number {
  let max = 0;
  let pos = 0;
  while (pos + 24 <= stream.length) {
    const n = Number(stream.readBigUInt64LE(pos + 8));
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Number(stream.readBigUInt64LE(pos + 16 + 8 * i));
    max = Math.max(max, 16 + 8 * n + Number(stream.readBigUInt64LE(pos + 16)));
    pos += 16 + 8 * n + sum;
  }
  return max;
}

t.test('newest framing (2023.11+): L covers only a leading run, the parser still consumes every frame', async (t) => {
  const f0 = Buffer.from(msgBody({ op: 'update-data', data: { x: { __Serialized__: 1 } } }));
  const sub = Buffer.alloc(40, 1);
  const bigA = Buffer.alloc(800_000, 2);
  const bigB = Buffer.alloc(400_000, 3);
  // A 2023.11+ writer's layout: [30B, 40B, 800 kB, 40B, 400 kB] with L covering the first three.
  const vectors: [string, Buffer[], number][] = [
    ['run ends before the second buffer', [f0, sub, bigA, sub, bigB], 3],
    ['run is frame 0 only', [f0, Buffer.alloc(3000, 9), sub], 1],
    ['run covers everything (2022.12 layout)', [f0, sub, bigB], 3],
  ];
  for (const [name, frames, run] of vectors) {
    const stream = Buffer.concat([msg(HANDSHAKE), message(frames, run), msg({ op: 'identity', reply: true })]);
    const L = stream.readBigUInt64LE(msg(HANDSHAKE).length);
    t.ok(L < BigInt(stream.length), `${name}: L = ${L}`);
    const ops = collectOps([stream]);
    t.same(ops.ops, ['map:-:1', `map:update-data:${frames.length}`, 'map:identity:1'], name);
    t.same(collectOps(randomSplits(stream, prng(7), 50_000)).ops, ops.ops, `${name}: random splits`);
  }
});

function msgBody(v: unknown): Buffer {
  const m = msg(v);
  return m.subarray(24);
}

t.test('refuses L that is not 8 + 8n + a prefix sum of the frame lengths', async (t) => {
  const good = message([Buffer.from([0x80]), Buffer.alloc(10), Buffer.alloc(20)]);
  for (const delta of [-1, 1, 5, -25]) {
    const bad = Buffer.from(good);
    bad.writeBigUInt64LE(bad.readBigUInt64LE(0) + BigInt(delta), 0);
    const r = collectOps([bad]);
    t.equal(r.error?.code, 'GW_WIRE_LENGTH_MISMATCH', `L off by ${delta}`);
  }
  const tooShort = Buffer.concat([u64(8n), u64(1n), u64(1n), Buffer.from([0x80])]);
  t.equal(collectOps([tooShort]).error?.code, 'GW_WIRE_LENGTH_MISMATCH', 'L smaller than prelude + frame 0');
});

const TIGHT: FrameLimits = { maxFrames: 4, maxFrame0Bytes: 100, maxMessageBytes: 1000 };

t.test('checks every declared count and length against the caps before buffering', async (t) => {
  const cases: [string, Buffer, string][] = [
    ['zero frames', Buffer.concat([u64(8n), u64(0n)]), 'GW_WIRE_NO_FRAMES'],
    ['too many frames', Buffer.concat([u64(100n), u64(5n)]), 'GW_WIRE_TOO_MANY_FRAMES'],
    ['frame 0 too large', Buffer.concat([u64(8n + 8n + 101n), u64(1n), u64(101n)]), 'GW_WIRE_FRAME0_TOO_LARGE'],
    ['L beyond the message cap', Buffer.concat([u64(5000n)]), 'GW_WIRE_MESSAGE_TOO_LARGE'],
    ['payload frames beyond the message cap', Buffer.concat([u64(8n + 16n + 10n), u64(2n), u64(10n), u64(990n)]), 'GW_WIRE_MESSAGE_TOO_LARGE'],
    ['L above 2^53-1', u64(2n ** 53n), 'GW_WIRE_LENGTH_OVERFLOW'],
    ['n above 2^53-1', Buffer.concat([u64(100n), u64(2n ** 60n)]), 'GW_WIRE_LENGTH_OVERFLOW'],
    ['frame length above 2^53-1', Buffer.concat([u64(100n), u64(2n), u64(10n), u64(2n ** 64n - 1n)]), 'GW_WIRE_LENGTH_OVERFLOW'],
  ];
  for (const [name, bytes, code] of cases) {
    let calls = 0;
    const p = new FrameParser<never>(TIGHT, { frame0: () => (calls++, null) });
    const out: Buffer[] = [];
    const r = p.push(bytes, out);
    t.type(r, GatewayError, name);
    t.same(out, [], `${name}: nothing forwarded`);
    t.equal((r as GatewayError).code, code, `${name}: ${code}`);
    t.match((r as GatewayError).message, /\S/, `${name}: has a message`);
    t.equal(p.bufferedBytes, 0, `${name}: nothing kept after the error`);
    t.equal(p.push(msg({ op: 'identity' }), out), r, `${name}: input after the error is ignored, the error is sticky`);
    t.same(out, [], `${name}: still nothing forwarded`);
    t.equal(calls, 0, `${name}: no frame 0 delivered`);
  }
});

t.test('payload frames stream through, not buffered: a 50 MB message in 64 KiB chunks holds at most its prelude and frame 0', async (t) => {
  const payload = Buffer.alloc(50 * 1024 * 1024);
  const stream = Buffer.concat([message([Buffer.from(msgBody({ op: 'scatter', data: { k: { __Serialized__: 1 } } })), Buffer.alloc(100), payload]), msg({ op: 'identity' })]);
  let maxBuffered = 0;
  const ops: number[] = [];
  const p = new FrameParser<never>(WIDE_LIMITS, { frame0: (_b, s, e) => (ops.push(e - s), null) });
  let forwarded = 0;
  let copies = 0;
  for (let i = 0; i < stream.length; i += 65536) {
    const chunk = stream.subarray(i, i + 65536);
    const out: Buffer[] = [];
    t.equal(p.push(chunk, out), null);
    for (const b of out) {
      forwarded += b.length;
      if (b.buffer !== stream.buffer) copies += b.length;
    }
    maxBuffered = Math.max(maxBuffered, p.bufferedBytes);
  }
  t.equal(ops.length, 2, 'both messages delivered');
  t.equal(forwarded, stream.length, 'every byte forwarded');
  t.equal(copies, 0, 'as views of the input, never copied');
  t.ok(maxBuffered < 200, `buffered at most ${maxBuffered} bytes`);
});

const inside = (b: Buffer, chunk: Buffer) => b.buffer === chunk.buffer && b.byteOffset >= chunk.byteOffset && b.byteOffset < chunk.byteOffset + chunk.length;

t.test('frame 0 inside one chunk is handed over as a view of that chunk, copied only when it straddles', async (t) => {
  const stream = Buffer.concat([msg({ op: 'identity', reply: true }), msg({ op: 'versions' })]);
  const views: boolean[] = [];
  const p = new FrameParser<never>(WIDE_LIMITS, { frame0: (b) => (views.push(inside(b, stream)), null) });
  p.push(stream, []);
  t.same(views, [true, true], 'zero-copy when contiguous');
  const chunkA = Buffer.alloc(30);
  stream.copy(chunkA, 0, 0, 30);
  const chunkB = Buffer.alloc(stream.length - 30);
  stream.copy(chunkB, 0, 30);
  const where: string[] = [];
  const p2 = new FrameParser<never>(WIDE_LIMITS, { frame0: (b) => (where.push(inside(b, chunkA) ? 'A' : inside(b, chunkB) ? 'B' : 'copy'), null) });
  p2.push(chunkA, []);
  p2.push(chunkB, []);
  t.same(where, ['copy', 'B'], 'the straddling frame 0 is copied; the next one is a view of chunk B');
});

t.test('a sink that objects stops the parser with its value', async (t) => {
  const p = new FrameParser<string>(WIDE_LIMITS, { frame0: () => 'no' });
  const out: Buffer[] = [];
  t.equal(p.push(msg({ op: 'x' }), out), 'no');
  t.equal(p.push(msg({ op: 'y' }), out), 'no');
  t.equal(p.result, 'no');
  t.same(out, [], 'nothing of a stopped message is forwarded');
});

t.test('thousands of messages in one chunk', async (t) => {
  const one = msg([{ op: 'task-finished', key: 'x', worker: 'tcp://127.0.0.1:1' }]);
  const many = Buffer.concat(Array.from({ length: 5000 }, () => one));
  const r = collectOps([many]);
  t.equal(r.ops.length, 5000);
  t.equal(r.error, null);
});

t.test("newest framing as written by HEAD's own _add_frames_header decodes at every chunking", async (t) => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/wire/newest-framing.json', import.meta.url), 'utf8')) as { vectors: { name: string; frameLengths: number[]; L: number; hex: string }[] };
  t.equal(fixture.vectors.length, 3);
  for (const v of fixture.vectors) {
    const wire = Buffer.from(v.hex, 'hex');
    const total = 16 + 8 * v.frameLengths.length + v.frameLengths.reduce((a, b) => a + b, 0);
    t.equal(wire.length, total, `${v.name}: the message is 16 + 8n + sum(len_i) bytes`);
    const stream = Buffer.concat([msg(HANDSHAKE), wire, msg({ op: 'identity' })]);
    const expected = collectOps([stream]);
    t.equal(expected.error, null, `${v.name}: L = ${v.L} accepted`);
    t.equal(expected.ops.length, 3, `${v.name}: the next message is found after the tail`);
    t.same(collectOps(oneByteAtATime(stream)).ops, expected.ops, `${v.name}: 1 byte at a time`);
    for (let seed = 1; seed <= 10; seed++) t.same(collectOps(randomSplits(stream, prng(seed), 4000)).ops, expected.ops, `${v.name}: seed ${seed}`);
  }
});

/** The prelude a reader of any version splits as the parser did: L = 8 + 8n + sum(len_i). */
function canonical(m: Buffer): Buffer {
  const n = Number(m.readBigUInt64LE(8));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Number(m.readBigUInt64LE(16 + 8 * i));
  const c = Buffer.from(m);
  c.writeBigUInt64LE(BigInt(8 + 8 * n + sum), 0);
  return c;
}

t.test('forwards every message with L = 8 + 8n + sum(len_i), so 2022.12 and 2023.11+ readers split it alike', async (t) => {
  const f0 = msgBody({ op: 'update-data', data: { x: { __Serialized__: 1 } } });
  const short = message([f0, Buffer.alloc(40, 1), Buffer.alloc(30_000, 2), Buffer.alloc(40, 3)], 2);
  const full = message([msgBody({ op: 'identity' })]);
  const stream = Buffer.concat([msg(HANDSHAKE), short, full]);
  const expected = Buffer.concat([msg(HANDSHAKE), canonical(short), full]);
  t.not(short.readBigUInt64LE(0), canonical(short).readBigUInt64LE(0), 'the test message has a short L');
  t.same(collectOps([stream]).forwarded, expected, 'one chunk');
  t.same(collectOps(oneByteAtATime(stream)).forwarded, expected, 'one byte at a time');
  for (let seed = 1; seed <= 30; seed++) t.same(collectOps(randomSplits(stream, prng(seed), 1 + seed * 97)).forwarded, expected, `seed ${seed}`);
});

t.test('a chunk of whole, unchanged messages goes out as one view of that chunk', async (t) => {
  const chunk = Buffer.concat(Array.from({ length: 50 }, (_, i) => msg({ op: 'echo', i })));
  const p = new FrameParser<never>(WIDE_LIMITS, { frame0: () => null });
  const out: Buffer[] = [];
  p.push(chunk, out);
  t.equal(out.length, 1);
  t.equal(out[0], chunk, 'the very chunk, not a copy');
});

t.test('DROP removes the whole message, payload frames included, and the stream goes on', async (t) => {
  const dropped = message([msgBody({ op: 'run_function' }), Buffer.alloc(5000, 7), Buffer.alloc(300, 8)], 1);
  const kept = msg({ op: 'identity' });
  const stream = Buffer.concat([kept, dropped, kept]);
  for (const chunks of [[stream], [...oneByteAtATime(stream)], [...randomSplits(stream, prng(3), 700)]]) {
    const p = new FrameParser<never>(WIDE_LIMITS, { frame0: (b, s, e) => (b.subarray(s, e).includes(Buffer.from('run_function')) ? DROP : null) });
    const out: Buffer[] = [];
    for (const c of chunks) t.equal(p.push(c, out), null);
    t.same(Buffer.concat(out), Buffer.concat([kept, kept]), `${chunks.length} chunks: only the kept messages, byte for byte`);
    t.equal(p.bufferedBytes, 0, 'nothing held afterwards');
  }
});

t.test('nothing of a message is forwarded before its frame 0 is decided', async (t) => {
  const m = msg({ op: 'identity', pad: 'x'.repeat(200) });
  const decided: number[] = [];
  let forwardedBeforeDecision = 0;
  const out: Buffer[] = [];
  const p = new FrameParser<never>(WIDE_LIMITS, { frame0: () => (decided.push(out.reduce((s, b) => s + b.length, 0)), null) });
  for (const c of oneByteAtATime(m)) {
    p.push(c, out);
    if (decided.length === 0) forwardedBeforeDecision += out.reduce((s, b) => s + b.length, 0);
  }
  t.equal(forwardedBeforeDecision, 0, 'prelude and frame 0 are held until the decision');
  t.same(Buffer.concat(out), m, 'then all of it goes out');
});
