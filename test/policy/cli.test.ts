import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { main } from '../../src/cli/policy.js';

async function cli(argv: string[], cwd = process.cwd()): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli('policy', main, argv, { cwd });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

t.test('policy check accepts a valid file and names every bad key of an invalid one (exit 2)', async (t) => {
  const dir = t.testdir({
    'good.yaml': 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n    deny: [feed]\n  admin:\n    allow: ["*"]\n',
    'bad.json': JSON.stringify({ version: 1, rules: { client: { allow: ['@client', 'identity', 'gather', 'foo'] }, ops: {} } }),
  });
  const good = await cli(['check', 'good.yaml'], dir);
  t.equal(good.code, 0);
  t.match(good.out, /good\.yaml: valid/);
  const bad = await cli(['check', 'bad.json'], dir);
  t.equal(bad.code, 2);
  t.match(bad.err, /bad\.json: rules\.client\.allow\[3\]: unknown op "foo"/);
  t.match(bad.err, /bad\.json: rules\.ops: unknown role/);
  const missing = await cli(['check', 'nope.yaml'], dir);
  t.equal(missing.code, 2);
  t.match(missing.err, /cannot read policy .*nope\.yaml: ENOENT/);
});

t.test('policy explain prints the decision and the rule; exit 0 allow, 1 deny', async (t) => {
  const allow = await cli(['explain', '--role', 'client', '--op', 'update-graph-hlg']);
  t.equal(allow.code, 0);
  t.match(allow.out, /^allow: client may send update-graph-hlg\n  rule: rules\.client\.allow\[0\] @client/);
  const deny = await cli(['explain', '--role', 'client', '--op', 'run_function']);
  t.equal(deny.code, 1);
  t.match(deny.out, /^deny: run_function is not allowed for client \[GW_POLICY_DENIED\]\n  rule: default-deny\n  groups: @admin/);
  const worker = await cli(['explain', '--role', 'worker', '--op', 'gather', '--worker-client-ops', 'false']);
  t.equal(worker.code, 1);
  t.match(worker.out, /worker-client-ops is off/);
  const pickled = await cli(['explain', '--role', 'client', '--op', 'gather', '--pickled']);
  t.match(pickled.out, /GW_POLICY_PICKLED/);
  const unknown = await cli(['explain', '--role', 'client', '--op', 'frobnicate', '--unknown-ops', 'audit']);
  t.equal(unknown.code, 0);
  t.match(unknown.out, /with an audit line[\s\S]*not a known Dask operation/);
  const dir = t.testdir({ 'p.yaml': 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n    deny: [gather]\n' });
  const fromFile = await cli(['explain', '--role', 'client', '--op', 'gather', '--file', 'p.yaml'], dir);
  t.equal(fromFile.code, 1);
  t.match(fromFile.out, /rule: rules\.client\.deny\[0\]/);
  t.equal((await cli(['explain', '--op', 'gather'])).code, 2, 'missing --role');
});

t.test('policy show prints the default policy as a markdown table, or as YAML', async (t) => {
  const table = await cli(['show']);
  t.equal(table.code, 0);
  t.match(table.out, /\| op \| groups \| client \| worker \| admin \|/);
  t.match(table.out, /\| `run_function` \| @admin \| deny \| deny \| allow \(\+pickled\) \|/);
  t.match(table.out, /\| `update-graph` \| @client \| allow \(\+pickled\) \| allow \(\+pickled\) \| allow \(\+pickled\) \|/);
  t.match(table.out, /\| `register-worker` \| @worker \| deny \| allow \| allow \(\+pickled\) \|/);
  t.match(table.out, /\| \(any other op\) \| \| deny \| deny \| allow \(\+pickled\) \|/);
  const yaml = await cli(['show', '--yaml']);
  t.match(yaml.out, /^version: 1\nrules:\n  client:\n    allow:\n      - "@client"\n      - "@client-run"\n    deny: \[\]\n    pickled:\n      - update-graph/);
});
