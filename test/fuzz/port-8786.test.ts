/**
 * Port 8786 over loopback, at volume, against an in-process gateway whose log
 * is counted rather than kept:
 *   1. pre-TLS: random bytes, mutated and truncated real ClientHellos, one
 *      case per TCP connection (the first bytes decide the connection), from
 *      many 127.0.0.x source addresses so ephemeral ports never run out;
 *   2. post-TLS: valid mutual-TLS sessions (admin, client and worker
 *      certificates) carrying a Dask handshake and then mutated Dask
 *      messages, many cases per connection, to a loopback echo "scheduler"
 *      with wire inspection on (the default).
 * Zero crashes (the gateway's process survives and keeps serving), zero
 * hangs (every connection closes within a deadline after the peer's FIN),
 * memory and file descriptors back to their baseline, a good peer served.
 */
import t from 'tap';
import { connect as netConnect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { pack } from 'msgpackr';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { bytes, casesFromEnv, mutate, openFds, prng, seedFromEnv, startEcho, startVolumeGateway, type VolumeGateway } from '../hardening/harness.js';
import { message, HANDSHAKE } from '../wire/wire-helpers.js';
import { heapAfterGc, opMap, pick, value } from './fuzz-kit.js';

// Scales with FUZZ_CASES (scripts/fuzz-long.sh); never below 10 minutes.
t.setTimeout(Math.max(600_000, casesFromEnv() * 5));

const HANG_MS = 15_000;
const CONCURRENCY = 48;
let cluster: TestCluster;
let gw: VolumeGateway;

t.before(async () => {
  cluster = await makeTestCluster();
  const echo = await startEcho(t);
  gw = await startVolumeGateway({ t, cluster, scheduler: `127.0.0.1:${echo.port}`, flags: { 'handshake-timeout-ms': '5000', 'max-connections': '100000' } });
});
t.teardown(() => cluster?.cleanup());

/** Real ClientHellos as seeds: what OpenSSL sends for TLS 1.3, TLS 1.2-only, and with SNI + ALPN. */
async function clientHellos(): Promise<Buffer[]> {
  const seeds: Buffer[] = [];
  const server = createServer((s) => s.once('data', (d: Buffer) => { seeds.push(d); s.destroy(); }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  for (const o of [{}, { maxVersion: 'TLSv1.2' as const }, { servername: 'scheduler.example', ALPNProtocols: ['h2', 'http/1.1'] }]) {
    await new Promise<void>((r) => {
      const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...o });
      c.on('error', () => r());
      c.on('close', () => r());
    });
  }
  server.close();
  return seeds;
}

async function pool(total: number, concurrency: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await one(next++);
  }));
}

/** Writes the bytes, half-closes, and waits for the gateway to close: 'hang' if it never does. */
function oneShot(port: number, localAddress: string, data: Buffer): Promise<'closed' | 'hang'> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress });
    const timer = setTimeout(() => { s.destroy(); resolve('hang'); }, HANG_MS);
    s.on('connect', () => s.end(data));
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve('closed'); });
  });
}

async function settledFds(baseline: number): Promise<number> {
  return waitFor(() => (openFds() <= baseline + 8 ? openFds() : undefined), { timeoutMs: 30_000, what: 'file descriptors back to baseline' }).catch(() => openFds());
}

