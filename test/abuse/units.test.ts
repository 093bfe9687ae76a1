/**
 * The pure parts of abuse resistance: fair shares of the 8786 slots, the
 * memory budget, log coalescing, per-source keys, the first-op classifier,
 * the pipe's budget brake.
 */
import t from 'tap';
import { FairShares, chooseVictim, isRefusal, shareCaps, type ShareLimits, type Slot } from '../../src/terminator/fair-shares.js';
import { MemoryBudget, type BudgetHolder } from '../../src/limits/memory-budget.js';
import { RefusalCoalescer } from '../../src/log/coalesce.js';
import { createLogger } from '../../src/log/logger.js';
import { sourceOf } from '../../src/limits/source-counts.js';
import { FirstOp } from '../../src/terminator/first-op.js';
import { LISTENER_HANDSHAKE } from '../../src/wire/reply.js';
import { msg } from '../wire/wire-helpers.js';
import { jsonLineSink } from '../helpers/json-lines.js';
import { waitFor } from '../helpers/wait.js';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { pipeBoth } from '../../src/terminator/pipe.js';
import { ConnectionAudit } from '../../src/terminator/audit.js';
import { createMetrics } from '../../src/runtime/metrics.js';

const LIMITS: ShareLimits = { maxConnections: 100, maxHandshakes: 20, maxHandshakesPerAddress: 5, maxPerAddress: 30, maxPerIdentity: 10, reserveWorkersPercent: 25, reserveClientsPercent: 10 };

function slot(s: FairShares, address: string): Slot {
  const r = s.admit(address);
  if (isRefusal(r)) throw new Error(`refused: ${r.reason}`);
  return r;
}

t.test('caps: a quarter of the slots at most for handshakes, the role reserves taken from the rest', async (t) => {
  t.same(shareCaps(LIMITS), { handshakes: 20, client: 100 - 20 - 25, cluster: 100 - 20 - 10 });
  t.same(shareCaps({ ...LIMITS, maxConnections: 8, maxHandshakes: 256 }), { handshakes: 2, client: 4, cluster: 6 });
  t.same(shareCaps({ ...LIMITS, maxConnections: 1 }), { handshakes: 1, client: 1, cluster: 1 }, 'never below one');
});

t.test('handshakes in flight: per address, then overall; a live session frees its handshake slot', async (t) => {
  const s = new FairShares(LIMITS);
  const a = Array.from({ length: 5 }, () => slot(s, '10.0.0.1'));
  t.match(s.admit('10.0.0.1'), { reason: 'too_many_handshakes_from_address', detail: /--max-handshakes-per-address/ });
  t.equal(s.promote(a[0]!, 'spiffe://c/client/a', 'client'), null);
  t.notOk(isRefusal(s.admit('10.0.0.1')), 'a slot freed by the promotion is usable again');
  for (let i = 0; i < 15; i++) slot(s, `10.0.1.${i}`);
  t.equal(s.handshakes, 20);
  t.match(s.admit('10.0.9.9'), { reason: 'too_many_handshakes' });
});

t.test('per identity and per address, on live sessions', async (t) => {
  const s = new FairShares({ ...LIMITS, maxHandshakesPerAddress: 100, maxHandshakes: 25 });
  for (let i = 0; i < 10; i++) t.equal(s.promote(slot(s, '10.0.0.1'), 'spiffe://c/client/alice', 'client'), null);
  const eleventh = slot(s, '10.0.0.1');
  t.match(s.promote(eleventh, 'spiffe://c/client/alice', 'client'), { reason: 'too_many_connections_for_identity', detail: /spiffe:\/\/c\/client\/alice already holds 10/ });
  t.equal(s.promote(eleventh, 'spiffe://c/client/bob', 'client'), null, 'another certificate from the same address may');
  for (let i = 0; i < 19; i++) slot(s, '10.0.0.1');
  t.match(s.admit('10.0.0.1'), { reason: 'too_many_connections_from_address' }, '30 from one address');
});

