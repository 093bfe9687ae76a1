import t from 'tap';
import { pack } from 'msgpackr';
import { Frame0Scanner, OpMap, type TopShape } from '../../src/wire/ops.js';
import { GatewayError } from '../../src/errors/base.js';

interface Seen {
  shape?: TopShape;
  maps: { op: unknown; address: unknown; worker: unknown; client: unknown; name: unknown; pickled: boolean }[];
  nonMaps: boolean[];
  error?: string;
}

function scan(bytes: Buffer | number[], scanner = new Frame0Scanner(), frames = 4): Seen {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const seen: Seen = { maps: [], nonMaps: [] };
  const r = scanner.scan(buf, 0, buf.length, {
    begin: (s) => ((seen.shape = s), null),
    map: (m: OpMap) => (seen.maps.push({ op: m.op, address: m.address, worker: m.worker, client: m.client, name: m.name, pickled: m.pickled }), null),
    nonMap: (_i, pickled) => (seen.nonMaps.push(pickled), null),
  }, frames);
  if (r instanceof GatewayError) seen.error = r.code;
  return seen;
}

const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)];
/** The same string in each of msgpack's four string formats: all are one Python str. */
const STR_FORMATS: ReadonlyArray<readonly [string, (s: string) => number[]]> = [
  ['fixstr', str],
  ['str8', (s) => [0xd9, Buffer.byteLength(s), ...Buffer.from(s)]],
  ['str16', (s) => [0xda, 0, Buffer.byteLength(s), ...Buffer.from(s)]],
  ['str32', (s) => [0xdb, 0, 0, 0, Buffer.byteLength(s), ...Buffer.from(s)]],
];

t.test('finds "op" wherever it sits in the map, as Dask workers put it last', async (t) => {
  const s = scan(pack({ key: 'x', nbytes: 3, op: 'task-finished' }));
  t.equal(s.shape, 'map');
  t.equal(s.maps[0]!.op, 'task-finished');
});

t.test('a key is recognised in every string format, as Python decodes them all to one str', async (t) => {
  for (const [name, enc] of STR_FORMATS) {
    const s = scan([0x82, ...enc('op'), ...str('run_function'), ...enc('address'), ...str('tls://1.2.3.4:5')]);
    t.equal(s.maps[0]!.op, 'run_function', `${name} "op"`);
    t.equal(s.maps[0]!.address, 'tls://1.2.3.4:5', `${name} "address"`);
  }
});

t.test('a key that appears twice in an op-map is refused, in any pair of string formats (Python keeps the last)', async (t) => {
  for (const [a, encA] of STR_FORMATS) {
    for (const [b, encB] of STR_FORMATS) {
      t.equal(scan([0x82, ...encA('op'), ...str('identity'), ...encB('op'), ...str('run_function')]).error, 'GW_WIRE_DUPLICATE_KEY', `${a} then ${b}`);
    }
  }
  t.equal(scan([0x83, ...str('op'), ...str('x'), ...str('zz'), 0xc0, ...str('zz'), 0xc0]).error, 'GW_WIRE_DUPLICATE_KEY', 'any duplicate, not only policy fields');
  const many = [0xde, 0, 41, ...str('op'), ...str('x')];
  for (let i = 0; i < 39; i++) many.push(...str(`k${i}`), 0x00);
  many.push(...str('k7'), 0x00);
  t.equal(scan(many).error, 'GW_WIRE_DUPLICATE_KEY', 'past the pairwise window too');
  const broadcast = [0x82, ...str('op'), ...str('broadcast'), ...str('msg'), 0x82, ...str('op'), ...str('run'), ...STR_FORMATS[2]![1]('op'), ...str('terminate')];
  t.equal(scan(broadcast).error, 'GW_WIRE_DUPLICATE_KEY', "broadcast's inner msg too");
  t.equal(scan(pack({ op: 'x', data: { k: 1, nested: { k: 2 } } })).error, undefined, 'the same key in different maps is fine');
});

