/** Truth tables for decide(): role x op -> decision, under the default policy and its settings. */
import t from 'tap';
import { decide } from '../../src/policy/decide.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS, type PolicyDocument, type PolicySettings } from '../../src/policy/rules.js';
import { OP_GROUPS } from '../../src/policy/catalog.js';
import type { Role } from '../../src/pki/identity.js';

const policy = (settings: Partial<PolicySettings> = {}, doc: PolicyDocument = DEFAULT_POLICY) => compilePolicy(doc, { ...DEFAULT_SETTINGS, ...settings }, 'test');
const verdict = (p: ReturnType<typeof policy>, role: Role, op: string, pickled = false) => {
  const d = decide(p, role, op, { pickled });
  return d.effect === 'allow' ? 'allow' : `deny:${d.code}`;
};

t.test('default policy truth table', async (t) => {
  const p = policy();
  // [op, client, worker, admin]
  const table: [string, string, string, string][] = [
    ['register-client', 'allow', 'allow', 'allow'],
    ['update-graph-hlg', 'allow', 'allow', 'allow'],
    ['gather', 'allow', 'allow', 'allow'],
    ['scatter', 'allow', 'allow', 'allow'],
    ['identity', 'allow', 'allow', 'allow'],
    ['feed', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['close', 'allow', 'allow', 'allow'],
    ['close-stream', 'allow', 'allow', 'allow'],
    ['register-worker', 'deny:GW_POLICY_DENIED', 'allow', 'allow'],
    ['register_nanny', 'deny:GW_POLICY_DENIED', 'allow', 'allow'],
    ['heartbeat_worker', 'deny:GW_POLICY_DENIED', 'allow', 'allow'],
    ['unregister', 'deny:GW_POLICY_DENIED', 'allow', 'allow'],
    ['task-finished', 'deny:GW_POLICY_DENIED', 'allow', 'allow'],
    ['run_function', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['register_scheduler_plugin', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['broadcast', 'allow', 'allow', 'allow'],
    ['proxy', 'allow', 'allow', 'allow'],
    ['terminate', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['restart', 'allow', 'allow', 'allow'],
    ['get_cluster_state', 'allow', 'allow', 'allow'],
    ['register_nanny_plugin', 'allow', 'allow', 'allow'],
    ['dump_cluster_state_to_url', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['connection_stream', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['register_worker_plugin', 'allow', 'allow', 'allow'],
    ['dump_state', 'deny:GW_POLICY_DENIED', 'deny:GW_POLICY_DENIED', 'allow'],
    ['no-such-op', 'deny:GW_POLICY_UNKNOWN_OP', 'deny:GW_POLICY_UNKNOWN_OP', 'allow'],
  ];
  for (const [op, client, worker, admin] of table) {
    t.equal(verdict(p, 'client', op), client, `client ${op}`);
    t.equal(verdict(p, 'worker', op), worker, `worker ${op}`);
    t.equal(verdict(p, 'admin', op), admin, `admin ${op}`);
  }
});

t.test('every admin-group op is refused to clients and workers, every client-group op allowed to clients', async (t) => {
  const p = policy();
  for (const op of OP_GROUPS.admin) {
    t.equal(decide(p, 'client', op).effect, 'deny', `client ${op}`);
    t.equal(decide(p, 'worker', op).effect, 'deny', `worker ${op}`);
  }
  for (const op of OP_GROUPS.client) t.equal(decide(p, 'client', op).effect, 'allow', `client ${op}`);
});

t.test('worker-client-ops off: workers lose client ops but keep the worker group', async (t) => {
  const p = policy({ workerClientOps: false });
  t.equal(verdict(p, 'worker', 'register-client'), 'deny:GW_POLICY_DENIED');
  t.equal(verdict(p, 'worker', 'update-graph-hlg'), 'deny:GW_POLICY_DENIED');
  t.equal(verdict(p, 'worker', 'register-worker'), 'allow');
  t.equal(verdict(p, 'worker', 'identity'), 'allow', 'identity is also a worker op');
  const d = decide(p, 'worker', 'gather');
  t.match(d, { effect: 'deny', rule: 'default-deny', reason: /worker-client-ops is off/ });
});

t.test('the rule that decided is named', async (t) => {
  const p = policy();
  t.match(decide(p, 'client', 'gather'), { effect: 'allow', rule: 'rules.client.allow[0] @client' });
  t.match(decide(p, 'client', 'broadcast'), { effect: 'allow', rule: 'rules.client.allow[1] @client-run' });
  t.match(decide(p, 'client', 'feed'), { effect: 'deny', rule: 'default-deny' });
  t.match(decide(p, 'worker', 'gather'), { effect: 'allow', rule: 'rules.client.allow[0] @client' });
  t.match(decide(p, 'admin', 'run_function'), { effect: 'allow', rule: 'rules.admin.allow[0]' });
  t.match(decide(p, 'client', 'run_function'), { effect: 'deny', rule: 'default-deny' });
  t.match(decide(p, 'client', 'zzz'), { effect: 'deny', rule: 'unknown-ops' });
});

t.test('unknown ops follow the setting for roles without "*"', async (t) => {
  t.match(decide(policy({ unknownOps: 'allow' }), 'client', 'new-op'), { effect: 'allow', audit: false, rule: 'unknown-ops' });
  t.match(decide(policy({ unknownOps: 'audit' }), 'worker', 'new-op'), { effect: 'allow', audit: true });
  t.match(decide(policy({ unknownOps: 'allow' }), 'client', 'run_function'), { effect: 'deny' }, 'known admin ops stay denied');
});

t.test('a __Pickled__ frame 0 needs a pickled entry for its op', async (t) => {
  const p = policy();
  t.equal(verdict(p, 'client', 'update-graph', true), 'allow', 'Dask >= 2023.4 graph submission');
  t.equal(verdict(p, 'client', 'gather', true), 'deny:GW_POLICY_PICKLED');
  t.equal(verdict(p, 'client', 'close', true), 'deny:GW_POLICY_PICKLED', 'even control ops: unpickling happens before dispatch');
  t.equal(verdict(p, 'worker', 'update-graph', true), 'allow', 'through worker-client-ops, with the client pickled list');
  t.equal(verdict(p, 'worker', 'heartbeat_worker', true), 'deny:GW_POLICY_PICKLED');
  t.equal(verdict(p, 'admin', 'anything', true), 'allow');
  t.match(decide(p, 'worker', 'heartbeat_worker', { pickled: true }), { rule: 'rules.worker.pickled' });
});

t.test('deny wins over allow, for the role and for worker-client-ops', async (t) => {
  const doc: PolicyDocument = { version: 1, rules: { client: { allow: ['@client', 'feed'], deny: ['feed', 'rebalance'] }, worker: { allow: ['@worker'] }, admin: { allow: ['*'], deny: ['terminate'] } } };
  const p = policy({}, doc);
  t.equal(verdict(p, 'client', 'feed'), 'deny:GW_POLICY_DENIED');
  t.equal(verdict(p, 'worker', 'rebalance'), 'deny:GW_POLICY_DENIED');
  t.equal(verdict(p, 'admin', 'terminate'), 'deny:GW_POLICY_DENIED');
  t.match(decide(p, 'client', 'feed'), { rule: 'rules.client.deny[0]' });
});

t.test('a role missing from the file may send only control ops', async (t) => {
  const p = policy({}, { version: 1, rules: { admin: { allow: ['*'] } } });
  t.equal(verdict(p, 'client', 'close'), 'allow');
  t.equal(verdict(p, 'client', 'identity'), 'deny:GW_POLICY_DENIED');
});

t.test('scheduler and gateway identities may not send ops at all', async (t) => {
  t.equal(verdict(policy(), 'scheduler', 'identity'), 'deny:GW_POLICY_ROLE');
  t.equal(verdict(policy(), 'gateway', 'identity'), 'deny:GW_POLICY_ROLE');
});
