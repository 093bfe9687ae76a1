/**
 * Reads the operations in a Dask frame 0 exactly as the scheduler will
 * (a request's map, or a stream's batch of maps): Python's msgpack with
 * `raw=False, strict_map_key=False, use_list=False` and Dask's object_hook.
 * A bounded walker written for this job rather than a general decoder: frame
 * 0 of an update-graph can be megabytes, and policy needs a handful of fields
 * of each op-map plus a few questions about the whole tree, so str/bin/ext
 * bodies are skipped by arithmetic and only the returned fields allocate.
 *
 * The rules, each one a way Python could read the bytes differently:
 *   - a key is the same `str` in every string format (fixstr, str8, str16,
 *     str32); `bin` keys are `bytes`, a different key;
 *   - Python keeps the LAST of duplicate keys. No Dask peer writes duplicates,
 *     so an op-map (the maps whose fields policy reads: the top-level map,
 *     each map of a batch, broadcast's inner `msg`) with a duplicate key, or a
 *     key that is not a str (`handler(**msg)` takes only str keys), is refused;
 *   - every str must be valid UTF-8 (strict), every timestamp ext (-1) well
 *     formed, no map key may be or contain a map (unhashable): Python fails
 *     on those, so the gateway refuses rather than guess;
 *   - Dask's object_hook turns `{"__Pickled__": k}` into the unpickled object
 *     while decoding (at any depth, for any op) and `{"__Serialized__": k}`
 *     into the opaque frames k..; both are accepted only as Dask writes them: one
 *     entry, an integer 1 <= k < frames. `__Enum__`/`__Set__` maps are
 *     decoded into other values, so none of the four may stand where policy
 *     reads a field, or be an op-map;
 *   - truthiness (`nanny`, `reply`) is Python's;
 *   - a value followed by extra bytes is an error (msgpack ExtraData).
 * Anything refused here carries a GW_WIRE_* code. This module never touches
 * a socket.
 */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../errors/base.js';
import { wireError } from './errors.js';

export type TopShape = 'map' | 'array' | 'scalar';

/**
 * The fields policy reads from one op-map. Strings are the decoded values;
 * null means "present but not a plain string"; undefined, absent. Reused
 * between maps: copy what must outlive the visitor call.
 */
export class OpMap {
  op: string | null | undefined = undefined;
  address: string | null | undefined = undefined;
  worker: string | null | undefined = undefined;
  client: string | null | undefined = undefined;
  /** Worker names may be ints in Dask; they are given here as decimal strings. */
  name: string | null | undefined = undefined;
  /** The value of a nanny's `{"status": "ok"}` after register_nanny (since 2023.9). */
  status: string | null | undefined = undefined;
  /** `workers` / `hosts` as lists of strings (broadcast targets); undefined if absent or nil, null if anything else. */
  workers: string[] | null | undefined = undefined;
  hosts: string[] | null | undefined = undefined;
  /** Python truthiness of `nanny` (false when absent). */
  nanny = false;
  /** Python truthiness of `reply` (true when absent: Dask's default). */
  reply = true;
  /** The "op" of the nested `msg` op-map (what broadcast/proxy forward); null if msg is not a map with a str op. */
  innerOp: string | null | undefined = undefined;
  /** A `key` entry that is not nil (workers_to_close unpickles a bytes key). */
  key = false;
  /** How many entries the map has. */
  entries = 0;
  /** A `__Pickled__` placeholder somewhere inside this map. */
  pickled = false;
  /** A `__Serialized__` placeholder somewhere inside this map. */
  serialized = false;

  reset(): void {
    this.op = this.address = this.worker = this.client = this.name = this.status = undefined;
    this.workers = this.hosts = this.innerOp = undefined;
    this.nanny = this.key = this.pickled = this.serialized = false;
    this.reply = true;
    this.entries = 0;
  }
}