t.test('the reserves: clients never take the workers\' share, and the reverse', async (t) => {
  const limits = { ...LIMITS, maxPerIdentity: 1000, maxPerAddress: 1000, maxHandshakesPerAddress: 1000 };
  const s = new FairShares(limits);
  let clients = 0;
  for (let i = 0; i < 100; i++) {
    const x = slot(s, `10.1.0.${i}`);
    if (s.promote(x, `spiffe://c/client/c${i}`, 'client')) { s.release(x); break; }
    clients++;
  }
  t.equal(clients, 55, 'clients stop at 100 - 20 handshakes - 25 reserved');
  let workers = 0;
  for (let i = 0; i < 100; i++) {
    const x = s.admit(`10.2.0.${i}`);
    if (isRefusal(x)) break;
    if (s.promote(x, `spiffe://c/worker/w${i}`, 'worker')) { s.release(x); break; }
    workers++;
  }
  t.equal(workers, 25, 'every reserved worker slot is still there (and no more: the handshake quarter stays free)');
  const w2 = new FairShares(limits);
  let ws = 0;
  for (let i = 0; i < 100; i++) {
    const x = slot(w2, `10.3.0.${i}`);
    if (w2.promote(x, `spiffe://c/worker/w${i}`, i % 2 ? 'admin' : 'worker')) { w2.release(x); break; }
    ws++;
  }
  t.equal(ws, 70, 'workers and admins together stop at 100 - 20 - 10');
  t.equal(w2.promote(slot(w2, '10.4.0.1'), 'spiffe://c/client/late', 'client'), null, 'and a client still gets in');
  t.match(w2.promote(slot(w2, '10.4.0.2'), 'spiffe://c/worker/late', 'worker'), { reason: 'worker_share_full' });
});

t.test('reclaim: a newcomer takes the longest-idle request connection of the biggest holder, never a stream, never from a near-equal', async (t) => {
  const c = (item: string, identity: string, idleMs: number, reclaimable = true, cls: 'client' | 'cluster' = 'client') => ({ item, identity, cls, reclaimable, idleMs });
  const live = [
    c('a1', 'A', 5_000), c('a2', 'A', 60_000), c('a3', 'A', 9_000, false), c('a4', 'A', 500),
    c('b1', 'B', 90_000), c('b2', 'B', 90_000),
    c('w1', 'W', 999_000, true, 'cluster'), c('w2', 'W', 999_000, true, 'cluster'), c('w3', 'W', 999_000, true, 'cluster'),
  ];
  t.equal(chooseVictim(live, { identity: 'N', cls: 'client' }), 'a2', 'A holds the most (4): its longest-idle request connection');
  t.equal(chooseVictim(live, { identity: 'B', cls: 'client' }), 'a2', 'B (2) may take from A (4)');
  t.equal(chooseVictim(live, { identity: 'C', cls: 'client' }), 'a2');
  t.equal(chooseVictim([c('a1', 'A', 5_000), c('a2', 'A', 5_000), c('b1', 'B', 5_000)], { identity: 'B', cls: 'client' }), undefined, 'never from a holder only one ahead: no ping-pong');
  t.equal(chooseVictim([c('a1', 'A', 5_000, false), c('a2', 'A', 5_000, false), c('a3', 'A', 5_000, false)], { identity: 'N', cls: 'client' }), undefined, 'never a Dask stream');
  t.equal(chooseVictim([c('a1', 'A', 200), c('a2', 'A', 300)], { identity: 'N', cls: 'client' }), undefined, 'never a connection active in the last second');
  t.equal(chooseVictim(live, { identity: 'N', cls: 'cluster' }), 'w1', 'only within the newcomer\'s role class');
});

t.test('release is idempotent and returns every count', async (t) => {
  const s = new FairShares(LIMITS);
  const a = slot(s, '::ffff:10.0.0.1');
  const b = slot(s, '10.0.0.1');
  t.equal(s.promote(a, 'spiffe://c/worker/w', 'worker'), null);
  s.release(a);
  s.release(a);
  s.release(b);
  t.equal(s.total, 0);
  t.equal(s.handshakes, 0);
  for (let i = 0; i < 5; i++) slot(s, '10.0.0.1');
  t.pass('the per-address count came back to zero');
});

