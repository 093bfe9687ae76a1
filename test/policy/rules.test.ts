import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validatePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS } from '../../src/policy/rules.js';
import { PolicyHolder, parsePolicyText } from '../../src/policy/holder.js';
import { decide } from '../../src/policy/decide.js';
import { GatewayError } from '../../src/errors/base.js';

t.test('the default policy validates', async (t) => {
  t.same(validatePolicy(DEFAULT_POLICY), []);
});

t.test('validation names every bad key', async (t) => {
  const doc = {
    version: 2,
    extra: 1,
    rules: {
      client: { allow: ['@client', 'identity', 'gather', 'foo'], deny: 'feed', pickled: [5], bogus: [] },
      wrker: { allow: [] },
      admin: ['*'],
      worker: { allow: ['@workers'] },
    },
  };
  const problems = validatePolicy(doc);
  for (const expected of [
    'extra: unknown key (expected version, rules)',
    'version: expected 1, got 2',
    'rules.client.allow[3]: unknown op "foo"',
    'rules.client.deny: expected a list',
    'rules.client.pickled[0]: expected an op name, "@group" or "*", got 5',
    'rules.client.bogus: unknown key (expected allow, deny, pickled)',
    'rules.wrker: unknown role (expected worker, client, admin)',
    'rules.admin: expected a mapping with allow, deny, pickled',
  ]) t.ok(problems.includes(expected), expected);
  t.ok(problems.some((p) => p.startsWith('rules.worker.allow[0]: unknown group "@workers"')), 'unknown group');
  t.equal(problems.length, 9, 'nothing else');
});

t.test('non-mapping documents are refused', async (t) => {
  t.same(validatePolicy(null), ['(top level): expected a mapping with "version" and "rules"']);
  t.same(validatePolicy({ version: 1 }), ['rules: expected a mapping of roles (client, worker, admin)']);
});

t.test('YAML and JSON parse to the same policy; errors carry every problem', async (t) => {
  const yaml = 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n';
  const json = JSON.stringify({ version: 1, rules: { client: { allow: ['@client'] } } });
  t.same(parsePolicyText(yaml, 'a.yaml'), parsePolicyText(json, 'a.json'));
  const err = t.throws(() => parsePolicyText('version: 1\nrules:\n  client:\n    allow: [foo, bar]\n', 'p.yaml')) as GatewayError;
  t.equal(err.code, 'GW_POLICY_INVALID');
  t.match(err.message, /p\.yaml.*rules\.client\.allow\[0\]: unknown op "foo".*rules\.client\.allow\[1\]: unknown op "bar"/);
  t.same(err.details.errors, ['rules.client.allow[0]: unknown op "foo"', 'rules.client.allow[1]: unknown op "bar"']);
  const dup = t.throws(() => parsePolicyText('version: 1\nversion: 1\nrules: {}\n', 'd.yaml')) as GatewayError;
  t.equal(dup.code, 'GW_POLICY_INVALID', 'duplicate keys are refused');
});

t.test('the holder refuses to start with a bad file and keeps the old policy when a reload fails', async (t) => {
  const dir = t.testdir({});
  const path = join(dir, 'policy.yaml');
  t.throws(() => new PolicyHolder(path, DEFAULT_SETTINGS), { code: 'GW_POLICY_UNREADABLE' });
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n');
  const holder = new PolicyHolder(path, DEFAULT_SETTINGS);
  t.equal(decide(holder.current(), 'client', 'feed').effect, 'deny', 'feed not in this file');
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: ["@client", feed, nope]\n');
  const bad = await holder.reload();
  t.equal(bad.ok, false);
  t.match(bad.error?.message, /rules\.client\.allow\[2\]: unknown op "nope"/);
  t.equal(decide(holder.current(), 'client', 'gather').effect, 'allow', 'old policy still in force');
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: ["@client", feed]\n');
  t.same(await holder.reload(), { ok: true });
  t.equal(decide(holder.current(), 'client', 'feed').effect, 'allow', 'new policy in force');
});

t.test('without a file the holder serves the built-in default', async (t) => {
  const holder = new PolicyHolder(undefined, DEFAULT_SETTINGS);
  t.equal(holder.current().source, '(built-in default)');
  t.equal(decide(holder.current(), 'client', 'gather').effect, 'allow');
  t.same(await holder.reload(), { ok: true });
});
