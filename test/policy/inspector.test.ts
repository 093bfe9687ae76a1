import t from 'tap';
import { Writable } from 'node:stream';
import { ConnectionInspector, createInspectorFactory, type PolicySource } from '../../src/policy/inspector.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS, type PolicySettings } from '../../src/policy/rules.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import type { Denial } from '../../src/terminator/inspector.js';
import type { PeerRole } from '../../src/pki/identity.js';
import { unpack } from 'msgpackr';
import { collectOps, HANDSHAKE, message, msg, oneByteAtATime, recordedConnections, WIDE_LIMITS } from '../wire/wire-helpers.js';

interface Harness {
  insp: ConnectionInspector;
  metrics: ReturnType<typeof createMetrics>;
  audits: Record<string, unknown>[];
  /** Requests refused and answered (the connection went on). */
  refused: Denial[];
  setSettings(s: Partial<PolicySettings>): void;
}

/** The first objection: a refusal that closed (closed: true) or one that was answered (closed: false). */
type Outcome = (Denial & { closed: boolean }) | null;

function harness(role: PeerRole, opts: { settings?: Partial<PolicySettings>; remote?: string; sans?: string[]; name?: string } = {}): Harness {
  const audits: Record<string, unknown>[] = [];
  const log = createLogger({ stream: new Writable({ write: (c, _e, cb) => (audits.push(JSON.parse(String(c))), cb()) }) });
  const metrics = createMetrics({ defaultMetrics: false });
  let current = compilePolicy(DEFAULT_POLICY, { ...DEFAULT_SETTINGS, ...opts.settings }, 'test');
  const source: PolicySource = { current: () => current };
  const refused: Denial[] = [];
  const insp = new ConnectionInspector({ identity: { cluster: 'c1', role, name: opts.name ?? 'w1' }, serial: 'ab', remoteAddress: opts.remote ?? '127.0.0.1', sanHosts: opts.sans ?? [], connectionId: 'conn-1' }, source, { log, metrics, limits: WIDE_LIMITS, now: () => 1_700_000_000 }, { refused: (d) => refused.push(d) });
  return { insp, metrics, audits, refused, setSettings: (s) => (current = compilePolicy(DEFAULT_POLICY, { ...DEFAULT_SETTINGS, ...s }, 'test')) };
}

interface Fed {
  closed: Denial | null;
  up: Buffer;
  down: Buffer;
}

/** Feeds chunks from the peer; collects what goes up and what the gateway answers. */
function feed(h: Harness, chunks: Iterable<Buffer>): Fed {
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  for (const c of chunks) {
    const d = h.insp.fromPeer(c, up, down);
    if (d) return { closed: d, up: Buffer.concat(up), down: Buffer.concat(down) };
  }
  return { closed: null, up: Buffer.concat(up), down: Buffer.concat(down) };
}

function outcome(h: Harness, fed: Fed): Outcome {
  // A refusal is recorded when it happens; a close ends the feed: so a refusal, if any, came first.
  if (h.refused[0]) return { ...h.refused[0], closed: false };
  return fed.closed ? { ...fed.closed, closed: true } : null;
}

function run(h: Harness, ...messages: unknown[]): Outcome {
  return outcome(h, feed(h, messages.map((m) => (Buffer.isBuffer(m) ? m : msg(m)))));
}

/** One stream, in one chunk or the chunks given. */
function first(h: Harness, stream: Buffer | Iterable<Buffer>): Outcome {
  return outcome(h, feed(h, Buffer.isBuffer(stream) ? [stream] : stream));
}

/** Classifies a recorded connection by its first op after the handshake. */
function kind(stream: Buffer): string {
  const ops = collectOps([stream]).ops.map((o) => o.split(':')[1]);
  if (ops.includes('register-worker')) return 'worker-stream';
  if (ops.includes('register_nanny')) return 'nanny';
  if (ops.includes('heartbeat_worker')) return 'worker-pool';
  if (ops.includes('broadcast')) return 'client-pool';
  if (ops.includes('register-client')) return stream.includes(Buffer.from('Client-worker')) ? 'task-client' : 'client-stream';
  return 'other';
}

