/**
 * Load against a gateway process (test/hardening/gateway-child.ts) from a
 * separate client process (load-driver.ts), through 8786 with wire
 * inspection on, to a loopback echo standing in for the scheduler.
 *
 *   soak: SOAK_SECONDS (CI: 60; scripts/soak.sh: 600) of SOAK_CHURN (1000)
 *     connection slots churning (connect, one message, close, again) plus
 *     SOAK_LONG (200) long-lived connections carrying a message every 100 ms.
 *     Flat at the end: the gateway's file descriptors back to their
 *     pre-load count (+/- 10), its RSS in the last fifth of the run within
 *     25 % (or 64 MiB) of its RSS after warm-up and its native memory (RSS
 *     minus V8's heap, after a full collection), over the second half, growing by under 2.5 KiB per
 *     churned connection (the leak this caught was 4.6), no long-lived connection
 *     dropped, every echo byte-exact, no error line in the gateway log.
 *   hold: HOLD_CONNECTIONS concurrent mutual-TLS connections held by one
 *     gateway whose live slots are exactly that, plus HOLD_EXTRA more
 *     that must be refused cleanly (audited, quickly)
 *     while every held connection keeps working. Each forwarded connection
 *     costs the gateway two descriptors (peer and scheduler) and it keeps
 *     256 for everything else; with this machine's hard limit of 20,000 the
 *     most one process can hold is 9,872, so CI holds 5,000 and
 *     scripts/soak.sh asks for 10,000 and lowers it to what `ulimit -Hn`
 *     allows, saying so.
 * End-state numbers go to test/artifacts/soak-*.json.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { openFds, rssBytes, startEcho, startHttpUpstream } from './harness.js';
import { collectedMemory, jsonLines, REPO, spawnGatewayChild, spawnTs, type GatewayChild } from './child.js';

const num = (k: string, d: number) => (process.env[k] && /^\d+$/.test(process.env[k]!) ? Number(process.env[k]) : d);
const SOAK_SECONDS = num('SOAK_SECONDS', 60);
const SOAK_CHURN = num('SOAK_CHURN', 1000);
const SOAK_LONG = num('SOAK_LONG', 200);
const HOLD = num('HOLD_CONNECTIONS', 5000);
const HOLD_EXTRA = num('HOLD_EXTRA', 200);
const HANDSHAKES = 256;
const MiB = 1048576;

t.setTimeout((SOAK_SECONDS + 300) * 1000 + HOLD * 30);
const ARTIFACTS = join(REPO, 'test', 'artifacts');

interface DriverLine { event: string; [k: string]: unknown }

function runDriver(t: { teardown(fn: () => unknown): void }, config: Record<string, unknown>, onLine: (l: DriverLine) => void): Promise<DriverLine[]> {
  const p = spawnTs(join(REPO, 'test', 'hardening', 'load-driver.ts'), [JSON.stringify(config)]);
  t.teardown(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } });
  const lines: DriverLine[] = [];
  let err = '';
  jsonLines(p.stdout!, (l) => { lines.push(l as DriverLine); onLine(l as DriverLine); }, (l) => { err += l + '\n'; });
  p.stderr!.on('data', (d: Buffer) => { if (err.length < 20_000) err += d.toString(); });
  return new Promise((resolve, reject) => p.on('exit', (code) => (code === 0 ? resolve(lines) : reject(new Error(`load driver exited ${code}:\n${err.slice(-3000)}`)))));
}

async function gateway(t: { teardown(fn: () => unknown): void }, cluster: TestCluster, echoPort: number, extra: Record<string, string> = {}): Promise<GatewayChild> {
  const up = await startHttpUpstream(t as never);
  return spawnGatewayChild({
    t,
    passphrase: cluster.passphrase,
    flags: {
      dir: cluster.dir, listen: '127.0.0.1:0', scheduler: `127.0.0.1:${echoPort}`, 'failed-handshake-rate': '1000000',
      // The load comes from one address with one certificate, standing in for many peers: no fair shares.
      // 1,024 handshakes at once (a quarter of the default cap): the churn's 1,000 slots reconnect together.
      'max-connections-per-address': '1000000', 'max-connections-per-identity': '1000000', 'max-handshakes-per-address': '100000', 'max-handshakes': '1024',
      'reserve-workers-percent': '0', 'reserve-clients-percent': '0',
      'dashboard-listen': '127.0.0.1:0', 'dashboard-upstream': `127.0.0.1:${up.port}`, 'metrics-listen': '127.0.0.1:0', ...extra,
    },
  });
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
}

/** The descriptor baseline of a fresh gateway: the count once three reads 250 ms apart agree (listeners and watchers open lazily). */
async function settledFds(pid: number): Promise<number> {
  const reads: number[] = [];
  return waitFor(() => {
    reads.push(openFds(pid));
    const last = reads.slice(-3);
    return last.length === 3 && last.every((n) => n === last[0]) ? last[0] : undefined;
  }, { intervalMs: 250, timeoutMs: 15_000, what: 'the gateway descriptor count to settle' });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

let cluster: TestCluster;
t.before(async () => { cluster = await makeTestCluster(); });
t.teardown(() => cluster?.cleanup());

t.test(`soak: ${SOAK_CHURN} connections churning and ${SOAK_LONG} long-lived ones carrying traffic for ${SOAK_SECONDS} s; descriptors and RSS flat, no errors`, async (t) => {
  const echo = await startEcho(t);
  const gw = await gateway(t, cluster, echo.port);
  const client = await cluster.issue('client', 'soak');
  const fdsBefore = await settledFds(gw.pid);
  const samples: Array<{ at: number; fds: number; rss: number; heap: number; churned: number }> = [];
  let churnedSoFar = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const at = Date.now();
      const churned = churnedSoFar;
      const fds = openFds(gw.pid);
      const m = await collectedMemory(gw).catch(() => undefined);
      if (m) samples.push({ at, fds, rss: m.rss, heap: m.heapTotal, churned });
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  const started = Date.now();
  const lines = await runDriver(t, {
    mode: 'soak', port: gw.ports.p8786, ca: client.caPath, cert: client.certPath, key: client.keyPath,
    durationMs: SOAK_SECONDS * 1000, churn: SOAK_CHURN, longLived: SOAK_LONG, intervalMs: 100, messageBytes: 1024,
  }, (l) => {
    if (l.event !== 'progress') return;
    churnedSoFar = l.churned as number;
    t.comment(`soak progress: ${JSON.stringify(l)}`);
  });
  sampling = false;
  await sampler;
  const done = lines.find((l) => l.event === 'done')!;
  const fdsAfter = await waitFor(() => (openFds(gw.pid) <= fdsBefore + 10 ? openFds(gw.pid) : undefined), { timeoutMs: 60_000, what: 'gateway descriptors back to baseline' }).catch(() => openFds(gw.pid));
  const loadEnd = started + SOAK_SECONDS * 1000;
  const warm = samples.filter((s) => s.at > started + SOAK_SECONDS * 200 && s.at < started + SOAK_SECONDS * 400);
  const tail = samples.filter((s) => s.at > loadEnd - SOAK_SECONDS * 200 && s.at <= loadEnd);
  const rssWarm = median(warm.map((s) => s.rss));
  const rssTail = median(tail.map((s) => s.rss));
  // Native growth per churned connection: a leak of a few KiB per handshake (Node 20's
  // getPeerX509Certificate leaked 4.6 KiB) shows here long before it shows as a percentage of RSS. The
  // least-squares slope of RSS minus V8's heap against connections churned, over the second half of the
  // load (past warm-up), each sample taken after a full collection: a closed TLS socket's OpenSSL state
  // and buffers are freed by the GC, so without it the slope followed the GC's sawtooth (2.7 KiB per
  // connection on a loaded CI machine, no leak).
  const late = samples.filter((s) => s.at > started + SOAK_SECONDS * 500 && s.at <= loadEnd && s.churned > 0);
  const churnedBetween = late.length > 1 ? late[late.length - 1]!.churned - late[0]!.churned : 0;
  const growthPerConnKiB = slope(late.map((s) => [s.churned, (s.rss - s.heap) / 1024]));
  const failed = Object.values(done.churnFailed as Record<string, number>).reduce((a, b) => a + b, 0);
  const summary = {
    seconds: SOAK_SECONDS, churnSlots: SOAK_CHURN, longLived: SOAK_LONG,
    churned: done.churned, churnPerSecond: Math.round((done.churned as number) / SOAK_SECONDS), churnFailed: done.churnFailed,
    churnP50Ms: done.churnP50Ms, churnP99Ms: done.churnP99Ms,
    longOpened: done.longOpened, longMessages: done.longMessages, longMiB: +((done.longBytes as number) / MiB).toFixed(1), longDropped: done.longDropped, longMismatches: done.longMismatches,
    gatewayFds: { before: fdsBefore, peak: Math.max(...samples.map((s) => s.fds)), after: fdsAfter },
    gatewayRssMiB: { warm: +(rssWarm / MiB).toFixed(1), endOfLoad: +(rssTail / MiB).toFixed(1), peak: +(Math.max(...samples.map((s) => s.rss)) / MiB).toFixed(1), afterIdle: +(rssBytes(gw.pid) / MiB).toFixed(1) },
    nativeGrowthPerChurnedConnKiB: +growthPerConnKiB.toFixed(3), churnedInSecondHalf: churnedBetween,
    gatewayErrorLines: gw.errors().length,
    refusals: Object.fromEntries(gw.lines.filter((l) => l.event === 'connection_refused').reduce((m, l) => m.set(String(l.reason), (m.get(String(l.reason)) ?? 0) + 1), new Map<string, number>())),
  };
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, `soak-${SOAK_SECONDS}s.json`), JSON.stringify(summary, null, 2));
  t.comment(`soak end state: ${JSON.stringify(summary)}`);
  t.equal(done.longOpened, SOAK_LONG, `all ${SOAK_LONG} long-lived connections opened`);
  t.equal(done.longDropped, 0, 'no long-lived connection was dropped');
  t.equal(done.longMismatches, 0, 'every echo came back byte for byte');
  t.ok((done.churned as number) >= SOAK_SECONDS * 20, `connections churned (${done.churned}, ${summary.churnPerSecond}/s)`);
  t.ok(failed <= (done.churned as number) * 0.01, `churn failures within 1 % (${failed}: ${JSON.stringify(done.churnFailed)})`);
  t.ok(fdsAfter <= fdsBefore + 10, `gateway descriptors back to baseline after the load (${fdsBefore} -> ${fdsAfter})`);
  t.ok(rssTail <= rssWarm * 1.25 || rssTail - rssWarm < 64 * MiB, `gateway RSS flat: ${summary.gatewayRssMiB.warm} MiB after warm-up, ${summary.gatewayRssMiB.endOfLoad} MiB at the end of the load`);
  t.ok(churnedBetween >= 3000 && late.length >= 8, `enough churn in the second half to judge growth per connection (${churnedBetween} over ${late.length} samples)`);
  // Measured after a full collection, without a leak: 0.27 KiB (idle machine), 0.86 (a second process
  // spinning on one core); with the 4.6 KiB leak put back: 4.89. Sampled without collecting first, the same
  // loaded run read -29.7 and a loaded CI run 2.69 (a failure, no leak): the GC's sawtooth, not growth.
  t.ok(growthPerConnKiB < 2.5, `native memory (RSS - V8 heap) grows under 2.5 KiB per churned connection in the second half (${summary.nativeGrowthPerChurnedConnKiB} KiB over ${churnedBetween})`);
  t.same(gw.errors(), [], 'no error lines in the gateway log');
  await gw.kill('SIGTERM');
});

