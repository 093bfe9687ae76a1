import t from 'tap';
import { createMetrics, type GatewayMetrics } from '../../src/runtime/metrics.js';
import { aggregatedReader, type MetricsJson } from '../../src/runtime/metrics-aggregate.js';
import { registrySamples } from '../../src/telemetry/registry-samples.js';
import { parsePrometheusText, type Sample } from '../../src/telemetry/prom-parse.js';

const peersOf = (...ms: GatewayMetrics[]) => async (): Promise<MetricsJson[]> => Promise.all(ms.map((m) => m.registry.getMetricsAsJSON()));

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} series match ${name} ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** A primary (8787, spool, certificates) and a data-plane worker (8786), each with its own registry. */
function twoProcesses() {
  const primary = createMetrics({ defaultMetrics: false });
  const worker = createMetrics({ defaultMetrics: false });
  primary.connectionsTotal.inc({ port: '8787', role: 'client' }, 2);
  primary.connectionsTotal.inc({ port: '8786', role: 'worker' }, 1);
  worker.connectionsTotal.inc({ port: '8786', role: 'worker' }, 5);
  worker.connectionsTotal.inc({ port: '8786', role: 'client' }, 7);
  primary.connectionsActive.set({ port: '8787', role: 'client' }, 1);
  worker.connectionsActive.set({ port: '8786', role: 'worker' }, 3);
  for (const s of [0.004, 0.2, 20]) primary.handshakeSeconds.observe({ port: '8786' }, s);
  for (const s of [0.004, 0.004, 0.03]) worker.handshakeSeconds.observe({ port: '8786' }, s);
  primary.connectionLimit.set({ port: '8787' }, 100);
  primary.connectionLimit.set({ port: '8786' }, 500);
  worker.connectionLimit.set({ port: '8786' }, 500);
  primary.memoryBudgetLimitBytes.set(64);
  worker.memoryBudgetLimitBytes.set(64);
  primary.spoolBatches.set(9);
  primary.certificateExpirySeconds.set({ certificate: 'gateway' }, 1000);
  primary.certificateExpirySeconds.set({ certificate: 'ca' }, -5);
  primary.credentialsExpirationSeconds.set({ provider: 'aws' }, 1.7e9);
  return { primary, worker };
}

t.test('the combined text is valid Prometheus text, one family each, with the sums', async (t) => {
  const { primary, worker } = twoProcesses();
  const reader = aggregatedReader(primary.registry, peersOf(worker));
  const text = await reader.metrics();
  // The parser refuses a second TYPE line for a family and a series written twice.
  const { samples, families } = parsePrometheusText(text);
  const typeLines = text.split('\n').filter((l) => l.startsWith('# TYPE '));
  t.equal(typeLines.length, new Set(typeLines).size, 'no family is declared twice');
  t.equal(families.size, (await primary.registry.getMetricsAsJSON()).length, 'every family of a process, once');
  t.equal(reader.contentType, primary.registry.contentType);

  t.equal(value(samples, 'scheduler_gateway_connections_total', { port: '8786', role: 'worker' }), 6, 'a series both processes have is summed');
  t.equal(value(samples, 'scheduler_gateway_connections_total', { port: '8786', role: 'client' }), 7, 'a series of one process is kept');
  t.equal(value(samples, 'scheduler_gateway_connections_total', { port: '8787', role: 'client' }), 2);
  t.equal(value(samples, 'scheduler_gateway_connections_active', { port: '8786', role: 'worker' }), 3);
  t.equal(value(samples, 'scheduler_gateway_connection_limit', { port: '8786' }), 1000, 'each process\'s share of a limit adds up to the limit in force');
  t.equal(value(samples, 'scheduler_gateway_memory_budget_limit_bytes'), 128);
  t.equal(value(samples, 'scheduler_gateway_telemetry_spool_batches'), 9, 'a gauge only the primary sets: its value plus the others\' zeros');
  t.equal(value(samples, 'scheduler_gateway_certificate_expiry_seconds', { certificate: 'ca' }), -5, 'an expiry only one process sets keeps its value, negative included');
  t.equal(value(samples, 'scheduler_gateway_credentials_expiration_timestamp_seconds', { provider: 'aws' }), 1.7e9);
});