const conns = new Map(recordedConnections().map((c) => [kind(c.toScheduler), c.toScheduler]));

t.test('recorded real conversations pass the default policy for the role that sent them, in any chunking', async (t) => {
  for (const [k, role] of [['worker-stream', 'worker'], ['nanny', 'worker'], ['worker-pool', 'worker'], ['client-stream', 'client'], ['task-client', 'worker'], ['client-pool', 'admin']] as const) {
    const stream = conns.get(k);
    t.ok(stream, `fixture has a ${k} connection`);
    if (!stream) continue;
    const whole = feed(harness(role), [stream]);
    t.equal(whole.closed, null, `${k} as ${role}, one chunk`);
    t.same(whole.up, stream, `${k} as ${role}: forwarded byte for byte`);
    const bytewise = feed(harness(role), oneByteAtATime(stream));
    t.equal(bytewise.closed, null, `${k} as ${role}, one byte at a time`);
    t.same(bytewise.up, stream, `${k} as ${role}, one byte at a time: forwarded byte for byte`);
  }
});

t.test('a client certificate cannot register a worker', async (t) => {
  t.match(first(harness('client'), conns.get('worker-stream')!), { code: 'GW_POLICY_DENIED', reason: 'op-denied', op: 'register-worker', rule: 'default-deny' });
});

t.test('a client certificate calling run_on_scheduler is refused (the recorded pool connection passes Client.run, then stops at run_function)', async (t) => {
  t.match(first(harness('client'), conns.get('client-pool')!), { code: 'GW_POLICY_DENIED', op: 'run_function' });
  t.match(run(harness('client'), HANDSHAKE, { op: 'run_function', function: Buffer.from('x'), reply: true }), { op: 'run_function', rule: 'default-deny' });
  t.equal(run(harness('admin'), HANDSHAKE, { op: 'run_function', function: Buffer.from('x') }), null);
});

t.test('get_client() inside a task works by default and is refused when worker-client-ops is off', async (t) => {
  t.equal(first(harness('worker'), conns.get('task-client')!), null);
  t.match(first(harness('worker', { settings: { workerClientOps: false } }), conns.get('task-client')!), { op: 'register-client', code: 'GW_POLICY_DENIED' });
});

t.test('worker addresses are pinned to the source address or a certificate SAN', async (t) => {
  const reg = (address: unknown, extra: Record<string, unknown> = {}) => ({ op: 'register-worker', address, name: 'w1', reply: false, ...extra });
  t.equal(run(harness('worker'), HANDSHAKE, reg('tcp://127.0.0.1:40000')), null);
  t.match(run(harness('worker'), HANDSHAKE, reg('tcp://10.9.9.9:40000')), { code: 'GW_POLICY_PIN_ADDRESS', reason: 'pin-address', op: 'register-worker', detail: /10\.9\.9\.9/ });
  t.equal(run(harness('worker', { sans: ['10.9.9.9'] }), HANDSHAKE, reg('tls://10.9.9.9:40000')), null, 'an IP SAN');
  t.equal(run(harness('worker', { sans: ['w1.internal'] }), HANDSHAKE, reg('tls://W1.internal:40000')), null, 'a DNS SAN, case-insensitive');
  t.equal(run(harness('worker', { remote: '::ffff:127.0.0.1' }), HANDSHAKE, reg('tcp://127.0.0.1:1')), null, 'IPv4-mapped source');
  t.equal(run(harness('worker', { remote: '::1' }), HANDSHAKE, reg('tcp://[::1]:1')), null, 'IPv6');
  t.match(run(harness('worker'), HANDSHAKE, reg(5)), { code: 'GW_POLICY_PIN_ADDRESS' }, 'a non-string address');
  t.match(run(harness('worker'), HANDSHAKE, { op: 'heartbeat_worker', now: 1 }), { code: 'GW_POLICY_PIN_ADDRESS', detail: /declares no address/ });
  t.match(run(harness('worker'), HANDSHAKE, { op: 'unregister', address: 'tcp://10.0.0.7:1' }), { code: 'GW_POLICY_PIN_ADDRESS', op: 'unregister' });
  t.equal(run(harness('worker'), HANDSHAKE, { op: 'register_nanny', reply: true }), null, 'register_nanny carries no address in 2022.12');
  t.match(run(harness('worker'), HANDSHAKE, { op: 'register_nanny', address: 'tcp://10.0.0.7:1' }), { code: 'GW_POLICY_PIN_ADDRESS' });
  t.match(run(harness('admin'), HANDSHAKE, reg('tcp://10.9.9.9:1')), { code: 'GW_POLICY_PIN_ADDRESS' }, 'admins are pinned too');
});