t.test('two keys Python holds equal are refused in any map, at any depth: its object_hook has run on the value it drops', async (t) => {
  const nested = (...entries: number[][]) => scan([0x82, ...str('op'), ...str('x'), ...str('data'), 0x80 | entries.length, ...entries.flat()]).error;
  const f64 = (v: number) => { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); return [...b]; };
  t.equal(nested([0x01, 0x00], [...f64(1), 0x00]), 'GW_WIRE_DUPLICATE_KEY', '1 and 1.0');
  t.equal(nested([0xc3, 0x00], [0x01, 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'True and 1');
  t.equal(nested([0xc2, 0x00], [...f64(-0), 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'False and -0.0');
  t.equal(nested([0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0x00], [0x05, 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'uint64 5 and fixint 5');
  t.equal(nested([0x92, 0x01, ...str('x'), 0x00], [0x92, ...f64(1), ...str('x'), 0x00]), 'GW_WIRE_DUPLICATE_KEY', '(1, "x") and (1.0, "x")');
  t.equal(nested([0xd4, 0x05, 0x78, 0x00], [0x92, 0x05, 0xc4, 0x01, 0x78, 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'ExtType(5, b"x") and the tuple (5, b"x")');
  t.equal(nested([0xd6, 0xff, 0, 0, 0, 9, 0x00], [0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 9, 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'one timestamp in two formats');
  t.equal(nested([...str('k'), 0x00], [0xd9, 1, 0x6b, 0x00]), 'GW_WIRE_DUPLICATE_KEY', 'one str in two formats');
  t.equal(nested([...str('k'), 0x00], [0xc4, 1, 0x6b, 0x00]), undefined, 'str "k" and bytes b"k" differ');
  t.equal(nested([...f64(NaN), 0x00], [...f64(NaN), 0x00]), undefined, 'NaN equals nothing, not even NaN');
  t.equal(nested([...f64(1.5), 0x00], [0x01, 0x00]), undefined, '1.5 and 1 differ');
  const wide = Array.from({ length: 19 }, (_, i) => [0xcd, 0, i, 0x00]).flat();
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('data'), 0xde, 0, 20, ...wide, 0x07, 0x00]).error, 'GW_WIRE_DUPLICATE_KEY', 'past the pairwise window, by value (uint16 7 and fixint 7)');
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('data'), 0xde, 0, 20, ...wide, 0x6f, 0x00]).error, undefined, 'and no false alarm there');
});

t.test('an op-map key that is not a str is refused: handler(**msg) takes only str keys', async (t) => {
  t.equal(scan([0x81, 0xc4, 0x02, ...Buffer.from('op'), ...str('identity')]).error, 'GW_WIRE_NON_STRING_KEY', 'bin "op"');
  t.equal(scan([0x82, ...str('op'), ...str('x'), 0x01, 0x02]).error, 'GW_WIRE_NON_STRING_KEY', 'int key');
  t.equal(scan(pack({ op: 'x', data: new Map<unknown, unknown>([[1, 2], [Buffer.from('b'), 3]]) })).error, undefined, 'non-str keys deeper are Python-hashable and fine');
});

t.test('a non-string op is reported as null, a missing one as undefined', async (t) => {
  t.equal(scan(pack({ op: 5 })).maps[0]!.op, null);
  t.equal(scan(pack({ status: 'OK' })).maps[0]!.op, undefined);
});

t.test('extracts the pinning fields; integer worker names become decimal strings', async (t) => {
  const s = scan(pack({ op: 'register-worker', address: 'tcp://10.0.0.5:4000', name: 0, client: 'c-1', worker: 'w' }));
  t.same(s.maps[0], { op: 'register-worker', address: 'tcp://10.0.0.5:4000', worker: 'w', client: 'c-1', name: '0', pickled: false });
  t.equal(scan(pack({ op: 'x', name: -3 })).maps[0]!.name, '-3');
  t.equal(scan(pack({ op: 'x', name: 70000 })).maps[0]!.name, '70000');
});

t.test('an oversized field value is null, not truncated', async (t) => {
  const s = scan(pack({ op: 'heartbeat_worker', address: 'tcp://' + 'a'.repeat(5000) + ':1' }));
  t.equal(s.maps[0]!.address, null);
  t.equal(s.maps[0]!.op, 'heartbeat_worker');
});

t.test('detects a __Pickled__ placeholder at any depth and in any string format; a bin key is not one', async (t) => {
  t.equal(scan(pack({ op: 'gather', a: [{ b: { __Pickled__: 1 } }] })).maps[0]!.pickled, true);
  t.equal(scan(pack({ op: 'gather', a: { __Serialized__: 1 } })).maps[0]!.pickled, false);
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('k'), 0x81, 0xc4, 11, ...Buffer.from('__Pickled__'), 0x01]).maps[0]!.pickled, false, 'bin key');
  for (const [name, enc] of STR_FORMATS) {
    t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('k'), 0x91, 0x81, ...enc('__Pickled__'), 0x01]).maps[0]!.pickled, true, name);
  }
});

