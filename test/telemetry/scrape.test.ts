import t, { type Test } from 'tap';
import { createServer, type ServerResponse } from 'node:http';
import { scrapeText } from '../../src/telemetry/scrape.js';
import { Collector } from '../../src/telemetry/collector.js';
import { registrySamples } from '../../src/telemetry/registry-samples.js';
import { DEFAULT_ALLOWLIST } from '../../src/telemetry/allowlist.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { aggregatedReader } from '../../src/runtime/metrics-aggregate.js';
import { GatewayError } from '../../src/errors/base.js';
import { captureLogger, metricValue } from './helpers.js';

/** A /metrics endpoint whose behaviour each test chooses. */
async function endpoint(t: Test, handle: (res: ServerResponse) => void) {
  const server = createServer((_req, res) => handle(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/metrics`);
}

const opts = { timeoutMs: 300, maxBytes: 1000 };

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  if (!(e instanceof GatewayError)) throw new Error(`expected a GatewayError, got ${String(e)}`);
  return e;
}

t.test('reads a normal body', async (t) => {
  const url = await endpoint(t, (res) => res.end('m 1\n'));
  t.equal(await scrapeText(url, opts), 'm 1\n');
});

const CASES: [string, (res: ServerResponse) => void, RegExp][] = [
  ['a server that never answers', () => undefined, /no complete answer within 300 ms/],
  ['a body that trickles forever', (res) => { res.write('m 1\n'); }, /no complete answer within 300 ms/],
  ['a declared body over the cap', (res) => { res.setHeader('content-length', '5000'); res.end('x'.repeat(5000)); }, /5000 bytes exceeds 1000/],
  ['a chunked body over the cap', (res) => { for (let i = 0; i < 20; i++) res.write('x'.repeat(100)); res.end(); }, /body exceeds 1000 bytes/],
  ['an HTTP error', (res) => res.writeHead(500).end(), /HTTP 500/],
  ['invalid UTF-8', (res) => res.end(Buffer.from([0x6d, 0x20, 0xff, 0xfe, 0x0a])), /not valid UTF-8/],
];

for (const [what, handle, msg] of CASES) {
  t.test(`refuses ${what} with GW_TELEMETRY_SCRAPE_FAILED`, async (t) => {
    const url = await endpoint(t, handle);
    const e = await refusal(scrapeText(url, opts));
    t.equal(e.code, 'GW_TELEMETRY_SCRAPE_FAILED');
    t.match(e.message, msg);
  });
}

t.test('refuses anything but http on loopback', async (t) => {
  for (const u of ['http://10.0.0.1:8787/metrics', 'https://127.0.0.1:8787/metrics', 'http://example.com/metrics']) {
    t.match((await refusal(scrapeText(new URL(u), opts))).message, /only http:\/\/ on a loopback address/, u);
  }
});

t.test('a refused connection is a scrape error, not a crash', async (t) => {
  t.match((await refusal(scrapeText(new URL('http://127.0.0.1:1/metrics'), opts))).message, /ECONNREFUSED/);
});

t.test('a hostile /metrics body is logged and counted, and the batch says the scheduler part is missing', async (t) => {
  let body = 'dask_scheduler_clients 3\n';
  const url = await endpoint(t, (res) => res.end(body));
  const metrics = createMetrics({ defaultMetrics: false });
  const cap = captureLogger();
  const c = new Collector({
    gatewaySamples: () => registrySamples(metrics.registry), schedulerUrl: url, scrapeIntervalMs: 60_000, scrapeTimeoutMs: 1000, scrapeMaxBytes: 1 << 20,
    allowlist: DEFAULT_ALLOWLIST, hashKey: undefined, metrics, log: cap.log, now: () => new Date(),
  });
  await c.scrapeOnce();
  let batch = await c.collect();
  t.same(batch.scheduler, { ok: true });
  t.ok(batch.samples.some((s) => s.source === 'scheduler' && s.name === 'dask_scheduler_clients' && s.value === 3));
  body = 'dask_scheduler_clients{a="unterminated} 3\n';
  await c.scrapeOnce();
  batch = await c.collect();
  t.same(batch.scheduler, { ok: false, error: 'GW_TELEMETRY_PROM_PARSE' });
  t.notOk(batch.samples.some((s) => s.source === 'scheduler'), 'nothing from a body that did not parse');
  t.ok(batch.samples.some((s) => s.source === 'gateway'), 'the gateway part still goes out');
  t.equal(await metricValue(metrics.scrapeErrorsTotal), 1);
  t.ok(cap.lines().some((l) => l['event'] === 'telemetry_scrape_failed' && String(l['problem']).includes('unterminated label value')));
});

t.test('fed the combined reading of several processes, a batch carries the sums over processes', async (t) => {
  const [primary, workerA, workerB] = [createMetrics({ defaultMetrics: false }), createMetrics({ defaultMetrics: false }), createMetrics({ defaultMetrics: false })];
  primary.connectionsTotal.inc({ port: '8787', role: 'client' }, 2);
  workerA.connectionsTotal.inc({ port: '8786', role: 'worker' }, 3);
  workerB.connectionsTotal.inc({ port: '8786', role: 'worker' }, 4);
  primary.spoolBatches.set(5);
  const reader = aggregatedReader(primary.registry, async () => Promise.all([workerA, workerB].map((m) => m.registry.getMetricsAsJSON())));
  const c = new Collector({
    gatewaySamples: () => registrySamples(reader), schedulerUrl: undefined, scrapeIntervalMs: 60_000, scrapeTimeoutMs: 1000, scrapeMaxBytes: 1 << 20,
    allowlist: DEFAULT_ALLOWLIST, hashKey: undefined, metrics: primary, log: captureLogger().log, now: () => new Date(),
  });
  const { samples } = await c.collect();
  const shipped = (name: string, labels: Record<string, string>) => samples.filter((s) => s.source === 'gateway' && s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  t.same(shipped('scheduler_gateway_connections_total', { port: '8786', role: 'worker' }).map((s) => s.value), [7], 'both workers\' connections, in one sample');
  t.same(shipped('scheduler_gateway_connections_total', { port: '8787', role: 'client' }).map((s) => s.value), [2]);
  t.same(shipped('scheduler_gateway_telemetry_spool_batches', {}).map((s) => s.value), [5], 'the primary\'s spool, not multiplied');
});
