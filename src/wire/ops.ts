/**
 * Finds the operations in a Dask frame 0 (shared/dask-wire.md §2) without
 * materialising it: a small, bounded msgpack walker written for this job.
 *
 * Why not msgpackr: frame 0 of an update-graph can be megabytes of task
 * payloads; a general decoder would allocate every string, bin and map of it
 * (and understands extension types Python does not). Policy needs a handful of
 * top-level strings and one question about the whole tree ("is there a
 * `__Pickled__` placeholder anywhere?"), so this walker skips str/bin/ext by
 * arithmetic, allocates only the few strings it returns, bounds nesting depth,
 * and refuses counts that the remaining bytes cannot hold, so a hostile frame 0
 * costs time linear in its size and no memory beyond it.
 *
 * Python semantics mirrored here, because the scheduler is what we protect:
 *   - only msgpack `str` keys are dict string keys (`bin` "op" is bytes);
 *   - a repeated key keeps its LAST value (dict construction), so a smuggled
 *     second "op" is the one we decide on;
 *   - `{"__Pickled__": k}` is unpickled during decoding at ANY depth (§4.4);
 *   - a value followed by extra bytes is an error (msgpack ExtraData).
 */
import { GatewayError } from '../errors/base.js';
import { wireError } from './errors.js';

export type TopShape = 'map' | 'array' | 'scalar';

/**
 * The fields policy reads from one op-map. Strings are the decoded values;
 * null means "present but not a string (or oversized)"; undefined, absent.
 * Reused between maps: copy what must outlive the visitor call.
 */
export class OpMap {
  op: string | null | undefined = undefined;
  address: string | null | undefined = undefined;
  worker: string | null | undefined = undefined;
  client: string | null | undefined = undefined;
  /** Worker names may be ints in Dask; they are given here as decimal strings. */
  name: string | null | undefined = undefined;
  /** `workers` / `hosts` as lists of strings (broadcast targets); undefined if absent or nil, null if anything else. */
  workers: string[] | null | undefined = undefined;
  hosts: string[] | null | undefined = undefined;
  /** `nanny: true` (broadcast to nannies). */
  nanny = false;
  /** The "op" of a nested `msg` map (what broadcast/proxy forward); null if msg is not a map with a string op. */
  innerOp: string | null | undefined = undefined;
  /** A `__Pickled__` placeholder somewhere inside this map. */
  pickled = false;

  reset(): void {
    this.op = this.address = this.worker = this.client = this.name = undefined;
    this.workers = this.hosts = this.innerOp = undefined;
    this.nanny = false;
    this.pickled = false;
  }
}

export interface OpVisitor<R> {
  /** Called first with the shape of the top-level value and its entry count. */
  begin(shape: TopShape): R | null;
  /** Each top-level map, or each map element of a top-level array (a batch). */
  map(m: OpMap, index: number): R | null;
  /** A non-map element of a top-level array (e.g. the bare "OK" a stream may send). */
  nonMap(index: number, pickled: boolean): R | null;
}

export interface ScanLimits {
  readonly maxDepth: number;
  /** Longest string value kept for policy; longer ones become null. */
  readonly maxFieldBytes: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxDepth: 32, maxFieldBytes: 1024 };

// Interesting keys, as bytes, by field slot.
const enum Key {
  None,
  Op,
  Address,
  Worker,
  Client,
  Name,
  Pickled,
  Workers,
  Hosts,
  Nanny,
  Msg,
}
const KEY_BYTES: ReadonlyArray<readonly [Key, Buffer]> = [
  [Key.Op, Buffer.from('op')],
  [Key.Name, Buffer.from('name')],
  [Key.Client, Buffer.from('client')],
  [Key.Worker, Buffer.from('worker')],
  [Key.Address, Buffer.from('address')],
  [Key.Pickled, Buffer.from('__Pickled__')],
  [Key.Workers, Buffer.from('workers')],
  [Key.Hosts, Buffer.from('hosts')],
  [Key.Nanny, Buffer.from('nanny')],
  [Key.Msg, Buffer.from('msg')],
];

/** Most broadcast targets kept; a longer list is reported as null (refused by the guard). */
const MAX_TARGETS = 4096;