export interface OpVisitor<R> {
  /** Called first with the shape of the top-level value. */
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

// Keys policy reads, and the four keys Dask's object_hook acts on.
const enum Key {
  None,
  Op,
  Address,
  Worker,
  Client,
  Name,
  Status,
  Workers,
  Hosts,
  Nanny,
  Reply,
  Msg,
  KeyField,
  Pickled,
  Serialized,
  Enum,
  Set,
  AsList,
  Module,
  ClassName,
}
const KEY_NAMES: ReadonlyArray<readonly [Key, string]> = [
  [Key.Op, 'op'], [Key.Address, 'address'], [Key.Worker, 'worker'], [Key.Client, 'client'], [Key.Name, 'name'],
  [Key.Status, 'status'], [Key.Workers, 'workers'], [Key.Hosts, 'hosts'], [Key.Nanny, 'nanny'], [Key.Reply, 'reply'],
  [Key.Msg, 'msg'], [Key.KeyField, 'key'], [Key.Pickled, '__Pickled__'], [Key.Serialized, '__Serialized__'],
  [Key.Enum, '__Enum__'], [Key.Set, '__Set__'], [Key.AsList, 'as-list'], [Key.Module, '__module__'], [Key.ClassName, '__name__'],
];
/**
 * The enum members Dask peers put in messages, as module, class, member:
 * Client.get_metadata's `default=no_default` (since 2024). To decode any
 * other the scheduler would import a module and look names up in it.
 */
const KNOWN_ENUMS: ReadonlySet<string> = new Set(['dask.typing _NoDefault no_default']);
/** Candidates by byte length, so a key is compared with at most a few names. */
const KEYS_BY_LENGTH: ReadonlyArray<ReadonlyArray<readonly [Key, Buffer]>> = (() => {
  const out: [Key, Buffer][][] = [];
  for (const [k, name] of KEY_NAMES) (out[name.length] ??= []).push([k, Buffer.from(name, 'latin1')]);
  return out;
})();
const MAGIC_NAMES: Readonly<Partial<Record<Key, string>>> = {
  [Key.Pickled]: '__Pickled__', [Key.Serialized]: '__Serialized__', [Key.Enum]: '__Enum__', [Key.Set]: '__Set__',
};

/** Most broadcast targets kept; a longer list is reported as null (refused by the guard). */
const MAX_TARGETS = 4096;
/** Up to this many str keys a map's duplicates are found by comparing bytes pairwise; beyond, by a set. */
const PAIRWISE_KEYS = 16;

const FAIL = -1;
const DUPLICATE: unique symbol = Symbol('duplicate');

const enum Kind {
  Nil,
  False,
  True,
  Int,
  Float,
  Str,
  Bin,
  Ext,
  Array,
  Map,
}

/**
 * Walks one frame 0. Reuse one scanner per connection; it keeps no state
 * between calls apart from scratch space.
 */
export class Frame0Scanner {
  readonly #limits: ScanLimits;
  readonly #m = new OpMap();
  #buf: Buffer = Buffer.alloc(0);
  #end = 0;
  #frames = 1;
  #error: GatewayError | null = null;
  // Set by #value for the value just walked.
  #pickled = false;
  #serialized = false;
  #hasMap = false;
  #magic: string | null = null;
  // Result registers of #header, to avoid allocating a tuple per value.
  #kind = Kind.Nil;
  #count = 0;
  #body = 0;
  readonly #keyStarts: number[] = [];
  readonly #keyEnds: number[] = [];
  // Top of the key scratch stack (the arrays are reused, never shrunk).
  #keyTop = 0;

  constructor(limits: ScanLimits = DEFAULT_SCAN_LIMITS) {
    this.#limits = limits;
  }

