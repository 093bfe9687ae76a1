/**
 * Property tests: random and mutated byte streams, split at random points,
 * through the parser + frame-0 scanner and through the full per-connection
 * inspector. Properties: nothing throws, every push returns, and what the
 * parser holds never exceeds max(8, maxFrame0Bytes).
 */
import t from 'tap';
import { FrameParser, type FrameLimits } from '../../src/wire/frame-parser.js';
import { Frame0Scanner } from '../../src/wire/ops.js';
import { GatewayError } from '../../src/errors/base.js';
import { ConnectionInspector } from '../../src/policy/inspector.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS } from '../../src/policy/rules.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { Writable } from 'node:stream';
import { message, prng, recordedConnections } from './wire-helpers.js';

const LIMITS: FrameLimits = { maxFrames: 16, maxFrame0Bytes: 256, maxMessageBytes: 4096 };
/** A message is held until decided: its prelude (16 + 8n) and frame 0. */
const HOLD_CAP = 16 + 8 * LIMITS.maxFrames + LIMITS.maxFrame0Bytes;

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

/** A stream that is mostly well-framed, with hostile lengths and random frame-0 bytes. */
function structured(rand: () => number): Buffer {
  const parts: Buffer[] = [];
  const msgs = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < msgs; i++) {
    const r = rand();
    if (r < 0.6) {
      const n = 1 + Math.floor(rand() * 4);
      const frames = Array.from({ length: n }, (_, k) => randomBytes(rand, k === 0 ? 40 : 30));
      parts.push(message(frames, 1 + Math.floor(rand() * n)));
    } else if (r < 0.8) {
      const huge = [2n ** 53n, 2n ** 64n - 1n, 2n ** 32n, 0n, 1n, 8n, 16n, 4097n, 257n][Math.floor(rand() * 9)]!;
      parts.push(Buffer.concat([u64(rand() < 0.5 ? huge : 40n), u64(rand() < 0.5 ? huge : 1n), u64(huge)]));
    } else parts.push(randomBytes(rand, 64));
  }
  return Buffer.concat(parts);
}

function randomBytes(rand: () => number, max: number): Buffer {
  const b = Buffer.alloc(Math.floor(rand() * max));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function feed(stream: Buffer, rand: () => number, push: (c: Buffer) => unknown, held: () => number): string | null {
  let i = 0;
  while (i < stream.length) {
    const n = 1 + Math.floor(rand() * 48);
    const r = push(stream.subarray(i, i + n));
    if (held() > HOLD_CAP) return `held ${held()} bytes`;
    if (r !== null) return null;
    i += n;
  }
  return null;
}

t.test('100k random and structured streams: never throw, never hold more than the caps', async (t) => {
  const rand = prng(20261126);
  const scanner = new Frame0Scanner();
  const visitor = { begin: () => null, map: () => null, nonMap: () => null };
  let violations = 0;
  let errors = 0;
  const started = Date.now();
  const CASES = 100_000;
  for (let c = 0; c < CASES; c++) {
    const stream = c % 2 === 0 ? structured(rand) : randomBytes(rand, 120);
    const p = new FrameParser<GatewayError>(LIMITS, {
      frame0: (b, s, e) => {
        const r = scanner.scan(b, s, e, visitor, 2);
        return r instanceof GatewayError ? r : null;
      },
    });
    try {
      const out: Buffer[] = [];
      const v = feed(stream, rand, (ch) => ((out.length = 0), p.push(ch, out)), () => p.bufferedBytes);
      if (v) violations++;
      if (p.result !== null) errors++;
    } catch (e) {
      t.fail(`case ${c} threw ${(e as Error).message}`);
      return;
    }
  }
  t.equal(violations, 0, 'held bytes stayed within one prelude and frame 0');
  t.ok(errors > CASES / 4, `hostile cases were refused (${errors})`);
  t.comment(`${CASES} cases in ${Date.now() - started} ms`);
});

t.test('mutated recorded conversations through the full inspector: never throw, refuse or pass', async (t) => {
  const conns = recordedConnections();
  const rand = prng(7);
  const log = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const metrics = createMetrics({ defaultMetrics: false });
  const policy = { current: () => compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, 'default') };
  let denied = 0;
  const CASES = 4000;
  for (let c = 0; c < CASES; c++) {
    const conn = conns[Math.floor(rand() * conns.length)]!;
    // A window from the start (the handshake must come first) of at most 4 KiB, then mutated.
    const stream = Buffer.from(conn.toScheduler.subarray(0, Math.min(conn.toScheduler.length, 200 + Math.floor(rand() * 4000))));
    const mutations = 1 + Math.floor(rand() * 3);
    for (let m = 0; m < mutations; m++) stream[Math.floor(rand() * stream.length)] = Math.floor(rand() * 256);
    const role = (['client', 'worker', 'admin'] as const)[Math.floor(rand() * 3)]!;
    const insp = new ConnectionInspector({ identity: { cluster: 'c', role, name: 'w1' }, serial: '01', remoteAddress: '127.0.0.1', sanHosts: [], connectionId: String(c) }, policy, { log, metrics, limits: LIMITS }, { refused: () => {} });
    try {
      let i = 0;
      while (i < stream.length) {
        const n = 1 + Math.floor(rand() * 512);
        if (insp.fromPeer(stream.subarray(i, i + n), [], []) !== null) {
          denied++;
          break;
        }
        i += n;
      }
    } catch (e) {
      t.fail(`case ${c} threw ${(e as Error).stack}`);
      return;
    }
  }
  t.ok(denied > 0, `mutations were refused (${denied} of ${CASES})`);
});