t.test('sources: IPv4-mapped as IPv4, IPv6 by /64', async (t) => {
  t.equal(sourceOf('::ffff:192.0.2.7'), '192.0.2.7');
  t.equal(sourceOf('192.0.2.7'), '192.0.2.7');
  t.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(sourceOf('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  t.equal(sourceOf('::1'), '0:0:0:0::/64');
  t.equal(sourceOf(undefined), 'unknown');
});

class Holder implements BudgetHolder {
  paused = false;
  evicted = false;
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  evict(): void { this.evicted = true; }
}

t.test('memory budget: past the limit the large holders pause, small ones keep going, all resume below the resume level', async (t) => {
  const seen: number[] = [];
  const b = new MemoryBudget({ limitBytes: 1000, resumeFraction: 0.5, smallHoldBytes: 50, stallMs: 60_000, onChange: (used) => seen.push(used) });
  const [big, small, late] = [new Holder(), new Holder(), new Holder()];
  const [aBig, aSmall, aLate] = [b.account(big), b.account(small), b.account(late)];
  aSmall.set(40);
  aBig.set(900);
  t.notOk(b.exhausted);
  aBig.set(980);
  t.ok(b.exhausted, '1,020 is past 1,000');
  t.ok(big.paused, 'the large holder stops being read');
  t.notOk(small.paused, 'a holder under smallHoldBytes keeps going');
  aLate.set(60);
  t.ok(late.paused, 'a holder that grows past smallHoldBytes while exhausted is paused too');
  t.equal(b.paused, 2);
  aBig.set(500);
  t.ok(b.exhausted, '600 is not yet below the resume level (500)');
  aBig.close();
  t.notOk(b.exhausted, 'closing the large holder returns its bytes: 100');
  t.notOk(late.paused, 'and every paused holder resumes');
  t.equal(b.paused, 0);
  t.equal(b.used, 100);
  aSmall.close();
  aLate.close();
  t.equal(b.used, 0, 'memory comes back to zero after close');
  t.equal(seen.at(-1), 0, 'and the metric hook saw it');
});

t.test('memory budget: exhausted for stallMs, the largest holders are evicted until below the resume level', async (t) => {
  const evicted: number[] = [];
  const b = new MemoryBudget({ limitBytes: 1000, resumeFraction: 0.5, smallHoldBytes: 10, stallMs: 50, onEvict: (held) => evicted.push(held) });
  const holders = [300, 200, 400, 150].map((n) => {
    const h = new Holder();
    const a = b.account({ pause: () => h.pause(), resume: () => h.resume(), evict: () => { h.evict(); a.close(); } });
    a.set(n);
    return h;
  });
  t.ok(b.exhausted);
  t.ok(holders.every((h) => h.paused), 'all four wait on each other');
  await waitFor(() => !b.exhausted, { timeoutMs: 5_000, intervalMs: 10, what: 'the stall to end in evictions' });
  t.same(evicted, [400, 300], 'the two largest go: 1,050 - 700 = 350 < 500');
  t.same(holders.map((h) => h.evicted), [true, false, true, false]);
  t.notOk(b.exhausted);
  t.notOk(holders[1]!.paused || holders[3]!.paused, 'the rest resume');
});

t.test('coalescing: the first refusal per source, reason and credential in full, repeats as one summary per interval', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ stream: jsonLineSink((_r, l) => { if (l) lines.push(l); }) });
  let coalesced = 0;
  const c = new RefusalCoalescer(log, { port: '8786', intervalMs: 60_000, maxNewPerInterval: 5, onCoalesced: () => coalesced++ });
  t.teardown(() => c.close());
  t.ok(c.admit('10.0.0.1', 'too_many_handshakes_from_address'), 'first: in full');
  let repeated = 0;
  for (let i = 0; i < 999; i++) if (!c.admit('10.0.0.1', 'too_many_handshakes_from_address')) repeated++;
  t.equal(repeated, 999, 'every repeat: counted, not written');
  t.ok(c.admit('10.0.0.1', 'wrong_role'), 'another reason from the same source: in full');
  t.ok(c.admit('10.0.0.1', 'wrong_role', 'spiffe://c/scheduler/s'), 'another credential: in full');
  t.equal(coalesced, 999);
  c.flush();
  t.same(lines.map((l) => [l.event, l.source, l.reason, l.count]), [['refusals_coalesced', '10.0.0.1', 'too_many_handshakes_from_address', 999]], 'one summary with the count');
  lines.length = 0;
  c.flush();
  t.same(lines, [], 'nothing new: no line');
  c.flush();
  t.ok(c.admit('10.0.0.1', 'too_many_handshakes_from_address'), 'a key quiet for a whole interval is forgotten: its next refusal is in full again');
});

t.test('coalescing is bounded when the sources are many', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ stream: jsonLineSink((_r, l) => { if (l) lines.push(l); }) });
  const c = new RefusalCoalescer(log, { port: '8787', intervalMs: 60_000, maxNewPerInterval: 100, maxSummaries: 10 });
  t.teardown(() => c.close());
  let full = 0;
  for (let i = 0; i < 5000; i++) if (c.admit(`10.9.${i >> 8}.${i & 255}`, 'token_unknown')) full++;
  for (let i = 0; i < 100; i++) for (let k = 0; k < 3; k++) c.admit(`10.9.0.${i}`, 'token_unknown');
  t.equal(full, 100, 'at most maxNewPerInterval first lines per interval');
  c.flush();
  t.ok(lines.length <= 11, `${lines.length} summary lines for 5,300 refusals from 5,000 sources`);
  const total = lines.reduce((n, l) => n + Number(l.count), 0);
  t.equal(total, 5300 - 100, 'every suppressed refusal is in some summary count');
  t.ok(lines.some((l) => l.source === '*'), 'the overflow is counted under source "*"');
});