t.test('with pin-worker-name, register-worker must carry the certificate name', async (t) => {
  const settings = { pinWorkerName: true };
  t.equal(run(harness('worker', { settings, name: 'w1' }), HANDSHAKE, { op: 'register-worker', address: 'tcp://127.0.0.1:1', name: 'w1' }), null);
  t.match(run(harness('worker', { settings, name: 'w1' }), HANDSHAKE, { op: 'register-worker', address: 'tcp://127.0.0.1:1', name: 'w2' }), { code: 'GW_POLICY_PIN_NAME', rule: 'pin-worker-name' });
  t.match(run(harness('worker', { settings, name: '0' }), HANDSHAKE, { op: 'register-worker', address: 'tcp://127.0.0.1:1' }), { code: 'GW_POLICY_PIN_NAME' }, 'absent name');
  t.equal(run(harness('worker', { settings, name: '7' }), HANDSHAKE, { op: 'register-worker', address: 'tcp://127.0.0.1:1', name: 7 }), null, 'integer names compare as decimal');
});

t.test('stream messages naming another client or worker are refused', async (t) => {
  t.equal(run(harness('client'), HANDSHAKE, { op: 'register-client', client: 'Client-a' }, [{ op: 'client-desires-keys', client: 'Client-a', keys: [] }]), null);
  t.match(run(harness('client'), HANDSHAKE, { op: 'register-client', client: 'Client-a' }, [{ op: 'heartbeat-client' }, { op: 'client-releases-keys', client: 'Client-b', keys: [] }]), { code: 'GW_POLICY_PIN_STREAM', op: 'client-releases-keys', detail: /Client-b/ });
  const w = { op: 'register-worker', address: 'tcp://127.0.0.1:5', name: 'w1' };
  t.equal(run(harness('worker'), HANDSHAKE, w, [{ op: 'task-finished', key: 'k', worker: 'tcp://127.0.0.1:5' }]), null);
  t.match(run(harness('worker'), HANDSHAKE, w, [{ op: 'task-finished', key: 'k', worker: 'tcp://127.0.0.1:6' }]), { code: 'GW_POLICY_PIN_STREAM' });
  t.match(run(harness('client'), HANDSHAKE, { op: 'register-client', client: 'a' }, [{ op: 'register-client', client: 'a' }]), { code: 'GW_POLICY_PIN_STREAM', detail: /already a stream/ });
  t.match(run(harness('client'), HANDSHAKE, { op: 'register-client' }), { code: 'GW_POLICY_PIN_STREAM', detail: /without a client id/ });
});

t.test('the handshake must come first, as a map without op or pickles', async (t) => {
  t.match(run(harness('admin'), { op: 'identity' }), { code: 'GW_WIRE_BAD_HANDSHAKE', reason: 'wire', rule: 'GW_WIRE_BAD_HANDSHAKE' });
  t.match(run(harness('admin'), [HANDSHAKE]), { code: 'GW_WIRE_BAD_HANDSHAKE' });
  t.match(run(harness('admin'), msg({ ...HANDSHAKE, x: { __Pickled__: 1 } }, [Buffer.alloc(8)])), { code: 'GW_WIRE_BAD_HANDSHAKE', detail: /placeholder/ });
});

