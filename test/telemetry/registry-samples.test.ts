import t from 'tap';
import { Counter, Gauge, Registry } from 'prom-client';
import { createMetrics } from '../../src/runtime/metrics.js';
import { registrySamples } from '../../src/telemetry/registry-samples.js';
import { parsePrometheusText, type Sample } from '../../src/telemetry/prom-parse.js';
import { filterSamples } from '../../src/telemetry/privacy.js';
import { DEFAULT_ALLOWLIST, type Allowlist, type FamilyRule } from '../../src/telemetry/allowlist.js';
import { batchMessage, encodeBatch } from '../../src/telemetry/collector.js';

/** Everything a sample carries, label order included (it is the order a batch's JSON writes them in). */
const exact = (samples: readonly Sample[]) => samples.map((s) => ({ ...s, labels: Object.entries(s.labels) }));

/** The gateway's registry with series in every shape: labelled counters, histograms with observations, odd label values, NaN and infinities. */
function populated() {
  const m = createMetrics({ defaultMetrics: false });
  m.connectionsTotal.inc({ port: '8786', role: 'worker' }, 3);
  m.connectionsTotal.inc({ port: '8787', role: 'client' });
  m.handshakeSeconds.observe({ port: '8786' }, 0.004);
  m.handshakeSeconds.observe({ port: '8786' }, 20);
  m.handshakeSeconds.observe({ port: '8787' }, 0.2);
  m.policyDenialsTotal.inc({ role: 'client', op: 'we"ird\\op\nname', rule: 'r{1}=,' });
  m.certificateExpirySeconds.set({ certificate: 'gateway' }, 1.5e9);
  m.certificateExpirySeconds.set({ certificate: 'ca' }, -0.125);
  m.memoryBudgetUsedBytes.set(NaN);
  m.memoryBudgetLimitBytes.set(Infinity);
  m.streamLagSeconds.set(-Infinity);
  m.spoolBytes.set(1e-7);
  return m;
}

t.test('the registry read as structures gives exactly the samples its text gave', async (t) => {
  const { registry } = populated();
  const fromText = parsePrometheusText(await registry.metrics()).samples;
  const fromRegistry = await registrySamples(registry);
  t.ok(fromText.length > 40, `${fromText.length} samples compared`);
  t.strictSame(exact(fromRegistry), exact(fromText));
  t.ok(fromRegistry.some((s) => s.name === 'scheduler_gateway_tls_handshake_duration_seconds_bucket' && s.labels['le'] === '+Inf'), 'histogram buckets, +Inf included');
  t.ok(fromRegistry.some((s) => s.name === 'scheduler_gateway_tls_handshake_duration_seconds_sum' && s.family === 'scheduler_gateway_tls_handshake_duration_seconds'), 'a histogram\'s _sum names its family');
  t.ok(fromRegistry.some((s) => s.labels['op'] === 'we"ird\\op\nname'), 'escaped label values round-trip');
  t.ok(fromRegistry.some((s) => Number.isNaN(s.value)), 'NaN');
  t.equal(Object.getPrototypeOf(fromRegistry[0]!.labels), null, 'labels are prototype-less, as the parser makes them');
});

t.test('default metrics (numeric label values, collect callbacks) have the same series and types both ways', async (t) => {
  const { registry } = createMetrics();
  const series = (samples: readonly Sample[]) => samples.map((s) => ({ family: s.family, name: s.name, type: s.type, labels: Object.entries(s.labels) }));
  const fromText = parsePrometheusText(await registry.metrics()).samples;
  const fromRegistry = await registrySamples(registry);
  // Values move between two reads (CPU, memory); which series exist and how they are named does not.
  t.strictSame(series(fromRegistry), series(fromText));
  t.ok(fromRegistry.some((s) => s.name === 'scheduler_gateway_nodejs_version_info' && typeof s.labels['major'] === 'string'), 'numeric labels become text');
});

t.test('a batch built from the registry is byte for byte the batch the text path built', async (t) => {
  const { registry } = populated();
  const text = await registry.metrics();
  const everything = (labels: (s: Sample) => string[]): Allowlist => {
    const rules = new Map<string, FamilyRule>();
    for (const s of parsePrometheusText(text).samples) rules.set(s.family, { labels: labels(s), aggregate: 'sum' });
    return { scheduler: new Map(), gateway: rules };
  };
  const allowlists: [string, Allowlist][] = [
    ['the default allowlist', DEFAULT_ALLOWLIST],
    ['every family, every label', everything((s) => Object.keys(s.labels))],
    ['every family, no label', everything(() => [])],
  ];
  for (const [what, allowlist] of allowlists) {
    for (const hashKey of [undefined, Buffer.alloc(32, 7)]) {
      const batch = async (samples: readonly Sample[]) => encodeBatch(batchMessage('c1', 9, new Date(0), {
        samples: filterSamples('gateway', samples, { allowlist, hashKey }), scheduler: { ok: false, error: 'not configured' },
      }), false).toString('utf8');
      const expected = await batch(parsePrometheusText(text).samples);
      t.equal(await batch(await registrySamples(registry)), expected, `${what}, ${hashKey ? 'hashed' : 'dropped'} labels`);
      t.ok(expected.length > 100, 'the batch is not empty');
    }
  }
});

t.test('a metric type the text format does not know is refused, not shipped mislabelled', async (t) => {
  const registry = new Registry();
  const g = new Gauge({ name: 'g', help: 'h', registers: [registry] });
  g.set(1);
  new Counter({ name: 'c_total', help: 'h', registers: [registry] }).inc();
  t.same((await registrySamples(registry)).map((s) => s.type), ['gauge', 'counter']);
  (g as unknown as { type: string }).type = 'info';
  await t.rejects(registrySamples(registry), /unknown type info/);
});