t.test('first op: a stream opener, a pooled request, garbage', async (t) => {
  const op = (o: Record<string, unknown>) => msg(o);
  const kindOf = (...chunks: Buffer[]) => {
    const f = new FirstOp();
    let k: string | null = null;
    for (const c of chunks) for (const b of c) k ??= f.push(Buffer.from([b]));
    return k;
  };
  t.equal(kindOf(LISTENER_HANDSHAKE, op({ op: 'register-worker', reply: false })), 'stream');
  t.equal(kindOf(LISTENER_HANDSHAKE, op({ op: 'register-client', client: 'Client-1' })), 'stream');
  t.equal(kindOf(LISTENER_HANDSHAKE, op({ op: 'identity', reply: true })), 'request');
  t.equal(kindOf(LISTENER_HANDSHAKE), null, 'the handshake alone decides nothing');
  t.equal(kindOf(Buffer.alloc(64, 0xff)), 'request', 'unreadable: treated as a request connection');
});


t.test("the pipe's budget brake: no drain undoes hold(), and release resumes only what backpressure allows", async (t) => {
  const pair = async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const accepted = new Promise<Socket>((r) => srv.once('connection', r));
    const near = connect((srv.address() as AddressInfo).port, '127.0.0.1');
    const far = await accepted;
    srv.close();
    t.teardown(() => { near.destroy(); far.destroy(); });
    return { near, far };
  };
  const peer = await pair();
  const up = await pair();
  const flows: number[] = [];
  const pipe = pipeBoth(peer.far, up.near, undefined, 1_000, { onClosed: () => {}, onDenied: () => {}, onFlow: () => flows.push(pipe.heldBytes) });
  pipe.hold(true);
  t.ok(peer.far.isPaused() && up.near.isPaused(), 'held: neither side is read');
  up.near.emit('drain');
  peer.far.emit('drain');
  t.ok(peer.far.isPaused() && up.near.isPaused(), 'a drain on either side leaves the hold in place');
  peer.near.write('x'.repeat(1000));
  await waitFor(() => peer.far.readableLength > 0 || undefined, { what: 'bytes waiting unread' });
  t.equal(pipe.heldBytes, peer.far.readableLength, 'what waits unread is what the connection holds');
  pipe.hold(false);
  const got = await new Promise<Buffer>((r) => up.far.once('data', r));
  t.ok(got.length > 0 && !peer.far.isPaused(), 'released: forwarding goes on');
  t.ok(flows.length > 0, 'and each chunk reported what the connection holds');
});

t.test('polite request refusals on 8786: the first per source, certificate, code and op in full, repeats coalesced', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ stream: jsonLineSink((_r, l) => { if (l) lines.push(l); }) });
  const c = new RefusalCoalescer(log, { port: '8786', intervalMs: 60_000 });
  t.teardown(() => c.close());
  const audit = new ConnectionAudit(log, createMetrics({ defaultMetrics: false }), c);
  const facts = { conn: 'c1', peer: '10.0.0.1:5000', address: '10.0.0.1', uri: 'spiffe://c/client/mallory', role: 'client' as const };
  const denial = (op: string) => ({ code: 'GW_POLICY_DENIED', reason: 'op-denied', op, rule: 'rules.client' });
  for (let i = 0; i < 500; i++) audit.requestRefused(facts, denial('run_function'));
  audit.requestRefused(facts, denial('feed'));
  audit.requestRefused({ ...facts, uri: 'spiffe://c/client/bob' }, denial('run_function'));
  t.same(lines.filter((l) => l.event === 'request_refused').map((l) => [l.op, l.uri]), [
    ['run_function', 'spiffe://c/client/mallory'], ['feed', 'spiffe://c/client/mallory'], ['run_function', 'spiffe://c/client/bob'],
  ], 'one line per distinct op and certificate');
  c.flush();
  t.match(lines.filter((l) => l.event === 'refusals_coalesced'), [{ source: '10.0.0.1', reason: 'request_refused:GW_POLICY_DENIED:run_function', subject: 'spiffe://c/client/mallory', count: 499 }], 'the 499 repeats as one summary');
});