t.test('random bytes and mutated ClientHellos: every connection refused and closed, nothing crashes or leaks', async (t) => {
  const seed = seedFromEnv();
  const cases = casesFromEnv();
  const rand = prng(seed);
  t.comment(`fuzz 8786 pre-TLS: seed ${seed} (replay with FUZZ_SEED=${seed}), ${cases} connections`);
  const hellos = await clientHellos();
  t.equal(hellos.length, 3, 'captured three real ClientHellos as seeds');
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  // Audited: written in full, or counted in a coalesced summary (one source repeating a reason).
  const audited = () => gw.log.count('connection_refused') + gw.log.count('refusals_coalesced:count');
  const refusedBefore = audited();
  let hangs = 0;
  const started = Date.now();
  const inputs = (i: number): Buffer => {
    const r = rand();
    if (r < 0.3) return bytes(rand, 600);
    if (r < 0.4) return Buffer.concat([Buffer.from([0x16, 0x03, Math.floor(rand() * 5)]), bytes(rand, 300)]); // looks like a TLS record
    if (r < 0.5) return pick(rand, hellos).subarray(0, Math.floor(rand() * 300)); // truncated
    return mutate(rand, pick(rand, hellos), 1 + (i % 6));
  };
  await pool(cases, CONCURRENCY, async (i) => {
    if ((await oneShot(gw.port, `127.0.0.${2 + (i % 60)}`, inputs(i))) === 'hang') hangs++;
  });
  const ms = Date.now() - started;
  await waitFor(() => gw.gw.context.sessions && (audited() - refusedBefore >= cases * 0.99), { timeoutMs: 30_000, what: 'refusals audited' }).catch(() => undefined);
  const refused = audited() - refusedBefore;
  const fdsAfter = await settledFds(fdsBefore);
  const heapGrowth = heapAfterGc() - heapBefore;
  const reasons = Object.fromEntries([...gw.log.counts].filter(([k]) => k.startsWith('connection_refused:')).map(([k, v]) => [k.slice(19), v]));
  t.comment(`fuzz 8786 pre-TLS: ${JSON.stringify({ seed, cases, ms, hangs, refused, reasons, fdsBefore, fdsAfter, heapGrowthMiB: +(heapGrowth / 1048576).toFixed(1) })}`);
  t.equal(hangs, 0, `zero hangs: every connection closed within ${HANG_MS} ms of the peer's FIN`);
  t.ok(refused >= cases * 0.99, `every case refused and audited (${refused} of ${cases})`);
  t.equal(gw.log.count('connection_accepted'), 0, 'nothing was accepted');
  t.ok(fdsAfter <= fdsBefore + 8, `file descriptors back to baseline (${fdsBefore} -> ${fdsAfter})`);
  t.ok(heapGrowth < 32 * 1048576, `heap after GC grew ${(heapGrowth / 1048576).toFixed(1)} MiB (< 32)`);
  t.same(gw.log.problems.filter((l) => l.level === 'error'), [], 'no error lines in the gateway log');
});

interface SessionResult { cases: number; cut: boolean; hang: boolean }
type Role = 'admin' | 'client' | 'worker';

/** The prelude a real peer sends: the Dask handshake, then the stream opener of its kind. */
function prelude(role: Role): Buffer {
  const opener = role === 'worker'
    ? { op: 'register-worker', address: 'tls://127.0.0.1:40000', name: 'fuzz-worker', nthreads: 1, reply: false }
    : { op: 'register-client', client: `Client-fuzz-${role}`, reply: false };
  return Buffer.concat([message([Buffer.from(pack(HANDSHAKE))]), message([Buffer.from(pack(opener))])]);
}

/** One mTLS session: the prelude, then `msgs`; counts how many were forwarded (echoed) before any cut. */
function session(port: number, role: Role, creds: { certPem: string; keyPem: string }, msgs: Buffer[]): Promise<SessionResult> {
  return new Promise((resolve) => {
    const head = prelude(role);
    const ends: number[] = [];
    let total = head.length;
    for (const m of msgs) ends.push((total += m.length));
    let echoed = 0;
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' }, () => {
      s.write(head);
      for (const m of msgs) s.write(m);
      s.end();
    });
    const timer = setTimeout(() => { s.destroy(); done(true); }, HANG_MS);
    const done = (hang: boolean) => {
      clearTimeout(timer);
      const forwarded = ends.filter((e) => e <= echoed).length;
      const cut = echoed < total;
      resolve({ cases: forwarded + (cut ? 1 : 0), cut, hang });
    };
    s.on('data', (d: Buffer) => { echoed += d.length; });
    s.on('error', () => {});
    s.on('close', () => done(false));
  });
}

const STREAM_OPS: Record<Role, readonly string[]> = {
  admin: ['client-desires-keys', 'client-releases-keys', 'heartbeat-client', 'update-graph', 'cancel-keys', 'subscribe-topic', 'pubsub-msg'],
  client: ['client-desires-keys', 'client-releases-keys', 'heartbeat-client', 'update-graph', 'cancel-keys', 'subscribe-topic', 'pubsub-msg'],
  worker: ['task-finished', 'task-erred', 'release-worker-data', 'add-keys', 'long-running', 'keep-alive', 'log-event', 'reschedule'],
};
const FIELDS = ['keys', 'stimulus_id', 'tasks', 'msg', 'nbytes', 'status', 'topic', 'key', 'priority', 'duration', 'who_has', 'metadata'];