  /** `frames` is the message's frame count: placeholders must point inside it. */
  scan<R>(buf: Buffer, start: number, end: number, visitor: OpVisitor<R>, frames = 1): R | GatewayError | null {
    this.#buf = buf;
    this.#end = end;
    this.#frames = frames;
    this.#error = null;
    this.#keyTop = 0;
    if (start >= end) return wireError('malformedFrame0', { why: 'empty frame' });
    if (this.#header(start) === FAIL) return this.#takeError();
    const kind = this.#kind;
    let result: R | null;
    let pos: number;
    if (kind === Kind.Map) {
      result = visitor.begin('map');
      if (result !== null) return result;
      pos = this.#opMap(start, 1, this.#m);
      if (pos === FAIL) return this.#takeError();
      result = visitor.map(this.#m, 0);
    } else if (kind === Kind.Array) {
      result = visitor.begin('array');
      if (result !== null) return result;
      const count = this.#count;
      pos = this.#body;
      // A batch (a stream's list of op-maps): each element is decided on its own; the first objection ends the scan.
      for (let i = 0; i < count && result === null; i++) {
        if (this.#header(pos) === FAIL) return this.#takeError();
        if (this.#kind === Kind.Map) {
          pos = this.#opMap(pos, 2, this.#m);
          if (pos === FAIL) return this.#takeError();
          result = visitor.map(this.#m, i);
        } else {
          pos = this.#value(pos, 2);
          if (pos === FAIL) return this.#takeError();
          result = visitor.nonMap(i, this.#pickled);
        }
      }
      if (result !== null) return result;
    } else {
      // Python's msgpack gives an ext as ExtType, a 2-tuple the stream loop would take for a batch.
      if (kind === Kind.Ext) return wireError('malformedFrame0', { why: 'an extension type as the whole message' });
      result = visitor.begin('scalar');
      if (result !== null) return result;
      pos = this.#value(start, 1);
      if (pos === FAIL) return this.#takeError();
    }
    if (pos !== end) return wireError('malformedFrame0', { why: 'extra bytes after the message' });
    return result;
  }

  /** Reads the op-map at pos into m, walking (and checking) its whole subtree. */
  #opMap(pos: number, depth: number, m: OpMap): number {
    m.reset();
    if (this.#header(pos) === FAIL) return FAIL;
    if (depth >= this.#limits.maxDepth) return this.#tooDeep();
    const count = this.#count;
    m.entries = count;
    pos = this.#body;
    // The key scratch is a stack: broadcast's inner msg is read while its outer map is.
    const base = this.#keyTop;
    const r = this.#opMapEntries(pos, depth, m, base);
    this.#keyTop = base;
    return r;
  }

  #opMapEntries(pos: number, depth: number, m: OpMap, base: number): number {
    const count = m.entries;
    let keys: Set<string> | null = null;
    let pickled = false;
    let serialized = false;
    for (let i = 0; i < count; i++) {
      if (this.#header(pos) === FAIL) return FAIL;
      if (this.#kind !== Kind.Str) return this.#fail(wireError('nonStringKey', { at: keyPath(depth) }));
      const ks = this.#body;
      const ke = ks + this.#count;
      if (!this.#validStr(ks, ke)) return FAIL;
      // Equal strs have equal UTF-8 bytes, whatever string format carried them.
      const added = this.#addKey(pos, base, keys);
      if (added === DUPLICATE) return this.#duplicate(pos, depth);
      keys = added;
      const key = this.#keyOf(ks, ke);
      const magic = MAGIC_NAMES[key];
      if (magic !== undefined) return this.#fail(wireError('magicField', { field: '(the map itself)', magic, at: keyPath(depth) }));
      const valueStart = ke;
      pos = this.#value(valueStart, depth + 1);
      if (pos === FAIL) return FAIL;
      pickled ||= this.#pickled;
      serialized ||= this.#serialized;
      if (key !== Key.None && key !== Key.AsList && key !== Key.Module && key !== Key.ClassName) {
        if (this.#magic !== null) return this.#fail(wireError('magicField', { field: KEY_NAMES.find(([k]) => k === key)![1], magic: this.#magic, at: keyPath(depth) }));
        if (this.#capture(m, key, valueStart, pos, depth) === FAIL) return FAIL;
      }
    }
    m.pickled = pickled;
    m.serialized = serialized;
    return pos;
  }

  #duplicate(keyPos: number, depth: number): number {
    this.#header(keyPos);
    const key = this.#kind === Kind.Str ? JSON.stringify(this.#buf.toString('utf8', this.#body, Math.min(this.#body + this.#count, this.#body + 64))) : '(a non-string key)';
    return this.#fail(wireError('duplicateKey', { key, at: keyPath(depth) }));
  }

  /** Stores one captured field; the value [start, end) has been walked and validated already. */
  #capture(m: OpMap, key: Key, start: number, end: number, depth: number): number {
    this.#header(start);
    const kind = this.#kind;
    switch (key) {
      case Key.Workers:
        m.workers = kind === Kind.Nil ? undefined : this.#strList(start);
        return 0;
      case Key.Hosts:
        m.hosts = kind === Kind.Nil ? undefined : this.#strList(start);
        return 0;
      case Key.Nanny:
        m.nanny = this.#truthy(start);
        return 0;
      case Key.Reply:
        m.reply = this.#truthy(start);
        return 0;
      case Key.KeyField:
        m.key = kind !== Kind.Nil;
        return 0;
      case Key.Msg:
        return this.#innerMsg(m, start, depth);
    }
    let v: string | null;
    if (key === Key.Name && kind === Kind.Int) v = this.#intString(start);
    else v = kind === Kind.Str && this.#count <= this.#limits.maxFieldBytes ? this.#buf.toString('utf8', this.#body, end) : null;
    switch (key) {
      case Key.Op: m.op = v; break;
      case Key.Address: m.address = v; break;
      case Key.Worker: m.worker = v; break;
      case Key.Client: m.client = v; break;
      case Key.Name: m.name = v; break;
      case Key.Status: m.status = v; break;
    }
    return 0;
  }

  /** broadcast/proxy's `msg`: an op-map of its own, held to the same rules. */
  #innerMsg(m: OpMap, start: number, depth: number): number {
    this.#header(start);
    if (this.#kind !== Kind.Map) {
      m.innerOp = null;
      return 0;
    }
    const inner = new OpMap();
    if (this.#opMap(start, depth + 1, inner) === FAIL) return FAIL;
    m.innerOp = inner.op ?? null;
    return 0;
  }

  /** An array of short strings (already validated), or null. */
  #strList(pos: number): string[] | null {
    this.#header(pos);
    if (this.#kind !== Kind.Array || this.#count > MAX_TARGETS) return null;
    const count = this.#count;
    pos = this.#body;
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      this.#header(pos);
      if ((this.#kind as Kind) !== Kind.Str || this.#count > this.#limits.maxFieldBytes) return null;
      const end = this.#body + this.#count;
      out.push(this.#buf.toString('utf8', this.#body, end));
      pos = end;
    }
    return out;
  }

  /** Python's bool() of a plain value (magic maps never reach here as fields). */
  #truthy(pos: number): boolean {
    this.#header(pos);
    switch (this.#kind) {
      case Kind.Nil:
      case Kind.False:
        return false;
      case Kind.True:
      case Kind.Ext:
        return true;
      case Kind.Int:
        return this.#intString(pos) !== '0';
      case Kind.Float: {
        const b = this.#buf[pos]!;
        const f = b === 0xca ? this.#buf.readFloatBE(pos + 1) : this.#buf.readDoubleBE(pos + 1);
        return f !== 0; // NaN is truthy in Python, and NaN !== 0
      }
      default:
        return this.#count > 0; // str, bin, array, map: non-empty
    }
  }

  #intString(pos: number): string {
    const buf = this.#buf;
    const b = buf[pos]!;
    if (b <= 0x7f) return String(b);
    if (b >= 0xe0) return String(b - 0x100);
    switch (b) {
      case 0xcc: return String(buf.readUInt8(pos + 1));
      case 0xcd: return String(buf.readUInt16BE(pos + 1));
      case 0xce: return String(buf.readUInt32BE(pos + 1));
      case 0xcf: return buf.readBigUInt64BE(pos + 1).toString();
      case 0xd0: return String(buf.readInt8(pos + 1));
      case 0xd1: return String(buf.readInt16BE(pos + 1));
      case 0xd2: return String(buf.readInt32BE(pos + 1));
      default: return buf.readBigInt64BE(pos + 1).toString();
    }
  }

  /** Which known key (if any) the str body [s, e) spells. */
  #keyOf(s: number, e: number): Key {
    const len = e - s;
    const candidates = KEYS_BY_LENGTH[len];
    if (candidates === undefined) return Key.None;
    const buf = this.#buf;
    for (const [key, bytes] of candidates) {
      let i = 0;
      while (i < len && buf[s + i] === bytes[i]) i++;
      if (i === len) return key;
    }
    return Key.None;
  }

  #sameBytes(a: number, ae: number, b: number, be: number): boolean {
    const len = ae - a;
    if (len !== be - b) return false;
    const buf = this.#buf;
    for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false;
    return true;
  }

  /** Strict UTF-8, as Python's decoder with raw=False. */
  #validStr(s: number, e: number): boolean {
    const buf = this.#buf;
    let i = s;
    while (i < e && buf[i]! < 0x80) i++;
    if (i === e || isUtf8(buf.subarray(i, e))) return true;
    this.#fail(wireError('malformedFrame0', { why: 'a string is not valid UTF-8' }));
    return false;
  }

  /**
   * Decodes the head of the value at pos into #kind, #count (entries for maps
   * and arrays, payload bytes for str/bin/ext) and #body (where the body
   * starts). Refuses anything the remaining bytes cannot hold.
   */
  #header(pos: number): number {
    const buf = this.#buf;
    const end = this.#end;
    if (pos >= end) return this.#malformed('truncated value');
    const b = buf[pos]!;
    let kind: Kind;
    let count = 0;
    let body = pos + 1;
    if (b <= 0x7f || b >= 0xe0) kind = Kind.Int;
    else if (b <= 0x8f) {
      kind = Kind.Map;
      count = b & 0x0f;
    } else if (b <= 0x9f) {
      kind = Kind.Array;
      count = b & 0x0f;
    } else if (b <= 0xbf) {
      kind = Kind.Str;
      count = b & 0x1f;
    } else {
      const spec = SIZED[b - 0xc0]!;
      if (spec === undefined) return this.#malformed(`reserved byte 0x${b.toString(16)}`);
      kind = spec.kind;
      if (pos + 1 + spec.head > end) return this.#malformed('truncated value');
      switch (spec.lengthBytes) {
        case 1: count = buf[pos + 1]!; break;
        case 2: count = buf.readUInt16BE(pos + 1); break;
        case 4: count = buf.readUInt32BE(pos + 1); break;
        default: count = spec.fixed;
      }
      body = pos + 1 + spec.head;
    }
    // Every map entry needs >= 2 bytes, every element >= 1; payloads their length.
    const minBytes = kind === Kind.Map ? 2 * count : kind === Kind.Array || kind === Kind.Str || kind === Kind.Bin || kind === Kind.Ext ? count : 0;
    if (minBytes > end - body) return this.#malformed('declared length exceeds the frame');
    this.#kind = kind;
    this.#count = count;
    this.#body = body;
    return body;
  }

  /**
   * Walks one value anywhere in the tree and checks what Python would fail
   * on. Leaves #pickled/#serialized (placeholders inside), #hasMap (the value
   * is or contains a map) and #magic (the value is a magic map) for the caller.
   */
  #value(pos: number, depth: number): number {
    if (this.#header(pos) === FAIL) return FAIL;
    const kind = this.#kind;
    const count = this.#count;
    const body = this.#body;
    this.#pickled = this.#serialized = this.#hasMap = false;
    this.#magic = null;
    switch (kind) {
      case Kind.Str:
        return this.#validStr(body, body + count) ? body + count : FAIL;
      case Kind.Bin:
        return body + count;
      case Kind.Ext:
        return this.#ext(pos, body, count);
      case Kind.Array:
        return this.#array(body, count, depth);
      case Kind.Map:
        return this.#map(body, count, depth);
      default:
        return body; // a scalar's head is the whole value
    }
  }

  #array(pos: number, count: number, depth: number): number {
    if (depth >= this.#limits.maxDepth) return this.#tooDeep();
    let pickled = false;
    let serialized = false;
    let hasMap = false;
    for (let i = 0; i < count; i++) {
      pos = this.#value(pos, depth + 1);
      if (pos === FAIL) return FAIL;
      pickled ||= this.#pickled;
      serialized ||= this.#serialized;
      hasMap ||= this.#hasMap;
    }
    this.#pickled = pickled;
    this.#serialized = serialized;
    this.#hasMap = hasMap;
    this.#magic = null;
    return pos;
  }

  #map(pos: number, count: number, depth: number): number {
    if (depth >= this.#limits.maxDepth) return this.#tooDeep();
    let pickled = false;
    let serialized = false;
    let magic: Key = Key.None;
    let placeholderAt = -1;
    let setList = false; // "as-list" is an array of hashable values
    let enumTrue = false;
    let enumParts: (string | null)[] | null = null; // __module__, __name__, name
    const base = this.#keyTop;
    let keys: Set<string> | null = null;
    for (let i = 0; i < count; i++) {
      const keyStart = pos;
      pos = this.#value(pos, depth + 1);
      if (pos === FAIL) return FAIL;
      // Python builds a dict: a map (or a tuple holding one) is unhashable.
      if (this.#hasMap) return this.#malformed('a map key is or contains a map (unhashable in Python)');
      pickled ||= this.#pickled;
      serialized ||= this.#serialized;
      // Python keeps the last of equal keys, after its object_hook has already run on the first value.
      const added = this.#addKey(keyStart, base, keys);
      if (added === DUPLICATE) return this.#duplicate(keyStart, depth);
      keys = added;
      this.#header(keyStart);
      const key = this.#kind === Kind.Str ? this.#keyOf(this.#body, this.#body + this.#count) : Key.None;
      if (MAGIC_NAMES[key] !== undefined && magic === Key.None) magic = key;
      if (key === Key.Pickled || key === Key.Serialized) placeholderAt = pos;
      const valueStart = pos;
      pos = this.#value(pos, depth + 1);
      if (pos === FAIL) return FAIL;
      pickled ||= this.#pickled;
      serialized ||= this.#serialized;
      if (key === Key.AsList) setList = !this.#hasMap && this.#kindAt(valueStart) === Kind.Array;
      else if (key === Key.Enum) enumTrue = this.#kindAt(valueStart) === Kind.True;
      else if (key === Key.Module || key === Key.ClassName || key === Key.Name) {
        enumParts ??= [null, null, null];
        enumParts[key === Key.Module ? 0 : key === Key.ClassName ? 1 : 2] = this.#shortStrAt(valueStart);
      }
    }
    this.#keyTop = base;
    const enumKnown = enumTrue && count === 4 && enumParts !== null && KNOWN_ENUMS.has(enumParts.join(' '));
    if (this.#magicProblem(magic, count, placeholderAt, setList, enumKnown) !== null) return FAIL;
    if (magic === Key.Pickled) pickled = true;
    if (magic === Key.Serialized) serialized = true;
    this.#pickled = pickled;
    this.#serialized = serialized;
    this.#hasMap = true;
    this.#magic = magic === Key.None ? null : MAGIC_NAMES[magic]!;
    return pos;
  }

  /**
   * Adds the key at pos to the keys of the map being read, those at
   * #keyStarts[base..] and in `keys`. Str keys (nearly all) are compared by
   * their bytes without allocating while the map is small; other keys, and
   * large maps, go into a set by pythonKey. Returns the set in use (null
   * while pairwise), or DUPLICATE. The scratch is a stack: nested maps push
   * above this map's entries and pop back when done.
   */
  #addKey(pos: number, base: number, keys: Set<string> | null): Set<string> | null | typeof DUPLICATE {
    this.#header(pos);
    const buf = this.#buf;
    const starts = this.#keyStarts;
    const ends = this.#keyEnds;
    const isStr = this.#kind === Kind.Str;
    const ks = this.#body;
    const ke = ks + this.#count;
    const top = this.#keyTop;
    if (isStr && keys === null && top - base < PAIRWISE_KEYS) {
      for (let j = base; j < top; j++) if (this.#sameBytes(starts[j]!, ends[j]!, ks, ke)) return DUPLICATE;
      starts[top] = ks;
      ends[top] = ke;
      this.#keyTop = top + 1;
      return null;
    }
    if (keys === null) {
      keys = new Set();
      for (let j = base; j < top; j++) keys.add(`s${buf.toString('latin1', starts[j]!, ends[j]!)}`);
    }
    const key = isStr ? `s${buf.toString('latin1', ks, ke)}` : this.pythonKey(pos);
    if (key === null) return keys; // NaN: equal to no key, itself included
    if (keys.has(key)) return DUPLICATE;
    keys.add(key);
    return keys;
  }

  /**
   * The key at pos (already validated and hashable) as a string two keys
   * share exactly when Python holds them equal: numbers by value across
   * int, float and bool (1 == 1.0 == True), str and bytes apart, tuples
   * element by element, an ExtType as the 2-tuple it is, timestamps by
   * value. null for a key equal to nothing (NaN).
   */
  private pythonKey(pos: number): string | null {
    this.#header(pos);
    const buf = this.#buf;
    const body = this.#body;
    const count = this.#count;
    switch (this.#kind) {
      case Kind.Nil:
        return 'z';
      case Kind.False:
        return 'n0';
      case Kind.True:
        return 'n1';
      case Kind.Int:
        return `n${this.#intString(pos)}`;
      case Kind.Float: {
        const f = buf[pos] === 0xca ? buf.readFloatBE(pos + 1) : buf.readDoubleBE(pos + 1);
        if (Number.isNaN(f)) return null;
        return Number.isInteger(f) ? `n${BigInt(f)}` : `f${f}`;
      }
      case Kind.Str:
        return `s${buf.toString('latin1', body, body + count)}`;
      case Kind.Bin:
        return `b${buf.toString('latin1', body, body + count)}`;
      case Kind.Ext: {
        const type = buf.readInt8(body - 1);
        if (type === -1) return `t${timestampKey(buf, body, count)}`;
        return tupleKey([`n${type}`, `b${buf.toString('latin1', body, body + count)}`]);
      }
      case Kind.Array: {
        const parts: string[] = [];
        let p = body;
        for (let i = 0; i < count; i++) {
          const k = this.pythonKey(p);
          if (k === null) return null;
          parts.push(k);
          p = this.#skipKnown(p);
        }
        return tupleKey(parts);
      }
      default:
        return null; // maps are refused as unhashable before this is asked
    }
  }

  /** The end of a value already validated (keys are small; no flags, no checks). */
  #skipKnown(pos: number): number {
    this.#header(pos);
    const kind = this.#kind;
    const count = this.#count;
    let p = this.#body;
    if (kind === Kind.Str || kind === Kind.Bin || kind === Kind.Ext) return p + count;
    if (kind === Kind.Array) {
      for (let i = 0; i < count; i++) p = this.#skipKnown(p);
      return p;
    }
    if (kind === Kind.Map) {
      for (let i = 0; i < 2 * count; i++) p = this.#skipKnown(p);
      return p;
    }
    return p;
  }

  /**
   * Dask's object_hook replaces these maps (protocol/core.py, serialize.py
   * msgpack_decode_default); each is accepted only in the one shape Dask
   * writes, in which Python is sure to decode it.
   */
  #magicProblem(magic: Key, count: number, placeholderAt: number, setList: boolean, enumKnown: boolean): string | null {
    switch (magic) {
      case Key.Pickled:
      case Key.Serialized:
        // {"__Pickled__": k}: a frame index; Python indexes frames[k] and unpickles or wraps what follows.
        if (count === 1 && placeholderAt !== -1 && this.#frameIndexAt(placeholderAt)) return null;
        this.#fail(wireError('badPlaceholder', { placeholder: MAGIC_NAMES[magic]!, frames: this.#frames }));
        return 'placeholder';
      case Key.Set:
        // {"__Set__": true, "as-list": [...]}: set() of the list, which needs hashable elements.
        if (count === 2 && setList) return null;
        this.#malformed('a __Set__ map that is not {"__Set__", "as-list": [hashable values]}');
        return 'set';
      case Key.Enum:
        // {"__Enum__": true, "__module__", "__name__", "name"}: the scheduler imports the module to decode it.
        if (enumKnown) return null;
        this.#malformed(`an __Enum__ map other than those Dask peers send (${[...KNOWN_ENUMS].join('; ')})`);
        return 'enum';
      default:
        return null;
    }
  }

  /** The str at pos if it is one of at most maxFieldBytes, else null. */
  #shortStrAt(pos: number): string | null {
    this.#header(pos);
    if (this.#kind !== Kind.Str || this.#count > this.#limits.maxFieldBytes) return null;
    return this.#buf.toString('utf8', this.#body, this.#body + this.#count);
  }

  #kindAt(pos: number): Kind {
    this.#header(pos);
    return this.#kind;
  }

  /** An int k with 1 <= k < frames: what Dask's writer puts in a placeholder. */
  #frameIndexAt(pos: number): boolean {
    this.#header(pos);
    if (this.#kind !== Kind.Int) return false;
    const s = this.#intString(pos);
    if (s.startsWith('-') || s.length > 15) return false;
    const k = Number(s);
    return k >= 1 && k < this.#frames;
  }

  /** ext: opaque, except the timestamp type (-1), which Python validates. */
  #ext(pos: number, body: number, length: number): number {
    const buf = this.#buf;
    const type = buf.readInt8(body - 1);
    if (type === -1) {
      let ns = 0;
      if (length === 8) ns = buf.readUInt32BE(body) >>> 2;
      else if (length === 12) ns = buf.readUInt32BE(body);
      else if (length !== 4) return this.#malformed(`invalid timestamp data (length ${length})`);
      if (ns > 999_999_999) return this.#malformed('timestamp nanoseconds above 999999999');
    }
    void pos;
    return body + length;
  }

  #malformed(why: string): number {
    return this.#fail(wireError('malformedFrame0', { why }));
  }

  #tooDeep(): number {
    return this.#fail(wireError('frame0TooDeep', { limit: this.#limits.maxDepth }));
  }

  #fail(e: GatewayError): number {
    this.#error ??= e;
    return FAIL;
  }