t.test('request connections carry maps with a string op; streams may also carry batches and a bare "OK"', async (t) => {
  t.match(run(harness('admin'), HANDSHAKE, [{ op: 'identity' }]), { code: 'GW_WIRE_NOT_AN_OP' });
  t.match(run(harness('admin'), HANDSHAKE, { status: 'OK' }), { code: 'GW_WIRE_NOT_AN_OP', detail: /without "op"/ });
  t.match(run(harness('admin'), HANDSHAKE, { op: 3 }), { code: 'GW_WIRE_NOT_AN_OP' });
  t.equal(run(harness('client'), HANDSHAKE, { op: 'register-client', client: 'a' }, 'OK', [{ op: 'heartbeat-client' }, 'OK']), null);
  t.match(run(harness('client'), HANDSHAKE, { op: 'register-client', client: 'a' }, msg(['OK', [{ __Pickled__: 1 }]], [Buffer.alloc(8)])), { code: 'GW_POLICY_PICKLED', closed: true });
});

t.test('framing violations are counted in wire_errors_total and the denial is sticky', async (t) => {
  const h = harness('admin');
  const bad = Buffer.alloc(24);
  bad.writeBigUInt64LE(1n << 45n, 0);
  const d = h.insp.fromPeer(bad, [], []);
  t.match(d, { code: 'GW_WIRE_MESSAGE_TOO_LARGE', reason: 'wire' });
  t.equal(h.insp.fromPeer(msg(HANDSHAKE), [], []), d);
  const m = await h.metrics.wireErrorsTotal.get();
  t.same(m.values.map((v) => [v.labels.code, v.value]), [['GW_WIRE_MESSAGE_TOO_LARGE', 1]]);
});

t.test('unknown ops are labelled "(unknown)" so hostile names cannot grow metric labels; audit mode writes one line per op', async (t) => {
  t.match(run(harness('client'), HANDSHAKE, { op: 'x'.repeat(500) }), { op: '(unknown)', code: 'GW_POLICY_UNKNOWN_OP', detail: /^op "x{64}\.\.\."/ });
  const h = harness('client', { settings: { unknownOps: 'audit' } });
  t.equal(run(h, HANDSHAKE, { op: 'new-op' }, { op: 'new-op' }, { op: 'other-op' }), null);
  const lines = h.audits.filter((a) => a.event === 'policy_unknown_op_allowed');
  t.same(lines.map((l) => l.op), ['new-op', 'other-op']);
  t.match(lines[0], { level: 'audit', role: 'client', serial: 'ab', connection: 'conn-1' });
});

t.test('a policy reload applies to a live connection from its next message', async (t) => {
  const h = harness('worker');
  t.equal(run(h, HANDSHAKE, { op: 'identity' }, { op: 'gather', keys: [] }), null);
  h.setSettings({ workerClientOps: false });
  t.match(run(h, { op: 'gather', keys: [] }), { code: 'GW_POLICY_DENIED', op: 'gather' });
});

t.test('the scheduler direction is passed through unchanged', async (t) => {
  const down: Buffer[] = [];
  const chunk = Buffer.concat([msg(HANDSHAKE), msg({ status: 'OK' })]);
  t.equal(harness('client').insp.fromScheduler(chunk, down), null);
  t.same(down, [chunk], 'the very chunk');
});