const FAIL = -1;

/**
 * Walks one frame 0. Reuse one scanner per connection; it keeps no state
 * between calls apart from its scratch OpMap.
 */
export class Frame0Scanner {
  readonly #limits: ScanLimits;
  readonly #m = new OpMap();
  #buf: Buffer = Buffer.alloc(0);
  #end = 0;
  #error: GatewayError | null = null;
  #pickled = false;

  constructor(limits: ScanLimits = DEFAULT_SCAN_LIMITS) {
    this.#limits = limits;
  }

  scan<R>(buf: Buffer, start: number, end: number, visitor: OpVisitor<R>): R | GatewayError | null {
    this.#buf = buf;
    this.#end = end;
    this.#error = null;
    if (start >= end) return wireError('malformedFrame0', { why: 'empty frame' });
    const b = buf[start]!;
    let result: R | null;
    let pos: number;
    if (isMapHead(b)) {
      result = visitor.begin('map');
      if (result !== null) return result;
      const m = this.#m;
      m.reset();
      pos = this.#opMap(start, 1);
      if (pos === FAIL) return this.#takeError();
      result = visitor.map(m, 0);
    } else if (isArrayHead(b)) {
      result = visitor.begin('array');
      if (result !== null) return result;
      if (this.#header(start) === FAIL) return this.#takeError();
      pos = this.#hdrEnd;
      const count = this.#hdrCount;
      // A batch (§2.4): each element is decided on its own; the first objection ends the scan.
      for (let i = 0; i < count && result === null; i++) {
        if (pos >= end) return wireError('malformedFrame0', { why: 'truncated array' });
        this.#pickled = false;
        if (isMapHead(buf[pos]!)) {
          this.#m.reset();
          pos = this.#opMap(pos, 2);
          if (pos === FAIL) return this.#takeError();
          result = visitor.map(this.#m, i);
        } else {
          pos = this.#skipValue(pos, 2);
          if (pos === FAIL) return this.#takeError();
          result = visitor.nonMap(i, this.#pickled);
        }
      }
      if (result !== null) return result;
    } else {
      result = visitor.begin('scalar');
      if (result !== null) return result;
      pos = this.#skipValue(start, 1);
      if (pos === FAIL) return this.#takeError();
    }
    if (pos !== end) return wireError('malformedFrame0', { why: 'extra bytes after the message' });
    return result;
  }

  /** Reads an op-map at pos into #m, walking (and checking) its whole subtree. */
  #opMap(pos: number, depth: number): number {
    if (this.#header(pos) === FAIL) return FAIL;
    pos = this.#hdrEnd;
    const count = this.#hdrCount;
    const m = this.#m;
    for (let i = 0; i < count; i++) {
      const key = this.#keyAt(pos);
      this.#pickled = false;
      pos = this.#skipValue(pos, depth + 1);
      if (pos === FAIL) return FAIL;
      if (key === Key.Pickled) this.#pickled = true;
      const valStart = pos;
      pos = this.#skipValue(pos, depth + 1);
      if (pos === FAIL) return FAIL;
      if (this.#pickled) m.pickled = true;
      if (key !== Key.None && key !== Key.Pickled) {
        const pickled = this.#pickled;
        this.#capture(m, key, valStart, pos);
        this.#pickled = pickled;
      }
    }
    return pos;
  }

  #capture(m: OpMap, key: Key, start: number, end: number): void {
    const b = this.#buf[start]!;
    switch (key) {
      case Key.Workers:
        m.workers = b === 0xc0 ? undefined : this.#strList(start);
        return;
      case Key.Hosts:
        m.hosts = b === 0xc0 ? undefined : this.#strList(start);
        return;
      case Key.Nanny:
        m.nanny = b === 0xc3;
        return;
      case Key.Msg:
        m.innerOp = this.#innerOp(start);
        return;
    }
    let v: string | null;
    if (key === Key.Name && (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))) v = String(this.#intAt(start));
    else v = this.#strAt(start, end);
    switch (key) {
      case Key.Op:
        m.op = v;
        break;
      case Key.Address:
        m.address = v;
        break;
      case Key.Worker:
        m.worker = v;
        break;
      case Key.Client:
        m.client = v;
        break;
      case Key.Name:
        m.name = v;
        break;
    }
  }

  /** An array of short strings (already validated by #skipValue), or null. */
  #strList(pos: number): string[] | null {
    this.#header(pos);
    if (this.#hdrKind !== Kind.Array || this.#hdrCount > MAX_TARGETS) return null;
    const count = this.#hdrCount;
    pos = this.#hdrEnd;
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      this.#header(pos);
      const end = this.#hdrEnd + this.#hdrCount;
      const s = (this.#hdrKind as Kind) === Kind.Str ? this.#strAt(pos, end) : null;
      if (s === null) return null;
      out.push(s);
      pos = end;
    }
    return out;
  }

  /** The last string "op" of the map at pos (already validated), or null. */
  #innerOp(pos: number): string | null {
    this.#header(pos);
    if (this.#hdrKind !== Kind.Map) return null;
    const count = this.#hdrCount;
    pos = this.#hdrEnd;
    let op: string | null = null;
    for (let i = 0; i < count; i++) {
      const isOp = this.#keyAt(pos) === Key.Op;
      pos = this.#skipValue(pos, 0);
      const valStart = pos;
      pos = this.#skipValue(pos, 0);
      if (isOp) op = this.#strAt(valStart, pos);
    }
    return op;
  }

  /** A str value as a JS string, or null for any other type or an oversized one. */
  #strAt(start: number, end: number): string | null {
    if (this.#header(start) === FAIL || this.#hdrKind !== Kind.Str) {
      this.#error = null;
      return null;
    }
    const s = this.#hdrEnd;
    if (end - s > this.#limits.maxFieldBytes) return null;
    return this.#buf.toString('utf8', s, end);
  }

  #intAt(pos: number): number {
    const buf = this.#buf;
    const b = buf[pos]!;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xcc: return buf.readUInt8(pos + 1);
      case 0xcd: return buf.readUInt16BE(pos + 1);
      case 0xce: return buf.readUInt32BE(pos + 1);
      case 0xcf: return Number(buf.readBigUInt64BE(pos + 1));
      case 0xd0: return buf.readInt8(pos + 1);
      case 0xd1: return buf.readInt16BE(pos + 1);
      case 0xd2: return buf.readInt32BE(pos + 1);
      default: return Number(buf.readBigInt64BE(pos + 1));
    }
  }

  /** Which interesting key (if any) is the str at pos; does not advance. */
  #keyAt(pos: number): Key {
    const buf = this.#buf;
    const b = buf[pos]!;
    let s: number;
    let len: number;
    if (b >= 0xa0 && b <= 0xbf) {
      s = pos + 1;
      len = b & 0x1f;
    } else if (b === 0xd9 && pos + 1 < this.#end) {
      s = pos + 2;
      len = buf[pos + 1]!;
    } else return Key.None;
    if (s + len > this.#end) return Key.None;
    for (const [key, bytes] of KEY_BYTES) {
      if (bytes.length !== len) continue;
      let i = 0;
      while (i < len && buf[s + i] === bytes[i]) i++;
      if (i === len) return key;
    }
    return Key.None;
  }

  // Result registers of #header, to avoid allocating a tuple per value.
  #hdrKind = Kind.Scalar;
  #hdrCount = 0;
  #hdrEnd = 0;

  /**
   * Decodes the head of the value at pos: its kind, its element count (for
   * maps and arrays: entries, for str/bin/ext: payload bytes) and where its
   * body starts. Refuses anything the remaining bytes cannot hold.
   */
  #header(pos: number): number {
    const buf = this.#buf;
    const end = this.#end;
    if (pos >= end) return this.#malformed('truncated value');
    const b = buf[pos]!;
    let kind: Kind;
    let count = 0;
    let body = pos + 1;
    if (b <= 0x7f || b >= 0xe0) kind = Kind.Scalar;
    else if (b <= 0x8f) {
      kind = Kind.Map;
      count = b & 0x0f;
    } else if (b <= 0x9f) {
      kind = Kind.Array;
      count = b & 0x0f;
    } else if (b <= 0xbf) {
      kind = Kind.Str;
      count = b & 0x1f;
    }
    else {
      const need = HEAD_SIZE[b - 0xc0]!;
      if (need < 0) return this.#malformed(`reserved byte 0x${b.toString(16)}`);
      if (pos + 1 + need > end) return this.#malformed('truncated value');
      kind = SIZED_KIND[b - 0xc0]!;
      switch (LENGTH_BYTES[b - 0xc0]) {
        case 1: count = buf[pos + 1]!; break;
        case 2: count = buf.readUInt16BE(pos + 1); break;
        case 4: count = buf.readUInt32BE(pos + 1); break;
      }
      if (b >= 0xc7 && b <= 0xc9) count += 1; // ext: the type byte precedes the data
      body = pos + 1 + (kind === Kind.Scalar ? need : LENGTH_BYTES[b - 0xc0]!);
    }
    if (body > end) return this.#malformed('truncated value');
    // Every map entry needs >= 2 bytes, every element >= 1; payloads their length.
    const minBytes = kind === Kind.Map ? 2 * count : count;
    if (minBytes > end - body) return this.#malformed('declared length exceeds the frame');
    this.#hdrKind = kind;
    this.#hdrCount = count;
    this.#hdrEnd = body;
    return body;
  }