t.test('valid mutual TLS, then mutated Dask messages: refused or forwarded, never a crash, a hang or a leak', async (t) => {
  const seed = seedFromEnv() + 1;
  const target = casesFromEnv();
  const rand = prng(seed);
  t.comment(`fuzz 8786 post-TLS: seed ${seed} (replay with FUZZ_SEED=${seed - 1}), ${target} messages`);
  const creds = { admin: await cluster.issue('admin', 'fuzz-admin'), client: await cluster.issue('client', 'fuzz-client'), worker: await cluster.issue('worker', 'fuzz-worker') };
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  const denialsBefore = gw.log.count('connection_closed:policy_denied');
  let cases = 0;
  let sessions = 0;
  let cuts = 0;
  let hangs = 0;
  const started = Date.now();
  /** A stream message of the right kind with hostile values: the policy forwards it, the parser must still cope. */
  const benign = (role: Role): Buffer => {
    const one = () => {
      const m: Record<string, unknown> = { op: pick(rand, STREAM_OPS[role]) };
      for (let k = Math.floor(rand() * 4); k > 0; k--) m[pick(rand, FIELDS)] = value(rand);
      return m;
    };
    const frame0 = Buffer.from(pack(rand() < 0.3 ? [one(), one()] : one()));
    return message([frame0, ...(rand() < 0.3 ? [bytes(rand, 512)] : [])]);
  };
  /** Anything: random op maps, mutated msgpack, broken framing. */
  const hostile = (): Buffer => {
    let frame0: Buffer;
    try { frame0 = Buffer.from(pack(opMap(rand))); } catch { frame0 = bytes(rand, 32); }
    if (rand() < 0.5) frame0 = mutate(rand, frame0, 2);
    const m = message([frame0, ...(rand() < 0.3 ? [bytes(rand, 256)] : [])]);
    return rand() < 0.3 ? mutate(rand, m, 2) : m;
  };
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (cases < target) {
      const role = pick(rand, ['admin', 'client', 'worker'] as const);
      const msgs = Array.from({ length: 20 + Math.floor(rand() * 100) }, () => benign(role));
      if (rand() < 0.7) msgs.push(hostile()); // most sessions end on one hostile message
      const r = await session(gw.port, role, creds[role], msgs);
      sessions++;
      cases += r.cases;
      if (r.cut) cuts++;
      if (r.hang) hangs++;
    }
  }));
  const ms = Date.now() - started;
  const fdsAfter = await settledFds(fdsBefore);
  const heapGrowth = heapAfterGc() - heapBefore;
  const denials = gw.log.count('connection_closed:policy_denied') - denialsBefore;
  const reasons = Object.fromEntries([...gw.log.counts].filter(([k]) => k.startsWith('connection_closed:')).map(([k, v]) => [k.slice(18), v]));
  t.comment(`fuzz 8786 post-TLS: ${JSON.stringify({ seed, cases, sessions, cuts, denials, closeReasons: reasons, ms, hangs, fdsBefore, fdsAfter, heapGrowthMiB: +(heapGrowth / 1048576).toFixed(1) })}`);
  t.ok(cases >= target, `${cases} Dask messages judged over ${sessions} sessions`);
  t.equal(hangs, 0, 'zero hangs');
  t.ok(cuts > 0 && denials > 0, `hostile messages were refused and audited (${cuts} sessions cut, ${denials} denials logged)`);
  t.ok(cuts < sessions, 'well-formed sessions ran to their end');
  t.ok(fdsAfter <= fdsBefore + 8, `file descriptors back to baseline (${fdsBefore} -> ${fdsAfter})`);
  t.ok(heapGrowth < 32 * 1048576, `heap after GC grew ${(heapGrowth / 1048576).toFixed(1)} MiB (< 32)`);
  t.same(gw.log.problems.filter((l) => l.level === 'error'), [], 'no error lines in the gateway log');
});

t.test('after both runs a valid peer is served', async (t) => {
  const alice = await cluster.issue('client', 'alice');
  const echoed = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, servername: 'localhost' }, () => s.write(message([Buffer.from(pack(HANDSHAKE))])));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no echo')); }, 15_000);
    s.on('data', (d: Buffer) => { clearTimeout(timer); s.end(); resolve(d.toString('hex')); });
    s.on('error', reject);
  });
  t.equal(echoed, message([Buffer.from(pack(HANDSHAKE))]).toString('hex'), 'the Dask handshake went through and back');
});
