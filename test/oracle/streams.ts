/**
 * Adversarial Dask byte streams for the differential oracle, built byte by
 * byte so that every encoding choice a peer has is exercised: each string in
 * a random one of the four msgpack string formats, integers in random widths,
 * maps and arrays with random header sizes; op-maps with the fields policy
 * reads, sometimes duplicated in another encoding, sometimes as bin or int
 * keys; placeholders (__Pickled__/__Serialized__) at any depth, valid or not;
 * __Set__/__Enum__ maps, timestamps, maps as keys, invalid UTF-8; and L at
 * every position relative to the frame boundaries. Seeded: a failure names
 * its case and seed.
 */
import { pack } from 'msgpackr';

export type Rand = () => number;

/** mulberry32. */
export function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const OPS = ['identity', 'gather', 'scatter', 'register-worker', 'register-client', 'heartbeat_worker', 'broadcast', 'run_function', 'update-graph',
  'task-finished', 'client-desires-keys', 'unregister', 'terminate', 'retire_workers', 'register_nanny', 'feed', 'proxy', 'close', 'x'];
const FIELDS = ['op', 'address', 'worker', 'client', 'name', 'status', 'workers', 'hosts', 'nanny', 'reply', 'msg', 'key'];
const WORDS = ['a', 'keys', 'data', 'tls://127.0.0.1:40000', 'Client-1', 'w1', 'ok', 'run', '', 'op', 'x'.repeat(40), 'é✓'];

class Message {
  /** Payload frames after frame 0; placeholders point into this list (index + 1). */
  readonly frames: Buffer[] = [];
}

export class StreamGenerator {
  readonly #r: Rand;
  /** This message may carry hostile choices; the others use only what a Dask peer could write (in any encoding). */
  #hostile = false;

  constructor(rand: Rand) {
    this.#r = rand;
  }