t.test('placeholders are accepted only as Dask writes them: one entry, an int frame index inside the message', async (t) => {
  const placeholder = (v: unknown, extra: Record<string, unknown> = {}) => scan(pack({ op: 'x', a: { __Pickled__: v, ...extra } }), undefined, 3).error;
  t.equal(placeholder(1), undefined, 'k = 1');
  t.equal(placeholder(2), undefined, 'k = 2 < 3 frames');
  for (const bad of [0, 3, -1, true, 'x', null, 1.5, [1]]) t.equal(placeholder(bad), 'GW_WIRE_BAD_PLACEHOLDER', `k = ${JSON.stringify(bad)}`);
  t.equal(placeholder(1, { more: 1 }), 'GW_WIRE_BAD_PLACEHOLDER', 'with another key');
  t.equal(scan(pack({ op: 'x', a: { __Serialized__: 5 } }), undefined, 3).error, 'GW_WIRE_BAD_PLACEHOLDER', '__Serialized__ past the last frame');
  t.equal(scan(pack({ op: 'x', __Pickled__: 1 }), undefined, 3).error, 'GW_WIRE_MAGIC_FIELD', 'an op-map that is itself a placeholder');
});

t.test('a policy field holding a map Dask decodes into another value is refused', async (t) => {
  for (const magic of [{ __Set__: true, 'as-list': ['a'] }, { __Serialized__: 1 }, { __Pickled__: 1 }]) {
    for (const field of ['op', 'address', 'client', 'worker', 'name', 'workers', 'msg', 'nanny', 'reply']) {
      t.equal(scan(pack({ op: 'x', [field]: magic }), undefined, 3).error, 'GW_WIRE_MAGIC_FIELD', `${field} = ${Object.keys(magic)[0]}`);
    }
    t.equal(scan(pack({ op: 'x', other: magic }), undefined, 3).error, undefined, `elsewhere, ${Object.keys(magic)[0]} is fine`);
  }
});

t.test('__Set__ maps pass only as Dask writes them; __Enum__ maps (which make the scheduler import a module) only for the members Dask peers send', async (t) => {
  const nested = (v: unknown) => scan(pack({ op: 'x', data: v }), undefined, 3).error;
  t.equal(nested({ __Set__: true, 'as-list': ['a', 1, ['t', 2]] }), undefined, 'a set of hashable values');
  t.equal(nested({ __Set__: true, 'as-list': [{ a: 1 }] }), 'GW_WIRE_MALFORMED_FRAME0', 'a map in a set is unhashable');
  t.equal(nested({ __Set__: true, 'as-list': [{ __Serialized__: 1 }] }), 'GW_WIRE_MALFORMED_FRAME0', 'so is a placeholder');
  t.equal(nested({ __Set__: true }), 'GW_WIRE_MALFORMED_FRAME0', 'no as-list');
  t.equal(nested({ __Set__: true, 'as-list': 'abc' }), 'GW_WIRE_MALFORMED_FRAME0', 'as-list not a list');
  t.equal(nested({ __Set__: true, 'as-list': [], more: 1 }), 'GW_WIRE_MALFORMED_FRAME0', 'another key');
  t.equal(nested({ __Enum__: true, name: 'no_default', __module__: 'dask.typing', __name__: '_NoDefault' }), undefined, "get_metadata's no_default, as 2026.7 writes it");
  t.equal(nested({ __Enum__: true, __module__: 'distributed.core', __name__: 'Status', name: 'running' }), 'GW_WIRE_MALFORMED_FRAME0', 'another enum');
  t.equal(nested({ __Enum__: true, name: 'no_default', __module__: 'dask.typing', __name__: '_NoDefault', x: 1 }), 'GW_WIRE_MALFORMED_FRAME0', 'with another key');
  t.equal(nested({ __Enum__: 1, name: 'no_default', __module__: 'dask.typing', __name__: '_NoDefault' }), 'GW_WIRE_MALFORMED_FRAME0', '__Enum__ not true');
  t.equal(scan(pack({ op: 'get_metadata', keys: ['x'], default: { __Enum__: true, name: 'no_default', __module__: 'dask.typing', __name__: '_NoDefault' } })).error, undefined, 'as a field policy does not read');
});