t.test('the broadcast guard lets non-admins run Client.run on registered workers only', async (t) => {
  const log = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const policy = { current: () => compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, 'test') };
  const factory = createInspectorFactory(policy, { log, metrics: createMetrics({ defaultMetrics: false }), limits: WIDE_LIMITS });
  const peer = (role: PeerRole, remote = '127.0.0.1') => ({ identity: { cluster: 'c1', role, name: 'x' }, serial: '01', remoteAddress: remote, sanHosts: [], connectionId: 'c' });
  const send = (role: PeerRole, ...messages: unknown[]) => {
    const refused: Denial[] = [];
    const insp = factory(peer(role), { refused: (d) => refused.push(d) });
    for (const m of [HANDSHAKE, ...messages]) {
      const d = insp.fromPeer(msg(m), [], []);
      if (d) return d;
      if (refused[0]) return refused[0];
    }
    return null;
  };
  t.equal(send('worker', { op: 'register-worker', address: 'tls://127.0.0.1:4001', name: 'w1' }), null, 'a worker registers');
  const run = { op: 'run', function: Buffer.from('f'), args: Buffer.from('a') };
  t.equal(send('client', { op: 'broadcast', msg: run, workers: null, nanny: false }), null, 'Client.run() on all workers');
  t.equal(send('client', { op: 'broadcast', msg: run, workers: ['tls://127.0.0.1:4001'] }), null, 'Client.run(workers=[registered])');
  t.equal(send('client', { op: 'broadcast', msg: run, hosts: ['127.0.0.1'] }), null, 'by host');
  t.equal(send('worker', { op: 'broadcast', msg: { ...run, op: 'run_coroutine' } }), null, 'a task client on a worker');
  const guard = { code: 'GW_POLICY_FORWARD', reason: 'forward-guard', rule: 'forward-guard', op: 'broadcast' };
  t.match(send('client', { op: 'broadcast', msg: run, workers: ['tcp://10.0.0.9:22'] }), { ...guard, detail: /10\.0\.0\.9:22", which is not a worker registered/ }, 'an arbitrary address (the scheduler would dial it)');
  t.match(send('client', { op: 'broadcast', msg: run, hosts: ['10.0.0.9'] }), guard, 'an unknown host');
  t.match(send('client', { op: 'broadcast', msg: run, workers: 'tls://127.0.0.1:4001' }), guard, 'workers not a list');
  t.equal(send('client', { op: 'broadcast', msg: run, nanny: true }), null, 'Client.run(nanny=True): the nannies of registered workers');
  t.equal(send('client', { op: 'broadcast', msg: { op: 'versions', packages: [] } }), null, 'Client.get_versions()');
  t.match(send('client', { op: 'broadcast', msg: { op: 'terminate' } }), { ...guard, detail: /forwards op "terminate"/ }, 'another worker op');
  t.match(send('client', { op: 'broadcast', msg: { op: 'terminate' }, nanny: 1 }), { ...guard, detail: /forwards op "terminate"/ }, 'to nannies too');
  t.match(send('client', { op: 'broadcast', msg: Buffer.from('x') }), guard, 'msg not a map');
  t.match(send('client', { op: 'broadcast', msg: { op: 'run', x: 1, op2: 2 }, workers: ['tls://127.0.0.1:4001', 'tls://127.0.0.1:4002'] }), guard, 'one unknown target among known ones');
  t.equal(send('admin', { op: 'broadcast', msg: { op: 'terminate' }, workers: ['tcp://10.0.0.9:22'], nanny: true }), null, 'admins are not guarded');
});

t.test('stream ops are valid only on their own kind of stream, so no one can speak for another worker or client', async (t) => {
  const w = { op: 'register-worker', address: 'tcp://127.0.0.1:5', name: 'w1' };
  const c = { op: 'register-client', client: 'Client-task' };
  // A worker certificate's task client (worker-client-ops) claiming another worker's task result.
  t.match(run(harness('worker'), HANDSHAKE, c, [{ op: 'task-finished', key: 'k', worker: 'tcp://10.0.0.2:1' }]), { code: 'GW_POLICY_PIN_STREAM', detail: /worker stream op, sent on a client stream/ });
  // A worker stream releasing some client's keys.
  t.match(run(harness('worker'), HANDSHAKE, w, [{ op: 'client-releases-keys', client: 'Client-victim', keys: [] }]), { code: 'GW_POLICY_PIN_STREAM', detail: /client stream op, sent on a worker stream/ });
  t.match(run(harness('worker'), HANDSHAKE, w, [{ op: 'pubsub-msg', name: 't', msg: 1, client: 'Client-x' }]), { code: 'GW_POLICY_PIN_STREAM', detail: /names client/ });
  t.match(run(harness('client'), HANDSHAKE, c, [{ op: 'pubsub-msg', name: 't', msg: 1, worker: 'tcp://127.0.0.1:5' }]), { code: 'GW_POLICY_PIN_STREAM', detail: /names worker/ });
  t.match(run(harness('worker'), HANDSHAKE, { op: 'task-finished', key: 'k' }), { code: 'GW_POLICY_PIN_STREAM', detail: /before register/ });
  t.match(run(harness('admin'), HANDSHAKE, { op: 'update-graph-hlg' }), { code: 'GW_POLICY_PIN_STREAM' }, 'admins too');
  t.equal(run(harness('admin'), HANDSHAKE, { op: 'connection_stream' }, [{ op: 'task-finished', worker: 'tcp://x:1' }, { op: 'heartbeat-client', client: 'c' }]), null, 'an admin connection_stream is unbound');
  t.equal(run(harness('worker'), HANDSHAKE, w, [{ op: 'pubsub-msg', name: 't', msg: 1 }, { op: 'keep-alive' }]), null);
});

t.test('worker rpc ops that speak for a worker are pinned like addresses', async (t) => {
  t.equal(run(harness('worker'), HANDSHAKE, { op: 'add_keys', worker: 'tcp://127.0.0.1:7', keys: ['k'] }), null);
  t.match(run(harness('worker'), HANDSHAKE, { op: 'add_keys', worker: 'tcp://10.0.0.3:7', keys: ['k'] }), { code: 'GW_POLICY_PIN_ADDRESS', op: 'add_keys' });
  t.match(run(harness('worker'), HANDSHAKE, { op: 'set_resources', worker: 'tcp://10.0.0.3:7', resources: {} }), { code: 'GW_POLICY_PIN_ADDRESS' });
  t.match(run(harness('worker'), HANDSHAKE, { op: 'shuffle_register_complete', id: 's', worker: 5 }), { code: 'GW_POLICY_PIN_ADDRESS' });
});

t.test('a registered worker address belongs to the certificate that registered it: a neighbour on the same host cannot heartbeat or unregister it', async (t) => {
  const log = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const policy = { current: () => compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, 'test') };
  const factory = createInspectorFactory(policy, { log, metrics: createMetrics({ defaultMetrics: false }), limits: WIDE_LIMITS });
  const send = (name: string, ...messages: unknown[]) => {
    const insp = factory({ identity: { cluster: 'c1', role: 'worker', name }, serial: name, remoteAddress: '127.0.0.1', sanHosts: [], connectionId: name }, { refused: () => {} });
    for (const m of [HANDSHAKE, ...messages]) {
      const d = insp.fromPeer(msg(m), [], []);
      if (d) return d;
    }
    return null;
  };
  t.equal(send('w1', { op: 'register-worker', address: 'tcp://127.0.0.1:4001', name: 'w1' }), null);
  t.equal(send('w1', { op: 'heartbeat_worker', address: 'tcp://127.0.0.1:4001' }), null, 'the owner heartbeats');
  t.match(send('w2', { op: 'heartbeat_worker', address: 'tcp://127.0.0.1:4001' }), { code: 'GW_POLICY_PIN_ADDRESS', detail: /worker\/w1 registered/ });
  t.match(send('w2', { op: 'unregister', address: 'tcp://127.0.0.1:4001' }), { code: 'GW_POLICY_PIN_ADDRESS' });
  t.equal(send('w2', { op: 'heartbeat_worker', address: 'tcp://127.0.0.1:4002' }), null, 'an address nobody registered is only host-pinned');
  t.equal(send('w2', { op: 'register-worker', address: 'tcp://127.0.0.1:4001', name: 'w2' }), null, 'a new registration takes the address over (the scheduler refuses duplicates itself)');
  t.equal(send('w2', { op: 'unregister', address: 'tcp://127.0.0.1:4001' }), null);
});

