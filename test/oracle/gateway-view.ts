/**
 * What the gateway's parser makes of a byte stream: the messages it accepted
 * (frame 0's sha1 and the facts policy reads, in the oracle's format: see
 * dask_reader.py), the code that stopped it, and the bytes it forwarded.
 * Uses the production FrameParser and Frame0Scanner, with no policy: the
 * oracle tests what the gateway reads, not what it decides.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../../src/errors/base.js';
import { FrameParser, type FrameLimits } from '../../src/wire/frame-parser.js';
import { Frame0Scanner, type OpMap, type TopShape } from '../../src/wire/ops.js';
import type { Rand } from './streams.js';

export const ORACLE_LIMITS: FrameLimits = { maxFrames: 4096, maxFrame0Bytes: 1 << 20, maxMessageBytes: 1 << 26 };

const ABSENT = '<absent>';

export interface MapFacts {
  op: string | null;
  address: string | null;
  worker: string | null;
  client: string | null;
  name: string | null;
  status: string | null;
  workers: string[] | null | typeof ABSENT;
  hosts: string[] | null | typeof ABSENT;
  nanny: boolean;
  reply: boolean;
  innerOp: string | null;
  key: boolean;
  entries: number;
  pickled: boolean;
  serialized: boolean;
}

export interface MessageFacts {
  shape: TopShape;
  maps: MapFacts[];
  nonMaps: boolean[];
  f0: string;
}

export interface GatewayView {
  messages: MessageFacts[];
  /** The GW_WIRE_* code that stopped the parser, or null. */
  stopped: string | null;
  forwarded: Buffer;
  /** Bytes of the input the accepted messages span (what a forwarder without canonical framing would send). */
  consumed: number;
}

const orAbsent = <T>(v: T | undefined): T | typeof ABSENT => (v === undefined ? ABSENT : v);

function mapFacts(m: OpMap): MapFacts {
  return {
    op: orAbsent(m.op) as string | null,
    address: orAbsent(m.address) as string | null,
    worker: orAbsent(m.worker) as string | null,
    client: orAbsent(m.client) as string | null,
    name: orAbsent(m.name) as string | null,
    status: orAbsent(m.status) as string | null,
    workers: orAbsent(m.workers),
    hosts: orAbsent(m.hosts),
    nanny: m.nanny,
    reply: m.reply,
    innerOp: orAbsent(m.innerOp) as string | null,
    key: m.key,
    entries: m.entries,
    pickled: m.pickled,
    serialized: m.serialized,
  };
}

/** Runs the stream through the parser in chunks cut by `split` (a chunk length per call). */
export function gatewayView(stream: Buffer, split: () => number): GatewayView {
  const scanner = new Frame0Scanner();
  const messages: MessageFacts[] = [];
  let consumed = 0;
  let current: MessageFacts | null = null;
  const visitor = {
    begin: (shape: TopShape) => ((current!.shape = shape), null),
    map: (m: OpMap) => (current!.maps.push(mapFacts(m)), null),
    nonMap: (_i: number, pickled: boolean) => (current!.nonMaps.push(pickled), null),
  };
  const parser = new FrameParser<GatewayError>(ORACLE_LIMITS, {
    frame0(buf, start, end, frames, messageBytes) {
      current = { shape: 'scalar', maps: [], nonMaps: [], f0: createHash('sha1').update(buf.subarray(start, end)).digest('hex') };
      const r = scanner.scan(buf, start, end, visitor, frames);
      if (r instanceof GatewayError) return r;
      messages.push(current);
      consumed += messageBytes;
      return null;
    },
  });
  const out: Buffer[] = [];
  let stopped: string | null = null;
  for (let i = 0; i < stream.length && stopped === null;) {
    const n = Math.max(1, split());
    const r = parser.push(stream.subarray(i, i + n), out);
    if (r !== null) stopped = r.code;
    i += n;
  }
  return { messages, stopped, forwarded: Buffer.concat(out), consumed };
}

export function randomSplit(rand: Rand, max: number): () => number {
  return () => 1 + Math.floor(rand() * max);
}
