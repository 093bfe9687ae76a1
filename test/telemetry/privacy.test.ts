import t from 'tap';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';
import { filterSamples, hashLabelValue } from '../../src/telemetry/privacy.js';
import { DEFAULT_ALLOWLIST, loadAllowlist, parseAllowlist, type Source } from '../../src/telemetry/allowlist.js';
import { join } from 'node:path';
import { GatewayError } from '../../src/errors/base.js';

const KEY = Buffer.alloc(32, 7);
const MARKER = 'secretmarker-7f3a';

type Row = [what: string, source: Source, text: string, expected: [name: string, labels: Record<string, string>, value: number | string][], hash?: boolean];

const TABLE: Row[] = [
  ['an allowlisted family with an allowlisted label passes unchanged', 'scheduler',
    '# TYPE dask_scheduler_tasks gauge\ndask_scheduler_tasks{state="memory"} 3\ndask_scheduler_tasks{state="erred"} 1\n',
    [['dask_scheduler_tasks', { state: 'erred' }, 1], ['dask_scheduler_tasks', { state: 'memory' }, 3]]],
  ['a family that is not allowlisted is dropped', 'scheduler',
    '# TYPE python_info gauge\npython_info{version="3.11.2"} 1\n# TYPE dask_scheduler_clients gauge\ndask_scheduler_clients 2\n',
    [['dask_scheduler_clients', {}, 2]]],
  ['task_prefix_name is dropped and the series that then coincide are summed', 'scheduler',
    `# TYPE dask_scheduler_prefix_state_totals_total counter\ndask_scheduler_prefix_state_totals_total{task_prefix_name="${MARKER}-f",state="memory"} 5\ndask_scheduler_prefix_state_totals_total{task_prefix_name="inc",state="memory"} 2\ndask_scheduler_prefix_state_totals_total{task_prefix_name="inc",state="erred"} 1\n`,
    [['dask_scheduler_prefix_state_totals_total', { state: 'erred' }, 1], ['dask_scheduler_prefix_state_totals_total', { state: 'memory' }, 7]]],
  ['with hashing, a dropped label becomes a keyed hash instead', 'scheduler',
    `# TYPE dask_scheduler_tasks_suspicious_total counter\ndask_scheduler_tasks_suspicious_total{task_prefix_name="${MARKER}"} 4\n`,
    [['dask_scheduler_tasks_suspicious_total', { task_prefix_name: hashLabelValue(KEY, MARKER) }, 4]], true],
  ['a max-aggregated family keeps the largest value', 'scheduler',
    '# TYPE dask_scheduler_tick_duration_maximum_seconds gauge\ndask_scheduler_tick_duration_maximum_seconds{worker="w1"} 0.2\ndask_scheduler_tick_duration_maximum_seconds{worker="w2"} 0.5\n',
    [['dask_scheduler_tick_duration_maximum_seconds', {}, 0.5]]],
  ['a gateway family keeps its code-chosen labels and drops the peer-chosen op', 'gateway',
    '# TYPE scheduler_gateway_policy_denials_total counter\nscheduler_gateway_policy_denials_total{role="client",op="run_function",rule="default"} 1\nscheduler_gateway_policy_denials_total{role="client",op="' + MARKER + '",rule="default"} 2\n',
    [['scheduler_gateway_policy_denials_total', { role: 'client', rule: 'default' }, 3]]],
  ['a certificate expiry keeps the soonest expiry, not a sum', 'gateway',
    '# TYPE scheduler_gateway_certificate_expiry_seconds gauge\nscheduler_gateway_certificate_expiry_seconds{certificate="gateway"} 900\nscheduler_gateway_certificate_expiry_seconds{certificate="ca"} 9000\n',
    [['scheduler_gateway_certificate_expiry_seconds', {}, 900]]],
  ['histogram buckets keep le and sum across dropped labels', 'gateway',
    '# TYPE scheduler_gateway_tls_handshake_duration_seconds histogram\nscheduler_gateway_tls_handshake_duration_seconds_bucket{le="0.1",port="8786",peer="a"} 1\nscheduler_gateway_tls_handshake_duration_seconds_bucket{le="0.1",port="8786",peer="b"} 2\nscheduler_gateway_tls_handshake_duration_seconds_count{port="8786"} 3\n',
    [['scheduler_gateway_tls_handshake_duration_seconds_bucket', { le: '0.1', port: '8786' }, 3], ['scheduler_gateway_tls_handshake_duration_seconds_count', { port: '8786' }, 3]]],
  ['a scheduler source cannot smuggle a gateway family', 'scheduler',
    '# TYPE scheduler_gateway_connections_total counter\nscheduler_gateway_connections_total{port="8786",role="client"} 1\n', []],
  ['non-finite values travel as strings', 'scheduler', 'dask_scheduler_clients NaN\n', [['dask_scheduler_clients', {}, 'NaN']]],
  ['_created samples never leave', 'gateway',
    '# TYPE scheduler_gateway_reloads_total counter\nscheduler_gateway_reloads_total{what="tls",result="ok"} 1\nscheduler_gateway_reloads_created{what="tls",result="ok"} 1700000000\n',
    [['scheduler_gateway_reloads_total', { what: 'tls', result: 'ok' }, 1]]],
];