/** Decodes the framed messages of a byte stream (frame 0 of each). */
function decodeAll(stream: Buffer): unknown[] {
  const out: unknown[] = [];
  let pos = 0;
  while (pos < stream.length) {
    const n = Number(stream.readBigUInt64LE(pos + 8));
    const lens = Array.from({ length: n }, (_, i) => Number(stream.readBigUInt64LE(pos + 16 + 8 * i)));
    const start = pos + 16 + 8 * n;
    out.push(unpack(stream.subarray(start, start + lens[0]!)));
    pos = start + lens.reduce((a, b) => a + b, 0);
  }
  return out;
}

/** The scheduler's handshake, which any answer of the gateway's must follow. */
function greet(h: Harness): Harness {
  h.insp.fromScheduler(msg(HANDSHAKE), []);
  return h;
}

t.test('a refused request is dropped whole and answered with an error naming the gateway, the op and the rule; the connection goes on', async (t) => {
  const h = greet(harness('client', { name: 'bob' }));
  const fed = feed(h, [msg(HANDSHAKE), msg({ op: 'run_function', function: Buffer.from('evil'), reply: true }), msg({ op: 'identity', reply: true })]);
  t.equal(fed.closed, null, 'not closed');
  t.same(fed.up, Buffer.concat([msg(HANDSHAKE), msg({ op: 'identity', reply: true })]), 'the scheduler never saw run_function');
  const [answer] = decodeAll(fed.down) as Record<string, unknown>[];
  t.match(answer, { status: 'uncaught-error', traceback: null, traceback_text: '' });
  t.match(answer!.exception, /^scheduler-gateway refused "run_function" for client bob: .*\(GW_POLICY_DENIED, rule default-deny\)$/);
  t.equal(answer!.exception_text, answer!.exception);
  t.match(h.refused, [{ code: 'GW_POLICY_DENIED', op: 'run_function', rule: 'default-deny' }], 'reported once to the terminator (audit + metric)');
});