t.test(`${HOLD} concurrent mutual-TLS connections held by one gateway; ${HOLD_EXTRA} beyond the live slots refused cleanly`, async (t) => {
  const echo = await startEcho(t);
  // HOLD live slots: --max-connections less the handshake share (a quarter, at most --max-handshakes 256) is exactly HOLD.
  const gw = await gateway(t, cluster, echo.port, { 'max-connections': String(HOLD + HANDSHAKES), 'max-handshakes': String(HANDSHAKES), 'handshake-timeout-ms': '60000' });
  const client = await cluster.issue('client', 'holder');
  const fdsBefore = await settledFds(gw.pid);
  let peakFds = fdsBefore;
  let peakRss = 0;
  const sampler = setInterval(() => { peakFds = Math.max(peakFds, openFds(gw.pid)); peakRss = Math.max(peakRss, rssBytes(gw.pid)); }, 1000);
  const lines = await runDriver(t, {
    mode: 'hold', port: gw.ports.p8786, ca: client.caPath, cert: client.certPath, key: client.keyPath, hold: HOLD, extra: HOLD_EXTRA, concurrency: 100, holdMs: 3000,
  }, (l) => { if (l.event !== 'progress') t.comment(`hold: ${JSON.stringify(l)}`); });
  clearInterval(sampler);
  const held = lines.find((l) => l.event === 'held')!;
  const extra = lines.find((l) => l.event === 'extra')!;
  const checked = lines.find((l) => l.event === 'checked')!;
  const fdsAfter = await waitFor(() => (openFds(gw.pid) <= fdsBefore + 10 ? openFds(gw.pid) : undefined), { timeoutMs: 60_000, what: 'gateway descriptors back' }).catch(() => openFds(gw.pid));
  // Refused at accept (every slot taken) or, once through TLS, for want of a live slot (client_share_full, in Dask's framing);
  // each audited in full the first time and then in coalesced summaries (log/coalesce.ts).
  const OVER = new Set(['too_many_connections', 'client_share_full']);
  const audited = () => gw.lines.filter((l) => OVER.has(String(l.reason)) && (l.event === 'connection_refused' || l.event === 'refusals_coalesced'))
    .reduce((n, l) => n + (l.event === 'refusals_coalesced' ? Number(l.count) : 1), 0);
  const auditedTooMany = await waitFor(() => (audited() >= HOLD_EXTRA ? audited() : undefined), { timeoutMs: 20_000, what: 'every excess refusal audited' }).catch(() => audited());
  const summary = { hold: HOLD, held: held.held, heldInMs: held.ms, holdFailed: held.failed, extra: HOLD_EXTRA, extraAccepted: extra.accepted, extraRefused: extra.refused, extraSlowestMs: extra.maxMs, auditedTooMany, echoedAgain: checked.echoedAgain, dropped: checked.dropped, gatewayFds: { before: fdsBefore, peak: peakFds, after: fdsAfter }, gatewayPeakRssMiB: +(peakRss / MiB).toFixed(1), gatewayErrorLines: gw.errors().length };
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, `hold-${HOLD}.json`), JSON.stringify(summary, null, 2));
  t.comment(`hold end state: ${JSON.stringify(summary)}`);
  t.equal(held.held, HOLD, `${HOLD} connections authenticated, forwarded and held at once`);
  t.equal(extra.accepted, 0, 'no connection beyond the limit was served');
  t.equal(extra.refused, HOLD_EXTRA, `all ${HOLD_EXTRA} excess connections were refused`);
  t.ok((extra.maxMs as number) < 15_000, `refused promptly (slowest ${extra.maxMs} ms), not left hanging`);
  t.equal(auditedTooMany, HOLD_EXTRA, 'each refusal audited (too_many_connections or client_share_full; repeats in coalesced summaries)');
  t.equal(checked.echoedAgain, HOLD, 'every held connection still carried traffic after the excess was refused');
  t.equal(checked.dropped, 0, 'none of them was dropped');
  t.ok(fdsAfter <= fdsBefore + 10, `gateway descriptors back to baseline after release (${fdsBefore} -> peak ${peakFds} -> ${fdsAfter})`);
  t.same(gw.errors(), [], 'no error lines in the gateway log');
  await gw.kill('SIGTERM');
});