for (const [what, source, text, expected, hash] of TABLE) {
  t.test(what, async (t) => {
    const out = filterSamples(source, parsePrometheusText(text).samples, { allowlist: DEFAULT_ALLOWLIST, hashKey: hash ? KEY : undefined });
    t.same(out.map((s) => [s.name, s.labels, s.value]), expected);
    t.notOk(JSON.stringify(out).includes(MARKER), 'the marker is not in the output');
    for (const s of out) t.equal(s.source, source);
  });
}

t.test('the hash is keyed, stable and short', async (t) => {
  t.equal(hashLabelValue(KEY, 'w1'), hashLabelValue(KEY, 'w1'));
  t.not(hashLabelValue(KEY, 'w1'), hashLabelValue(Buffer.alloc(32, 8), 'w1'));
  t.match(hashLabelValue(KEY, 'w1'), /^h:[0-9a-f]{16}$/);
});

t.test('an allowlist file replaces the default and is validated strictly', async (t) => {
  const a = parseAllowlist({ scheduler: { dask_scheduler_workers: { labels: ['state'], aggregate: 'max' } } }, 'x.yaml');
  t.same([...a.scheduler.keys()], ['dask_scheduler_workers']);
  t.equal(a.gateway.size, 0, 'an absent source ships nothing');
  const bad: [unknown, RegExp][] = [
    [[], /expected a mapping/],
    [{ workers: {} }, /unknown key "workers"/],
    [{ scheduler: { 'bad name': {} } }, /invalid metric family name/],
    [{ scheduler: { m: { labels: 'state' } } }, /expected a list of label names/],
    [{ scheduler: { m: { labels: ['ok', '1bad'] } } }, /expected a list of label names/],
    [{ scheduler: { m: { aggregate: 'avg' } } }, /expected sum, min or max/],
    [{ scheduler: { m: { lables: [] } } }, /unknown key "lables"/],
  ];
  for (const [doc, msg] of bad) {
    const e = t.throws(() => parseAllowlist(doc, 'x.yaml')) as GatewayError;
    t.equal(e.code, 'GW_TELEMETRY_BAD_ALLOWLIST');
    t.match(e.message, msg);
  }
});

t.test('--telemetry-allowlist reads YAML or JSON and names the file in every refusal', async (t) => {
  const dir = t.testdir({
    'list.yaml': 'scheduler:\n  dask_scheduler_tasks:\n    labels: [state]\n    reason: load\ngateway: {}\n',
    'list.json': JSON.stringify({ gateway: { scheduler_gateway_connections_total: { labels: ['port'] } } }),
    'broken.yaml': 'scheduler: [unclosed\n',
  });
  const y = loadAllowlist(join(dir, 'list.yaml'));
  t.same([...y.scheduler.keys()], ['dask_scheduler_tasks']);
  t.same(y.scheduler.get('dask_scheduler_tasks')!.labels, ['state']);
  t.same([...loadAllowlist(join(dir, 'list.json')).gateway.keys()], ['scheduler_gateway_connections_total']);
  t.equal(loadAllowlist(undefined), DEFAULT_ALLOWLIST);
  for (const [file, msg] of [['broken.yaml', /not YAML or JSON/], ['missing.yaml', /cannot read: ENOENT/]] as const) {
    const e = t.throws(() => loadAllowlist(join(dir, file))) as GatewayError;
    t.equal(e.code, 'GW_TELEMETRY_BAD_ALLOWLIST');
    t.match(e.message, new RegExp(file.replace('.', '\\.')));
    t.match(e.message, msg);
  }
});