  #takeError(): GatewayError {
    const e = this.#error ?? wireError('malformedFrame0', { why: 'unreadable' });
    this.#error = null;
    return e;
  }
}

function keyPath(depth: number): string {
  return depth <= 1 ? 'the message' : depth === 2 ? 'a batched op or a map inside the message' : 'a nested map';
}

interface Sized {
  readonly kind: Kind;
  /** Bytes after the type byte that belong to the head (scalars: the whole value; ext: length and type). */
  readonly head: number;
  /** Size of the length prefix (0: fixed size). */
  readonly lengthBytes: 0 | 1 | 2 | 4;
  /** Payload bytes of fixext. */
  readonly fixed: number;
}

const s = (kind: Kind, head: number, lengthBytes: 0 | 1 | 2 | 4 = 0, fixed = 0): Sized => ({ kind, head, lengthBytes, fixed });
// For bytes 0xc0..0xdf; undefined: 0xc1, never used by msgpack.
// prettier-ignore
const SIZED: readonly (Sized | undefined)[] = [
  s(Kind.Nil, 0), undefined, s(Kind.False, 0), s(Kind.True, 0),
  s(Kind.Bin, 1, 1), s(Kind.Bin, 2, 2), s(Kind.Bin, 4, 4),
  s(Kind.Ext, 2, 1), s(Kind.Ext, 3, 2), s(Kind.Ext, 5, 4),
  s(Kind.Float, 4), s(Kind.Float, 8),
  s(Kind.Int, 1), s(Kind.Int, 2), s(Kind.Int, 4), s(Kind.Int, 8),
  s(Kind.Int, 1), s(Kind.Int, 2), s(Kind.Int, 4), s(Kind.Int, 8),
  s(Kind.Ext, 1, 0, 1), s(Kind.Ext, 1, 0, 2), s(Kind.Ext, 1, 0, 4), s(Kind.Ext, 1, 0, 8), s(Kind.Ext, 1, 0, 16),
  s(Kind.Str, 1, 1), s(Kind.Str, 2, 2), s(Kind.Str, 4, 4),
  s(Kind.Array, 2, 2), s(Kind.Array, 4, 4),
  s(Kind.Map, 2, 2), s(Kind.Map, 4, 4),
];

function tupleKey(parts: string[]): string {
  return `(${parts.map((p) => `${p.length}:${p}`).join('')})`;
}

function timestampKey(buf: Buffer, body: number, length: number): string {
  if (length === 4) return `${buf.readUInt32BE(body)}:0`;
  if (length === 8) {
    const v = buf.readBigUInt64BE(body);
    return `${v & 0x3ffffffffn}:${v >> 34n}`;
  }
  return `${buf.readBigInt64BE(body + 4)}:${buf.readUInt32BE(body)}`;
}