t.test('refuses what Python cannot decode: invalid UTF-8, bad timestamps, unhashable keys', async (t) => {
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('s'), 0xa2, 0xc3, 0x28]).error, 'GW_WIRE_MALFORMED_FRAME0', 'invalid UTF-8 value');
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('s'), 0xa3, 0xed, 0xa0, 0x80]).error, 'GW_WIRE_MALFORMED_FRAME0', 'a UTF-8 surrogate');
  t.equal(scan([0x82, ...str('op'), ...str('x'), 0xa2, 0xc3, 0x28, 0x01]).error, 'GW_WIRE_MALFORMED_FRAME0', 'invalid UTF-8 key');
  t.equal(scan(pack({ op: 'x', s: 'héllo ✓ \u{1F600}' })).error, undefined, 'valid UTF-8');
  const ts = (body: number[]) => scan([0x82, ...str('op'), ...str('x'), ...str('t'), ...body]).error;
  t.equal(ts([0xd6, 0xff, 0, 0, 0, 0]), undefined, 'timestamp 32');
  t.equal(ts([0xd7, 0xff, 0xee, 0x6b, 0x27, 0xfc, 0, 0, 0, 0]), undefined, 'timestamp 64, ns 999999999');
  t.equal(ts([0xd7, 0xff, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0]), 'GW_WIRE_MALFORMED_FRAME0', 'timestamp 64, ns above 999999999');
  t.equal(ts([0xc7, 12, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]), 'GW_WIRE_MALFORMED_FRAME0', 'timestamp 96, ns = 10^9');
  t.equal(ts([0xd5, 0xff, 0, 0]), 'GW_WIRE_MALFORMED_FRAME0', 'timestamp of 2 bytes');
  t.equal(ts([0xd5, 0x05, 0, 0]), undefined, 'another ext type is opaque');
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('m'), 0x81, 0x81, ...str('a'), 0x01, 0x02]).error, 'GW_WIRE_MALFORMED_FRAME0', 'a map as a key');
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('m'), 0x81, 0x91, 0x81, ...str('a'), 0x01, 0x02]).error, 'GW_WIRE_MALFORMED_FRAME0', 'a tuple holding a map as a key');
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('m'), 0x81, 0x92, 0x01, ...str('a'), 0x02]).error, undefined, 'a tuple of scalars as a key is hashable');
});

t.test('nanny and reply follow Python truthiness', async (t) => {
  const facts = (v: unknown) => {
    const buf = Buffer.from(pack({ op: 'broadcast', nanny: v, reply: v }));
    let got: [boolean, boolean] = [false, false];
    new Frame0Scanner().scan(buf, 0, buf.length, { begin: () => null, nonMap: () => null, map: (m) => ((got = [m.nanny, m.reply]), null) });
    return got;
  };
  for (const v of [true, 1, -1, 0.5, 'x', [0], { a: 1 }, Buffer.from([0])]) t.same(facts(v), [true, true], `${JSON.stringify(v)} is truthy`);
  for (const v of [false, 0, 0.0, '', [], {}, null, Buffer.alloc(0)]) t.same(facts(v), [false, false], `${JSON.stringify(v)} is falsy`);
  const absent = Buffer.from(pack({ op: 'identity' }));
  new Frame0Scanner().scan(absent, 0, absent.length, { begin: () => null, nonMap: () => null, map: (m) => (t.same([m.nanny, m.reply], [false, true], 'absent: nanny false, reply true (Dask\'s default)'), null) });
});

t.test('a batch is an array of op-maps, each reported with its own pickled flag; other elements are reported as non-maps', async (t) => {
  const s = scan(pack([{ op: 'a' }, { op: 'b', x: { __Pickled__: 2 } }, 'OK', [{ __Pickled__: 1 }]]), undefined, 3);
  t.equal(s.shape, 'array');
  t.same(s.maps.map((m) => [m.op, m.pickled]), [['a', false], ['b', true]]);
  t.same(s.nonMaps, [false, true]);
});

t.test('a scalar frame 0 is reported as such', async (t) => {
  const s = scan(pack('OK'));
  t.equal(s.shape, 'scalar');
  t.equal(s.error, undefined);
});

t.test('walks every msgpack type msgpackr emits without error', async (t) => {
  const value = { op: 'x', n: [0, -1, 127, 128, -33, 70000, -70000, 2 ** 40, -(2 ** 40), 1.5, 0.1], b: [true, false, null], s: ['', 'a'.repeat(40), 'b'.repeat(300), 'c'.repeat(70000)], bin: Buffer.alloc(70000), nested: { m: new Array(20).fill({ k: 1 }) } };
  const s = scan(pack(value));
  t.equal(s.error, undefined);
  t.equal(s.maps[0]!.op, 'x');
  const ext = [0x82, ...str('op'), ...str('x'), ...str('e'), 0xd4, 0x01, 0x02]; // fixext1
  t.equal(scan(ext).error, undefined, 'fixext');
  const ext8 = [0x82, ...str('op'), ...str('x'), ...str('e'), 0xc7, 0x03, 0x05, 1, 2, 3];
  t.equal(scan(ext8).error, undefined, 'ext8');
});