t.test('histograms combine bucket by bucket, with their sums and counts', async (t) => {
  const { primary, worker } = twoProcesses();
  const { samples } = parsePrometheusText(await aggregatedReader(primary.registry, peersOf(worker)).metrics());
  const h = 'scheduler_gateway_tls_handshake_duration_seconds';
  const bucket = (le: string) => value(samples, `${h}_bucket`, { port: '8786', le });
  t.equal(bucket('0.001'), 0);
  t.equal(bucket('0.005'), 3, 'one observation of the primary, two of the worker');
  t.equal(bucket('0.05'), 4);
  t.equal(bucket('0.25'), 5);
  t.equal(bucket('10'), 5);
  t.equal(bucket('+Inf'), 6);
  t.equal(value(samples, `${h}_count`, { port: '8786' }), 6);
  t.equal(Math.round(value(samples, `${h}_sum`, { port: '8786' })! * 1000), Math.round((0.004 + 0.2 + 20 + 0.004 + 0.004 + 0.03) * 1000));
  const buckets = samples.filter((s) => s.name === `${h}_bucket` && s.labels['port'] === '8786').map((s) => s.value);
  t.same(buckets, [...buckets].sort((a, b) => a - b), 'buckets stay cumulative');
});

t.test('an expiry every process sets is the soonest, never a sum', async (t) => {
  const { primary, worker } = twoProcesses();
  worker.certificateExpirySeconds.set({ certificate: 'gateway' }, 400); // a process still serving the old certificate
  worker.certificateExpirySeconds.set({ certificate: 'ca' }, -5);
  const samples = await registrySamples(aggregatedReader(primary.registry, peersOf(worker)));
  t.equal(value(samples, 'scheduler_gateway_certificate_expiry_seconds', { certificate: 'gateway' }), 400);
  t.equal(value(samples, 'scheduler_gateway_certificate_expiry_seconds', { certificate: 'ca' }), -5);
});

t.test('with no peer the reading is the local registry\'s, as text and as structures', async (t) => {
  const { primary } = twoProcesses();
  const reader = aggregatedReader(primary.registry, async () => []);
  t.equal(await reader.metrics(), await primary.registry.metrics());
  t.strictSame(await registrySamples(reader), await registrySamples(primary.registry));
});

t.test('default metrics: the series of one process, counted once, with the start time kept', async (t) => {
  const a = createMetrics();
  const b = createMetrics();
  const c = createMetrics();
  const series = (samples: readonly Sample[]) => samples.map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels))}`);
  const alone = await registrySamples(a.registry);
  const three = await registrySamples(aggregatedReader(a.registry, peersOf(b, c)));
  t.strictSame(series(three), series(alone), 'the same series as one process: none lost, none repeated');
  t.ok(value(three, 'scheduler_gateway_process_start_time_seconds')! > 1.7e9, 'the start time prom-client would omit is there');
  t.equal(value(three, 'scheduler_gateway_process_start_time_seconds'), value(alone, 'scheduler_gateway_process_start_time_seconds'));
  t.ok(value(three, 'scheduler_gateway_process_resident_memory_bytes')! > 2 * value(alone, 'scheduler_gateway_process_resident_memory_bytes')!, 'memory is the sum over processes');
  t.equal(three.filter((s) => s.name === 'scheduler_gateway_nodejs_version_info').length, 1);
  parsePrometheusText(await aggregatedReader(a.registry, peersOf(b, c)).metrics());
});

t.test('a family only a peer has is included', async (t) => {
  const primary = createMetrics({ defaultMetrics: false });
  const worker = createMetrics();
  worker.bytesTotal.inc({ port: '8786', direction: 'in' }, 42);
  const { samples, families } = parsePrometheusText(await aggregatedReader(primary.registry, peersOf(worker)).metrics());
  t.ok(families.has('scheduler_gateway_process_cpu_seconds_total'));
  t.equal(value(samples, 'scheduler_gateway_bytes_total', { port: '8786', direction: 'in' }), 42);
});

t.test('every reading asks the peers again', async (t) => {
  const { primary, worker } = twoProcesses();
  let asked = 0;
  const reader = aggregatedReader(primary.registry, async () => { asked++; return peersOf(worker)(); });
  const read = async () => value(await registrySamples(reader), 'scheduler_gateway_connections_total', { port: '8786', role: 'client' });
  t.equal(await read(), 7);
  worker.connectionsTotal.inc({ port: '8786', role: 'client' });
  t.equal(await read(), 8);
  t.equal(asked, 2);
});
