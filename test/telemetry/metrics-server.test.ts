import t from 'tap';
import { request } from 'node:http';
import { startMetricsServer, renderMetrics } from '../../src/telemetry/metrics-server.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';
import { silentLogger } from '../../src/log/logger.js';
import { GatewayError } from '../../src/errors/base.js';
import { aggregatedReader, type MetricsJson } from '../../src/runtime/metrics-aggregate.js';
import { captureLogger } from './helpers.js';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('serves the registry in Prometheus text format on loopback', async (t) => {
  const metrics = createMetrics();
  metrics.connectionsTotal.inc({ port: '8786', role: 'client' }, 3);
  const server = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 }, unsafePublic: false, reader: metrics.registry, log: silentLogger });
  t.teardown(() => server.close());
  const res = await get(server.address.port, '/metrics');
  t.equal(res.status, 200);
  t.match(res.type, /^text\/plain; version=0\.0\.4/);
  const parsed = parsePrometheusText(res.body);
  t.equal(parsed.samples.find((s) => s.name === 'scheduler_gateway_connections_total' && s.labels['role'] === 'client')?.value, 3, 'the text parses with our own strict parser');
  t.ok(parsed.families.has('scheduler_gateway_process_cpu_seconds_total'), 'process metrics are included');
  t.equal((await get(server.address.port, '/other')).status, 404);
  t.equal((await get(server.address.port, '/metrics', 'POST')).status, 405);
  t.equal((await get(server.address.port, '/metrics', 'HEAD')).status, 200);
});

t.test('renderMetrics gives the registry\'s text and its content type', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const r = await renderMetrics(metrics.registry);
  t.match(r.contentType, /text\/plain/);
  t.match(r.body, /# TYPE scheduler_gateway_connections_total counter/);
});

t.test('refuses a non-loopback address unless --metrics-listen-unsafe-public', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const e = await startMetricsServer({ listen: { host: '0.0.0.0', port: 0 }, unsafePublic: false, reader: metrics.registry, log: silentLogger }).catch((x: unknown) => x) as GatewayError;
  t.type(e, GatewayError);
  t.equal(e.code, 'GW_TELEMETRY_BAD_ENDPOINT');
  t.match(e.message, /--metrics-listen-unsafe-public/);
  const ok = await startMetricsServer({ listen: { host: '0.0.0.0', port: 0 }, unsafePublic: true, reader: metrics.registry, log: silentLogger });
  await ok.close();
  t.pass('with the opt-in it listens');
});

t.test('a port in use is a clear startup error', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const a = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 }, unsafePublic: false, reader: metrics.registry, log: silentLogger });
  t.teardown(() => a.close());
  const e = await startMetricsServer({ listen: { host: '127.0.0.1', port: a.address.port }, unsafePublic: false, reader: metrics.registry, log: silentLogger }).catch((x: unknown) => x) as GatewayError;
  t.match(e.message, /EADDRINUSE/);
});


t.test('a reading of several processes that cannot be combined answers 500 with a log line, and the next one is served', async (t) => {
  const primary = createMetrics({ defaultMetrics: false });
  const worker = createMetrics({ defaultMetrics: false });
  worker.connectionsTotal.inc({ port: '8786', role: 'worker' }, 4);
  let peer: () => Promise<MetricsJson> = async () => [{ name: 'x', help: 'h', type: 'gauge', aggregator: 'median', values: [] }] as unknown as MetricsJson;
  const cap = captureLogger();
  const server = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 }, unsafePublic: false, reader: aggregatedReader(primary.registry, async () => [await peer()]), log: cap.log });
  t.teardown(() => server.close());
  const bad = await get(server.address.port, '/metrics');
  t.equal(bad.status, 500);
  t.equal(bad.body, 'error\n', 'nothing of the reading leaks into the answer');
  t.ok(cap.lines().some((l) => l['event'] === 'telemetry_metrics_render_failed' && String((l['error'] as { message?: string }).message).includes('median')), 'the reason is logged');
  peer = () => worker.registry.getMetricsAsJSON();
  const good = await get(server.address.port, '/metrics');
  t.equal(good.status, 200);
  t.equal(parsePrometheusText(good.body).samples.find((s) => s.name === 'scheduler_gateway_connections_total')?.value, 4);
});