  /** Skips one value, walking containers to look for `__Pickled__` keys. */
  #skipValue(pos: number, depth: number): number {
    if (this.#header(pos) === FAIL) return FAIL;
    const kind = this.#hdrKind;
    const count = this.#hdrCount;
    pos = this.#hdrEnd;
    switch (kind) {
      case Kind.Scalar:
        return pos;
      case Kind.Str:
      case Kind.Bin:
        return pos + count;
      case Kind.Array:
        if (depth >= this.#limits.maxDepth) return this.#tooDeep();
        for (let i = 0; i < count; i++) {
          pos = this.#skipValue(pos, depth + 1);
          if (pos === FAIL) return FAIL;
        }
        return pos;
      case Kind.Map:
        if (depth >= this.#limits.maxDepth) return this.#tooDeep();
        for (let i = 0; i < count; i++) {
          if (this.#keyAt(pos) === Key.Pickled) this.#pickled = true;
          pos = this.#skipValue(pos, depth + 1);
          if (pos === FAIL) return FAIL;
          pos = this.#skipValue(pos, depth + 1);
          if (pos === FAIL) return FAIL;
        }
        return pos;
    }
  }

  #malformed(why: string): number {
    this.#error ??= wireError('malformedFrame0', { why });
    return FAIL;
  }

  #tooDeep(): number {
    this.#error ??= wireError('frame0TooDeep', { limit: this.#limits.maxDepth });
    return FAIL;
  }

  #takeError(): GatewayError {
    const e = this.#error ?? wireError('malformedFrame0', { why: 'unreadable' });
    this.#error = null;
    return e;
  }
}

