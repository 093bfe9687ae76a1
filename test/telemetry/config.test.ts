import t from 'tap';
import { parseDuration, telemetryKeys } from '../../src/config/keys/telemetry.js';
import { resolveSlice } from '../../src/config/load.js';
import { streamUrl, telemetrySettings } from '../../src/telemetry/telemetry.js';

t.test('durations accept ms, s, m, h and bare seconds, within bounds', async (t) => {
  const p = parseDuration(50, 3_600_000);
  t.same(['200ms', '15s', '2m', '1h', '15', 1.5].map((v) => p(v, 'k')), [200, 15_000, 120_000, 3_600_000, 15_000, 1500]);
  for (const bad of ['10ms', '2h', 'soon', '-1s', '', '1d']) t.throws(() => p(bad, '--telemetry-interval'), { code: 'GW_CONFIG_INVALID', message: /--telemetry-interval/ }, bad);
});

t.test('defaults: loopback metrics, no control plane, 15 s intervals, 256 MiB and 30 days of spool', async (t) => {
  const config = resolveSlice(telemetryKeys, { flags: {}, env: {} });
  const s = telemetrySettings(config, { stateDir: '/state', dashboardUpstream: { host: '127.0.0.1', port: 8788 } });
  t.same(s.metricsListen, { host: '127.0.0.1', port: 9464 });
  t.equal(s.controlPlane, undefined);
  t.equal(s.intervalMs, 15_000);
  t.equal(s.scrapeIntervalMs, 15_000);
  t.equal(s.spoolDir, '/state/spool');
  t.equal(s.spoolMaxBytes, 256 * 1024 * 1024);
  t.equal(s.spoolMaxAgeMs, 30 * 86_400_000);
  t.equal(s.schedulerUrl?.href, 'http://127.0.0.1:8788/metrics', 'derived from the dashboard upstream');
});

t.test('the control plane must be https or wss, and maps to wss on 443 with the stream path', async (t) => {
  t.throws(() => resolveSlice(telemetryKeys, { flags: { 'control-plane': 'http://cp.example.com' }, env: {} }), { message: /--control-plane: expected a https: or wss: URL/ });
  const c = resolveSlice(telemetryKeys, { flags: {}, env: { SCHEDULER_GATEWAY_CONTROL_PLANE: 'https://cp.example.com' } });
  t.equal(streamUrl(c.controlPlane)?.href, 'wss://cp.example.com/v1/stream');
  t.equal(streamUrl(new URL('https://cp.example.com:8443/custom'))?.href, 'wss://cp.example.com:8443/custom');
});
