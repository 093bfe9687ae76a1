/** Shared by the wire and policy tests: message builders, the recorded fixture, an op collector, a seeded PRNG. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack } from 'msgpackr';
import { FrameParser, type FrameLimits } from '../../src/wire/frame-parser.js';
import { Frame0Scanner, type OpMap, type TopShape } from '../../src/wire/ops.js';
import { GatewayError } from '../../src/errors/base.js';

const here = dirname(fileURLToPath(import.meta.url));

export const WIDE_LIMITS: FrameLimits = { maxFrames: 100_000, maxFrame0Bytes: 1 << 24, maxMessageBytes: 2 ** 40 };

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/**
 * One Dask message. leadingRun = how many frames L covers (2023.11+ layout);
 * default all of them (2022.12 layout).
 */
export function message(frames: Buffer[], leadingRun = frames.length): Buffer {
  const run = frames.slice(0, leadingRun).reduce((s, f) => s + f.length, 0);
  const L = 8 + 8 * frames.length + run;
  return Buffer.concat([u64(L), u64(frames.length), ...frames.map((f) => u64(f.length)), ...frames]);
}

/** A one-frame message whose frame 0 is msgpack of value. */
export function msg(value: unknown, extraFrames: Buffer[] = []): Buffer {
  return message([Buffer.from(pack(value)), ...extraFrames]);
}

export const HANDSHAKE = { compression: 'lz4', python: [3, 11, 2], 'pickle-protocol': 5 };

export interface Recorded {
  readonly index: number;
  readonly toScheduler: Buffer;
  readonly fromScheduler: Buffer;
}

export function recordedConnections(): Recorded[] {
  const raw = JSON.parse(readFileSync(join(here, '../fixtures/wire/recorded-2022.12.json'), 'utf8')) as { connections: { index: number; toScheduler: string; fromScheduler: string }[] };
  return raw.connections.map((c) => ({ index: c.index, toScheduler: Buffer.from(c.toScheduler, 'hex'), fromScheduler: Buffer.from(c.fromScheduler, 'hex') }));
}

/**
 * Parses a stream fed in the given chunks; returns one line per op-map
 * (shape, op, pickled, frames), the stop value, and the bytes the parser
 * forwarded.
 */
export function collectOps(chunks: Iterable<Buffer>, limits: FrameLimits = WIDE_LIMITS): { ops: string[]; error: GatewayError | null; maxBuffered: number; forwarded: Buffer } {
  const ops: string[] = [];
  const scanner = new Frame0Scanner();
  let shape: TopShape = 'scalar';
  let frames = 0;
  const visitor = {
    begin: (s: TopShape) => ((shape = s), null),
    map: (m: OpMap) => (ops.push(`${shape}:${m.op ?? '-'}${m.pickled ? ':pickled' : ''}:${frames}`), null),
    nonMap: () => (ops.push(`${shape}:nonmap`), null),
  };
  const parser = new FrameParser<GatewayError>(limits, {
    frame0(buf, start, end, n) {
      frames = n;
      const r = scanner.scan(buf, start, end, visitor, n);
      return r instanceof GatewayError ? r : null;
    },
  });
  let maxBuffered = 0;
  let error: GatewayError | null = null;
  const out: Buffer[] = [];
  for (const c of chunks) {
    const r = parser.push(c, out);
    maxBuffered = Math.max(maxBuffered, parser.bufferedBytes);
    if (r !== null) {
      error = r;
      break;
    }
  }
  return { ops, error, maxBuffered, forwarded: Buffer.concat(out) };
}

/** mulberry32: small, seedable, good enough for split points and mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function* oneByteAtATime(b: Buffer): Generator<Buffer> {
  for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1);
}

export function* randomSplits(b: Buffer, rand: () => number, maxChunk = 64): Generator<Buffer> {
  let i = 0;
  while (i < b.length) {
    const n = 1 + Math.floor(rand() * maxChunk);
    yield b.subarray(i, i + n);
    i += n;
  }
}