  #p(x: number): boolean {
    return this.#r() < x;
  }

  /** A hostile choice: never in a clean message. */
  #h(x: number): boolean {
    return this.#hostile && this.#r() < x;
  }

  #int(n: number): number {
    return Math.floor(this.#r() * n);
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[this.#int(xs.length)]!;
  }

  /** A whole stream: 1-5 messages, most of them plausible. */
  stream(): Buffer {
    const parts: Buffer[] = [];
    const n = 1 + this.#int(5);
    for (let i = 0; i < n; i++) parts.push(this.message());
    if (this.#p(0.05)) parts.push(this.#bytes(this.#int(30))); // a torn tail
    return Buffer.concat(parts);
  }

  message(): Buffer {
    const m = new Message();
    this.#hostile = this.#p(0.35);
    const roll = this.#r();
    const frame0 = roll < 0.7 ? this.#opMap(m, 1) : roll < 0.85 ? this.#batch(m) : this.#hostile ? this.#value(m, 1) : this.#str('OK');
    for (let i = this.#int(3); i > 0 && this.#p(0.3); i--) m.frames.push(this.#bytes(this.#int(40))); // unreferenced frames
    if (this.#p(0.01)) m.frames.push(Buffer.alloc(3000 + this.#int(20000), 7)); // a large one
    return this.#frame([frame0, ...m.frames]);
  }

  /** The prelude with L at a chosen place relative to the frame boundaries (2023.11+ writers end it after a leading run). */
  #frame(frames: Buffer[]): Buffer {
    const n = frames.length;
    const lens = frames.map((f) => f.length);
    const total = lens.reduce((a, b) => a + b, 0);
    const roll = this.#hostile ? this.#r() : this.#r() * 0.8;
    let body: number;
    if (roll < 0.55) body = total;
    else if (roll < 0.8) body = lens.slice(0, 1 + this.#int(n)).reduce((a, b) => a + b, 0); // a leading run
    else if (roll < 0.88) body = Math.max(0, this.#int(total + 1) + (this.#p(0.5) ? 0 : 1)); // inside a frame
    else if (roll < 0.93) body = total + 1 + this.#int(20); // past the last frame
    else if (roll < 0.96) body = -8 * (1 + this.#int(n)); // shorter than the prelude
    else return this.#hostilePrelude(frames);
    const head = Buffer.alloc(16 + 8 * n);
    head.writeBigUInt64LE(BigInt(Math.max(0, 8 + 8 * n + body)), 0);
    head.writeBigUInt64LE(BigInt(n), 8);
    lens.forEach((l, i) => head.writeBigUInt64LE(BigInt(l), 16 + 8 * i));
    return Buffer.concat([head, ...frames]);
  }

  #hostilePrelude(frames: Buffer[]): Buffer {
    const u64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return b;
    };
    const pick = this.#int(4);
    if (pick === 0) return Buffer.concat([u64(16n), u64(0n)]); // no frames
    if (pick === 1) return Buffer.concat([u64(2n ** 62n), u64(1n), u64(1n)]);
    if (pick === 2) return Buffer.concat([u64(100n), u64(2n ** 40n)]);
    return Buffer.concat([u64(BigInt(16 + frames[0]!.length)), u64(1n), u64(2n ** 63n + 5n), frames[0]!]);
  }

  #batch(m: Message): Buffer {
    const items: Buffer[] = [];
    for (let i = this.#int(4); i >= 0; i--) items.push(this.#p(0.75) ? this.#opMap(m, 2) : this.#p(0.5) ? this.#str('OK') : this.#value(m, 2));
    return this.#array(items);
  }

  /** An op-map: the policy fields with plausible or odd values, junk keys, now and then a duplicate or a foreign key. */
  #opMap(m: Message, depth: number): Buffer {
    const entries: [Buffer, Buffer][] = [];
    const used: string[] = [];
    for (const f of FIELDS) {
      if (!this.#p(f === 'op' ? 0.92 : 0.18)) continue;
      entries.push([this.#str(f), this.#fieldValue(m, f, depth)]);
      used.push(f);
    }
    const junk = ['data', 'keys', 'now', 'extra', 'x', 'stimulus_id'];
    for (let i = this.#int(4); i > 0; i--) {
      const k = this.#pick(junk);
      if (!this.#hostile) junk.splice(junk.indexOf(k), 1);
      entries.push([this.#str(k), this.#value(m, depth + 1)]);
    }
    if (used.length > 0 && this.#h(0.15)) entries.push([this.#str(this.#pick(used)), this.#fieldValue(m, 'op', depth)]); // duplicate
    if (this.#h(0.08)) entries.push([this.#bin(Buffer.from(this.#pick(FIELDS))), this.#str(this.#pick(OPS))]); // bin key
    if (this.#h(0.05)) entries.push([this.#intBytes(this.#int(3)), this.#str('x')]); // int key
    if (this.#h(0.05)) entries.push([this.#str(this.#pick(['__Pickled__', '__Serialized__', '__Set__', '__Enum__'])), this.#intBytes(1)]); // a magic op-map
    this.#shuffle(entries);
    return this.#map(entries);
  }

  #fieldValue(m: Message, field: string, depth: number): Buffer {
    if (this.#h(0.2)) return this.#value(m, depth + 1); // anything at all
    switch (field) {
      case 'op':
        return this.#str(this.#pick(OPS));
      case 'address':
      case 'worker':
      case 'client':
      case 'status':
        return this.#p(0.9) ? this.#str(this.#pick(WORDS)) : this.#intBytes(this.#int(5));
      case 'name':
        return this.#p(0.5) ? this.#intBytes(this.#int(70000) - 100) : this.#str(this.#pick(WORDS));
      case 'workers':
      case 'hosts':
        return this.#p(0.15) ? Buffer.from([0xc0]) : this.#array(Array.from({ length: this.#int(4) }, () => (this.#p(0.9) ? this.#str(this.#pick(WORDS)) : this.#intBytes(1))));
      case 'nanny':
      case 'reply':
        return this.#pick([Buffer.from([0xc3]), Buffer.from([0xc2]), Buffer.from([0xc0]), this.#intBytes(this.#int(2)), this.#str(this.#p(0.5) ? '' : 'y'), this.#array([])]);
      case 'msg':
        return this.#h(0.3) ? this.#value(m, depth + 1) : this.#opMap(m, depth + 1);
      default:
        return this.#p(0.5) ? Buffer.from([0xc0]) : this.#bin(this.#bytes(this.#int(8)));
    }
  }

  /** Any value, with the odd things Python's decoder and Dask's object_hook react to. */
  #value(m: Message, depth: number): Buffer {
    const roll = this.#r();
    if (depth > 6 || roll < 0.35) return this.#scalar();
    if (roll < 0.5) return this.#array(Array.from({ length: this.#int(4) }, () => this.#value(m, depth + 1)));
    if (roll < 0.62) return this.#placeholder(m);
    if (roll < 0.66) return this.#set(m, depth);
    if (roll < 0.67) return this.#enum();
    const entries: [Buffer, Buffer][] = [];
    for (let i = this.#int(4); i > 0; i--) entries.push([this.#key(m, depth, i), this.#value(m, depth + 1)]);
    return this.#map(entries);
  }

  /** A key; in a clean message distinct from its siblings (the i-th of the map). */
  #key(m: Message, depth: number, i: number): Buffer {
    const roll = this.#r();
    if (!this.#hostile) {
      if (roll < 0.6) return this.#str(`k${i}`);
      if (roll < 0.8) return this.#intBytes(100 + i);
      if (roll < 0.9) return this.#bin(Buffer.from(`b${i}`));
      return this.#array([this.#str('t'), this.#intBytes(i)]);
    }
    if (roll < 0.75) return this.#str(this.#pick(['a', 'b', 'op', 'k', 'as-list', '__Pickled__']));
    if (roll < 0.85) return this.#intBytes(this.#int(4));
    if (roll < 0.9) return this.#bin(Buffer.from('k'));
    if (roll < 0.95) return this.#array([this.#str('t'), this.#intBytes(this.#int(3))]); // a tuple key
    return this.#value(m, depth + 1); // sometimes a map: unhashable
  }

  #placeholder(m: Message): Buffer {
    const pickled = this.#p(0.5);
    let index: Buffer;
    if (!this.#h(0.3)) {
      m.frames.push(Buffer.from(pack(pickled ? { 'pickled-obj': this.#bytes(this.#int(12)), 'num-sub-frames': 1 } : { serializer: 'pickle', 'num-sub-frames': 1, compression: [null], 'split-num-sub-frames': [1], 'split-offsets': [0], writeable: [] })));
      m.frames.push(this.#bytes(this.#int(20)));
      index = this.#intBytes(m.frames.length - 1); // the sub-header's index, counted from frame 0
    } else {
      index = this.#pick([this.#intBytes(0), this.#intBytes(50), Buffer.from([0xc3]), this.#str('1'), Buffer.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff])]);
    }
    const entries: [Buffer, Buffer][] = [[this.#str(pickled ? '__Pickled__' : '__Serialized__'), index]];
    if (this.#h(0.1)) entries.push([this.#str('extra'), this.#intBytes(1)]);
    return this.#map(entries);
  }

  /** get_metadata's no_default, which 2026.7 clients send and 2022.12's scheduler cannot resolve; when hostile, others. */
  #enum(): Buffer {
    const [mod, cls, member] = this.#h(0.5) ? this.#pick([['distributed.core', 'Status', 'running'], ['os', 'path', 'sep'], ['dask.typing', '_NoDefault', 'x']]) : ['dask.typing', '_NoDefault', 'no_default'];
    const entries: [Buffer, Buffer][] = [[this.#str('__Enum__'), Buffer.from([0xc3])], [this.#str('__module__'), this.#str(mod!)], [this.#str('__name__'), this.#str(cls!)], [this.#str('name'), this.#str(member!)]];
    this.#shuffle(entries);
    return this.#map(entries);
  }

  #set(m: Message, depth: number): Buffer {
    const items = Array.from({ length: this.#int(4) }, () => (!this.#h(0.3) ? this.#scalar() : this.#value(m, depth + 1)));
    const entries: [Buffer, Buffer][] = [[this.#str('__Set__'), Buffer.from([0xc3])]];
    if (!this.#h(0.2)) entries.push([this.#str('as-list'), this.#array(items)]);
    return this.#map(entries);
  }

  #scalar(): Buffer {
    switch (this.#int(10)) {
      case 0: return Buffer.from([this.#pick([0xc0, 0xc2, 0xc3])]);
      case 1: return this.#intBytes(this.#int(2 ** 20) - 2 ** 19);
      case 2: {
        const b = Buffer.alloc(9);
        b[0] = 0xcb;
        b.writeDoubleBE(this.#pick([0, -0, 1.5, NaN, Infinity]), 1);
        return b;
      }
      case 3: return this.#bin(this.#bytes(this.#int(10)));
      case 4: return this.#ext();
      case 5: return this.#hostile ? this.#badUtf8() : this.#str(this.#pick(WORDS));
      default: return this.#str(this.#pick(WORDS));
    }
  }

  #ext(): Buffer {
    if (this.#p(0.5)) return Buffer.concat([Buffer.from([0xd4, this.#int(5)]), this.#bytes(1)]);
    const len = this.#hostile ? this.#pick([4, 8, 12, 2, 0]) : this.#pick([4, 8, 12]);
    const body = this.#bytes(len);
    if (len === 8 && !this.#h(0.5)) body[0] = 0; // nanoseconds in range
    if (len === 12 && !this.#h(0.5)) body.writeUInt32BE(this.#int(1_000_000_000), 0);
    return len === 4 ? Buffer.concat([Buffer.from([0xd6, 0xff]), body]) : len === 8 ? Buffer.concat([Buffer.from([0xd7, 0xff]), body]) : Buffer.concat([Buffer.from([0xc7, len, 0xff]), body]);
  }

  #badUtf8(): Buffer {
    const body = this.#pick([Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf0, 0x28, 0x8c, 0xbc]), Buffer.from([0xc0, 0xaf]), Buffer.from('ok')]);
    return Buffer.concat([Buffer.from([0xa0 | body.length]), body]);
  }

  #str(s: string): Buffer {
    const body = Buffer.from(s, 'utf8');
    const n = body.length;
    const formats: number[] = [];
    if (n < 32) formats.push(0);
    if (n < 256) formats.push(1);
    if (n < 65536) formats.push(2);
    formats.push(3);
    const f = this.#pick(formats);
    const head = f === 0 ? Buffer.from([0xa0 | n]) : f === 1 ? Buffer.from([0xd9, n]) : f === 2 ? Buffer.from([0xda, n >> 8, n & 255]) : Buffer.from([0xdb, 0, 0, n >> 8, n & 255]);
    return Buffer.concat([head, body]);
  }

  #bin(b: Buffer): Buffer {
    const n = b.length;
    const f = this.#int(3);
    const head = f === 0 ? Buffer.from([0xc4, n]) : f === 1 ? Buffer.from([0xc5, 0, n]) : Buffer.from([0xc6, 0, 0, 0, n]);
    return Buffer.concat([head, b]);
  }

  #intBytes(v: number): Buffer {
    const widths: Buffer[] = [];
    if (v >= 0 && v < 128) widths.push(Buffer.from([v]));
    if (v < 0 && v >= -32) widths.push(Buffer.from([v & 0xff]));
    if (v >= 0 && v < 256) widths.push(Buffer.from([0xcc, v]));
    if (v >= -128 && v < 128) widths.push(Buffer.from([0xd0, v & 0xff]));
    if (v >= -32768 && v < 32768) {
      const b = Buffer.alloc(3);
      b[0] = 0xd1;
      b.writeInt16BE(v, 1);
      widths.push(b);
    }
    const b32 = Buffer.alloc(5);
    b32[0] = 0xd2;
    b32.writeInt32BE(v, 1);
    widths.push(b32);
    const b64 = Buffer.alloc(9);
    b64[0] = v >= 0 ? 0xcf : 0xd3;
    if (v >= 0) b64.writeBigUInt64BE(BigInt(v), 1);
    else b64.writeBigInt64BE(BigInt(v), 1);
    widths.push(b64);
    return this.#pick(widths);
  }

  #map(entries: [Buffer, Buffer][]): Buffer {
    const n = entries.length;
    const head = n < 16 && this.#p(0.8) ? Buffer.from([0x80 | n]) : this.#p(0.5) ? Buffer.from([0xde, n >> 8, n & 255]) : Buffer.from([0xdf, 0, 0, n >> 8, n & 255]);
    return Buffer.concat([head, ...entries.flat()]);
  }

  #array(items: Buffer[]): Buffer {
    const n = items.length;
    const head = n < 16 && this.#p(0.8) ? Buffer.from([0x90 | n]) : this.#p(0.5) ? Buffer.from([0xdc, n >> 8, n & 255]) : Buffer.from([0xdd, 0, 0, n >> 8, n & 255]);
    return Buffer.concat([head, ...items]);
  }

  #bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.#int(256);
    return b;
  }

  #shuffle<T>(xs: T[]): void {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.#int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
  }
}
