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

function scan(bytes: Buffer | number[], scanner = new Frame0Scanner()): Seen {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const seen: Seen = { maps: [], nonMaps: [] };
  const r = scanner.scan(buf, 0, buf.length, {
    begin: (s) => ((seen.shape = s), null),
    map: (m: OpMap) => (seen.maps.push({ op: m.op, address: m.address, worker: m.worker, client: m.client, name: m.name, pickled: m.pickled }), null),
    nonMap: (_i, pickled) => (seen.nonMaps.push(pickled), null),
  });
  if (r instanceof GatewayError) seen.error = r.code;
  return seen;
}

const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)];

t.test('finds "op" wherever it sits in the map, as Dask workers put it last', async (t) => {
  const s = scan(pack({ key: 'x', nbytes: 3, op: 'task-finished' }));
  t.equal(s.shape, 'map');
  t.equal(s.maps[0]!.op, 'task-finished');
});

t.test('a repeated key keeps its last value, as a Python dict does', async (t) => {
  const s = scan([0x82, ...str('op'), ...str('identity'), ...str('op'), ...str('run_function')]);
  t.equal(s.maps[0]!.op, 'run_function');
});

t.test('a bin "op" key is not an op, because Python decodes it as bytes', async (t) => {
  const s = scan([0x81, 0xc4, 0x02, ...Buffer.from('op'), ...str('identity')]);
  t.equal(s.maps[0]!.op, undefined);
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

t.test('detects a __Pickled__ placeholder at any depth, and only as a str key', async (t) => {
  t.equal(scan(pack({ op: 'gather', a: [{ b: { __Pickled__: 1 } }] })).maps[0]!.pickled, true);
  t.equal(scan(pack({ op: 'gather', a: { __Serialized__: 1 } })).maps[0]!.pickled, false);
  t.equal(scan([0x82, ...str('op'), ...str('x'), ...str('k'), 0x81, 0xc4, 11, ...Buffer.from('__Pickled__'), 0x01]).maps[0]!.pickled, false, 'bin key');
  t.equal(scan(pack({ op: 'x', __Pickled__: 1 })).maps[0]!.pickled, true, 'top-level key');
});

t.test('a batch is an array of op-maps, each reported with its own pickled flag; other elements are reported as non-maps', async (t) => {
  const s = scan(pack([{ op: 'a' }, { op: 'b', x: { __Pickled__: 2 } }, 'OK', [{ __Pickled__: 1 }]]));
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
