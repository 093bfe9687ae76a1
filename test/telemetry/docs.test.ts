import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ALLOWLIST, SOURCES } from '../../src/telemetry/allowlist.js';
import { telemetryKeys } from '../../src/config/keys/telemetry.js';
import { createMetrics } from '../../src/runtime/metrics.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/telemetry-protocol.md', import.meta.url)), 'utf8');

t.test('"What leaves the cluster" lists exactly the default allowlist: families, labels, aggregates', async (t) => {
  const documented = [...DOC.matchAll(/^> \| (scheduler|gateway) \| `([^`]+)` \|\s*([^|]*?)\s*\|\s*(sum|min|max)\s*\|/gm)]
    .map((m) => `${m[1]} ${m[2]} [${m[3]!.split(',').map((s) => s.trim()).filter(Boolean).join(',')}] ${m[4]}`).sort();
  const code = SOURCES.flatMap((src) => [...DEFAULT_ALLOWLIST[src]].map(([name, r]) => `${src} ${name} [${r.labels.join(',')}] ${r.aggregate}`)).sort();
  t.same(documented, code);
});

t.test('every gateway family in the default allowlist is a metric the gateway declares', async (t) => {
  const declared = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  for (const name of DEFAULT_ALLOWLIST.gateway.keys()) t.ok(declared.has(name), name);
});

t.test('the configuration table documents every telemetry flag with its env variable', async (t) => {
  for (const k of Object.values(telemetryKeys)) {
    t.match(DOC, new RegExp('\\| `--' + k.flag + '[ `].*\\| `' + k.env + '` \\|'), `--${k.flag}`);
  }
});