t.test('the answer to a pipelined refused request waits for the replies to the requests forwarded before it', async (t) => {
  const h = harness('client');
  const fed = feed(h, [Buffer.concat([msg(HANDSHAKE), msg({ op: 'identity', reply: true }), msg({ op: 'terminate', reply: true })])]);
  t.equal(fed.down.length, 0, 'nothing answered while identity is unanswered');
  const down: Buffer[] = [];
  const identityReply = msg({ type: 'Scheduler', id: 'x' });
  t.equal(h.insp.fromScheduler(msg(HANDSHAKE), down), null);
  t.same(Buffer.concat(down), msg(HANDSHAKE), 'the scheduler handshake is not a reply');
  down.length = 0;
  h.insp.fromScheduler(identityReply.subarray(0, 10), down);
  t.same(Buffer.concat(down), identityReply.subarray(0, 10), 'half a reply: still waiting');
  down.length = 0;
  h.insp.fromScheduler(identityReply.subarray(10), down);
  const after = Buffer.concat(down);
  t.same(after.subarray(0, identityReply.length - 10), identityReply.subarray(10), 'the rest of the reply first');
  t.match(decodeAll(after.subarray(identityReply.length - 10)), [{ status: 'uncaught-error', exception: /"terminate"/ }], 'then the answer');
});

t.test('refused registrations get the answer their caller reads; reply: false gets none', async (t) => {
  const c = greet(harness('worker', { settings: { workerClientOps: false } }));
  const [ss] = decodeAll(feed(c, [msg(HANDSHAKE), msg({ op: 'register-client', client: 'Client-1', reply: false })]).down) as unknown[][];
  t.match(ss, [{ op: 'stream-start', error: /refused "register-client"/ }], 'register-client: stream-start with error (the Client raises ImportError)');
  const w = greet(harness('client'));
  const [reg] = decodeAll(feed(w, [msg(HANDSHAKE), msg({ op: 'register-worker', address: 'tls://127.0.0.1:1', reply: false })]).down) as Record<string, unknown>[];
  t.match(reg, { status: 'error', message: /refused "register-worker"/, time: 1_700_000_000 }, 'register-worker: a registration error with time');
  const q = greet(harness('client'));
  const fed = feed(q, [msg(HANDSHAKE), msg({ op: 'terminate', reply: false })]);
  t.equal(fed.down.length, 0, 'no answer to a request that expects none');
  t.equal(q.refused.length, 1, 'but it is still reported');
});

t.test('a refusal on a stream closes it: a stream has no replies', async (t) => {
  const h = harness('client', { settings: {} });
  h.setSettings({});
  t.match(run(h, HANDSHAKE, { op: 'register-client', client: 'Client-a' }, [{ op: 'heartbeat-client' }, { op: 'terminate' }]), { op: 'terminate', closed: true });
});