const enum Kind {
  Scalar,
  Str,
  Bin,
  Array,
  Map,
}

function isMapHead(b: number): boolean {
  return (b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf;
}

function isArrayHead(b: number): boolean {
  return (b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd;
}

// For bytes 0xc0..0xdf: bytes after the type byte that belong to the head
// (scalars: the whole value). -1: never used by msgpack.
// prettier-ignore
const HEAD_SIZE: readonly number[] = [
  0, -1, 0, 0, 1, 2, 4, 2, 3, 5, 4, 8, 1, 2, 4, 8, // c0..cf (c7-c9: len + type, checked below)
  1, 2, 4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4, // d0..df (d4-d8 fixext: type + data)
];
// Kind of each 0xc0..0xdf value; ext is opaque like bin, fixext a fixed-size scalar.
// prettier-ignore
const SIZED_KIND: readonly Kind[] = [
  Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Bin, Kind.Bin, Kind.Bin, Kind.Bin,
  Kind.Bin, Kind.Bin, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar,
  Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar, Kind.Scalar,
  Kind.Scalar, Kind.Str, Kind.Str, Kind.Str, Kind.Array, Kind.Array, Kind.Map, Kind.Map,
];
// Length-prefix bytes for the sized kinds, indexed like HEAD_SIZE.
// prettier-ignore
const LENGTH_BYTES: readonly number[] = [
  0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4,
];
