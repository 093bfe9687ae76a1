/**
 * Admission with several data-plane processes: the broker (primary) and a
 * RemoteAdmission per process, over in-memory pipes. The limits must count
 * every process's connections as one gateway does.
 */
import t from 'tap';
import { Channel } from '../../src/dataplane/channel.js';
import { AdmissionBroker } from '../../src/dataplane/broker.js';
import { RemoteAdmission } from '../../src/dataplane/remote-admission.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { isAdmissionRefusal, type Reclaimable, type ReclaimDetail } from '../../src/terminator/admission.js';
import type { ShareLimits, Slot } from '../../src/terminator/fair-shares.js';
import { ipcPair } from '../helpers/ipc-pair.js';

const keepAlive = setInterval(() => {}, 1_000);
t.teardown(() => clearInterval(keepAlive));

const LIMITS: ShareLimits = { maxConnections: 100, maxHandshakes: 20, maxHandshakesPerAddress: 10, maxPerAddress: 50, maxPerIdentity: 2, reserveWorkersPercent: 25, reserveClientsPercent: 10 };

interface Proc {
  readonly admission: RemoteAdmission;
  readonly live: Reclaimable[];
  readonly cuts: ReclaimDetail[];
  readonly end: ReturnType<typeof ipcPair>[1];
}

function setup(o: { limits?: Partial<ShareLimits>; perProcessCap?: number; failures?: number; processes?: number } = {}) {
  const metrics = createMetrics({ defaultMetrics: false });
  const broker = new AdmissionBroker({ limits: { ...LIMITS, ...o.limits }, failedHandshakesPerMinute: o.failures ?? 60, perProcessCap: o.perProcessCap ?? 1_000, metrics });
  const procs: Proc[] = [];
  for (let i = 1; i <= (o.processes ?? 2); i++) {
    const [primaryEnd, processEnd] = ipcPair();
    broker.attach(i, new Channel(primaryEnd));
    const live: Reclaimable[] = [];
    const cuts: ReclaimDetail[] = [];
    procs.push({ admission: new RemoteAdmission(new Channel(processEnd), () => live), live, cuts, end: processEnd });
  }
  return { broker, procs, metrics };
}

async function admitted(p: Proc, address = '10.0.0.1'): Promise<Slot> {
  const s = await p.admission.admit(address);
  if (isAdmissionRefusal(s)) throw new Error(`refused: ${s.reason}`);
  return s;
}

t.test('the per-identity limit counts the connections of every process', async (t) => {
  const { broker, procs: [a, b] } = setup();
  const s1 = await admitted(a!);
  const s2 = await admitted(b!);
  const s3 = await admitted(b!);
  t.equal(await a!.admission.promote(s1, 'spiffe://c/client/alice', 'client'), null);
  t.equal(await b!.admission.promote(s2, 'spiffe://c/client/alice', 'client'), null);
  const over = await b!.admission.promote(s3, 'spiffe://c/client/alice', 'client');
  t.equal(over?.reason, 'too_many_connections_for_identity', 'the third, in another process, is over the share of one certificate');
  t.equal(s2.identity, 'spiffe://c/client/alice', 'the process knows what its slot became');
  a!.admission.release(s1);
  a!.admission.release(s1);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(broker.total, 2, 'released once, whatever the process says twice');
  const s4 = await admitted(b!);
  t.equal(await b!.admission.promote(s4, 'spiffe://c/client/alice', 'client'), null, 'a released slot is free for any process');
});

t.test('per address, per process, and the failed-handshake budget are global', async (t) => {
  const { procs: [a, b] } = setup({ limits: { maxPerAddress: 3 }, perProcessCap: 2, failures: 2 });
  await admitted(a!, '10.0.0.9');
  await admitted(b!, '10.0.0.9');
  await admitted(b!, '10.0.0.9');
  const r = await a!.admission.admit('10.0.0.9');
  t.equal(isAdmissionRefusal(r) && r.reason, 'too_many_connections_from_address');
  const cap = await b!.admission.admit('10.0.0.2');
  t.equal(isAdmissionRefusal(cap) && cap.reason, 'too_many_connections', 'process b holds all its descriptors back');
  t.match(isAdmissionRefusal(cap) && cap.detail, /open-files limit/);
  a!.admission.failed('10.0.0.7');
  b!.admission.failed('10.0.0.7');
  await new Promise((r) => setTimeout(r, 20));
  const limited = await a!.admission.admit('10.0.0.7');
  t.equal(isAdmissionRefusal(limited) && limited.reason, 'rate_limited', 'failures seen by two processes add up');
});

t.test('a process that exits gives back every slot it held', async (t) => {
  const { broker, procs: [a, b] } = setup();
  for (let i = 0; i < 3; i++) await admitted(a!);
  const s = await admitted(b!);
  t.equal(broker.total, 4);
  broker.detach(1);
  t.equal(broker.total, 1);
  b!.admission.release(s);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(broker.total, 0);
});

t.test('a full share reclaims the idle request connection of the biggest holder, in whichever process it lives', async (t) => {
  // 8 slots: 2 handshake, client share 8 - 2 - 2 (workers' 25 % reserve) = 4.
  const { broker, procs: [a, b], metrics } = setup({ limits: { maxConnections: 8, maxHandshakes: 2, maxPerIdentity: 10 } });
  for (let i = 0; i < 4; i++) {
    const slot = await admitted(b!);
    t.equal(await b!.admission.promote(slot, 'spiffe://c/client/hog', 'client'), null);
    const cuts = b!.cuts;
    b!.live.push({ slot, identity: 'spiffe://c/client/hog', cls: 'client', reclaimable: true, idleMs: 5_000 + i, cut: (d) => void cuts.push(d) });
  }
  const mine = await admitted(a!);
  const over = await a!.admission.promote(mine, 'spiffe://c/client/newcomer', 'client');
  t.equal(over, null, 'the newcomer gets a slot');
  await new Promise((r) => setTimeout(r, 20));
  t.same(b!.cuts, [{ reclaimed_for: 'spiffe://c/client/newcomer', share: 'client_share_full' }], 'the other process cut its longest-idle connection');
  t.ok(b!.live[3]!.slot.released, 'and will not release that slot a second time');
  t.equal(broker.total, 4);
  t.equal((await metrics.connectionsReclaimedTotal.get()).values[0]?.value, 1);
});

t.test('a process that does not answer: the broker offers none of its connections; a dead primary refuses cleanly', async (t) => {
  const { procs: [a, b] } = setup({ limits: { maxConnections: 8, maxHandshakes: 2, maxPerIdentity: 10 } });
  for (let i = 0; i < 4; i++) t.equal(await b!.admission.promote(await admitted(b!), 'spiffe://c/client/hog', 'client'), null);
  b!.end.cut();
  const mine = await admitted(a!);
  const over = await a!.admission.promote(mine, 'spiffe://c/client/newcomer', 'client');
  t.equal(over?.reason, 'client_share_full', 'nothing to reclaim from a silent process: refused, not hung');
  a!.end.cut();
  await t.rejects(a!.admission.admit('10.0.0.1'), /gone/, 'the terminator turns this into admission_unavailable');
});