t.test("a nanny's {status} answer after register_nanny passes (Dask 2023.9+); a map without op elsewhere does not", async (t) => {
  t.equal(run(harness('worker'), HANDSHAKE, { op: 'register_nanny', address: 'tls://127.0.0.1:5' }, { status: 'ok' }), null);
  t.equal(run(harness('worker'), HANDSHAKE, { op: 'register_nanny' }, { op: 'heartbeat_worker', address: 'tls://127.0.0.1:5' }), null, '2022.12 sends no status: the next request is ordinary');
  t.match(run(harness('worker'), HANDSHAKE, { status: 'ok' }), { code: 'GW_WIRE_NOT_AN_OP', closed: true }, 'not after register_nanny');
  t.match(run(harness('worker'), HANDSHAKE, { op: 'register_nanny' }, { status: 'ok' }, { status: 'ok' }), { code: 'GW_WIRE_NOT_AN_OP' }, 'only once');
  t.match(run(harness('worker'), HANDSHAKE, { op: 'register_nanny' }, { status: 'ok', extra: 1 }), { code: 'GW_WIRE_NOT_AN_OP' }, 'only {status}');
});

t.test('fire_and_forget may name the "fire-and-forget" pseudo-client in client-desires-keys, and nowhere else', async (t) => {
  const reg = { op: 'register-client', client: 'Client-a' };
  t.equal(run(harness('client'), HANDSHAKE, reg, [{ op: 'client-desires-keys', keys: ['k'], client: 'fire-and-forget' }]), null);
  t.match(run(harness('client'), HANDSHAKE, reg, [{ op: 'client-releases-keys', keys: ['k'], client: 'fire-and-forget' }]), { code: 'GW_POLICY_PIN_STREAM', closed: true });
});

t.test('retire_workers and workers_to_close with a key the scheduler would unpickle are refused for all but admins', async (t) => {
  t.match(run(harness('client'), HANDSHAKE, { op: 'retire_workers', key: Buffer.from('pickle'), reply: true }), { code: 'GW_POLICY_UNPICKLED_ARGUMENT', closed: false });
  t.match(run(harness('worker'), HANDSHAKE, { op: 'workers_to_close', key: Buffer.from('pickle') }), { code: 'GW_POLICY_UNPICKLED_ARGUMENT' });
  t.equal(run(harness('client'), HANDSHAKE, { op: 'retire_workers', workers: ['tls://127.0.0.1:1'], key: null }), null, 'key: None is what Client sends');
  t.equal(run(harness('admin'), HANDSHAKE, { op: 'retire_workers', key: Buffer.from('pickle') }), null);
});

t.test('forwards a canonical prelude: a short L (2023.11+ writers) is rewritten so every reader splits it alike', async (t) => {
  const f0 = Buffer.from(msg({ op: 'scatter', data: { x: { __Serialized__: 1 } }, reply: true }).subarray(24));
  const short = message([f0, Buffer.alloc(50, 1), Buffer.alloc(9000, 2)], 1);
  const fed = feed(harness('client'), [msg(HANDSHAKE), short]);
  t.equal(fed.closed, null);
  const forwarded = fed.up.subarray(msg(HANDSHAKE).length);
  t.equal(forwarded.length, short.length, 'same size');
  t.equal(Number(forwarded.readBigUInt64LE(0)), forwarded.length - 8, 'L = everything after it');
  t.same(forwarded.subarray(8), short.subarray(8), 'the rest unchanged');
});

t.test("an answer never overtakes the scheduler's handshake", async (t) => {
  const h = harness('client');
  const fed = feed(h, [Buffer.concat([msg(HANDSHAKE), msg({ op: 'terminate', reply: true })])]);
  t.equal(fed.down.length, 0, 'held while the scheduler has said nothing');
  const down: Buffer[] = [];
  h.insp.fromScheduler(msg({ compression: null, python: [3, 11, 2], 'pickle-protocol': 5 }), down);
  t.match(decodeAll(Buffer.concat(down)), [{ 'pickle-protocol': 5 }, { status: 'uncaught-error' }], 'handshake first, then the answer');
});