t.test('malformed frames are refused with a wire code, never thrown', async (t) => {
  const cases: [string, number[], string][] = [
    ['empty', [], 'GW_WIRE_MALFORMED_FRAME0'],
    ['truncated map', [0x82, ...str('op')], 'GW_WIRE_MALFORMED_FRAME0'],
    ['truncated string', [0x81, ...str('op'), 0xa5, 0x61], 'GW_WIRE_MALFORMED_FRAME0'],
    ['reserved byte 0xc1', [0x81, ...str('op'), 0xc1], 'GW_WIRE_MALFORMED_FRAME0'],
    ['extra bytes after the value', [0x80, 0x00], 'GW_WIRE_MALFORMED_FRAME0'],
    ['map32 claiming 4 billion entries', [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61], 'GW_WIRE_MALFORMED_FRAME0'],
    ['array32 claiming 4 billion elements', [0xdd, 0xff, 0xff, 0xff, 0xff, 0x00], 'GW_WIRE_MALFORMED_FRAME0'],
    ['bin32 longer than the frame', [0x81, ...str('a'), 0xc6, 0x7f, 0xff, 0xff, 0xff], 'GW_WIRE_MALFORMED_FRAME0'],
    ['nesting deeper than the limit', [0x81, ...str('op'), ...new Array(100).fill(0x91), 0x00], 'GW_WIRE_FRAME0_TOO_DEEP'],
  ];
  for (const [name, bytes, code] of cases) t.equal(scan(bytes).error, code, name);
});

t.test('a scanner is reusable after an error', async (t) => {
  const scanner = new Frame0Scanner();
  t.equal(scan([0xc1], scanner).error, 'GW_WIRE_MALFORMED_FRAME0');
  t.equal(scan(pack({ op: 'identity' }), scanner).maps[0]!.op, 'identity');
});

t.test('agrees with msgpackr on the op of random well-formed messages', async (t) => {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const atom = (): unknown => [() => Math.floor(rand() * 1e6) - 5e5, () => 'k' + Math.floor(rand() * 100), () => null, () => rand() > 0.5, () => Buffer.alloc(Math.floor(rand() * 10)), () => rand()][Math.floor(rand() * 6)]!();
  const value = (d: number): unknown => (d > 3 || rand() < 0.4 ? atom() : rand() < 0.5 ? Array.from({ length: Math.floor(rand() * 5) }, () => value(d + 1)) : Object.fromEntries(Array.from({ length: Math.floor(rand() * 5) }, () => ['f' + Math.floor(rand() * 50), value(d + 1)])));
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const obj = value(1) as Record<string, unknown>;
    const op = rand() < 0.8 ? 'op' + i : undefined;
    const m = op === undefined ? { x: obj } : { x: obj, op, y: 1 };
    const s = scan(pack(m));
    if (s.error !== undefined || s.maps[0]!.op !== op) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('extracts broadcast targets: workers and hosts lists, nanny, and the op of the nested msg', async (t) => {
  const s = scan(pack({ op: 'broadcast', msg: { function: Buffer.from('f'), op: 'run' }, workers: ['tls://a:1', 'tls://b:2'], hosts: null, nanny: true }));
  t.same(s.maps[0], { op: 'broadcast', address: undefined, worker: undefined, client: undefined, name: undefined, pickled: false });
  const scanner = new Frame0Scanner();
  const buf = Buffer.from(pack({ op: 'broadcast', msg: { op: 'run' }, workers: ['tls://a:1', 'tls://b:2'], hosts: null, nanny: true }));
  let got: Record<string, unknown> = {};
  scanner.scan(buf, 0, buf.length, { begin: () => null, nonMap: () => null, map: (m) => ((got = { workers: m.workers, hosts: m.hosts, nanny: m.nanny, innerOp: m.innerOp }), null) });
  t.same(got, { workers: ['tls://a:1', 'tls://b:2'], hosts: undefined, nanny: true, innerOp: 'run' });
  const odd = Buffer.from(pack({ op: 'broadcast', msg: 'run', workers: ['a', 3], hosts: 'h' }));
  scanner.scan(odd, 0, odd.length, { begin: () => null, nonMap: () => null, map: (m) => ((got = { workers: m.workers, hosts: m.hosts, nanny: m.nanny, innerOp: m.innerOp }), null) });
  t.same(got, { workers: null, hosts: null, nanny: false, innerOp: null }, 'wrong types are null, never coerced');
});
