import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { policyForTerminator, limitsFromConfig, settingsFromConfig } from '../../src/policy/setup.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { resolveSlice } from '../../src/config/load.js';
import { policyKeys } from '../../src/config/keys/policy.js';
import type { Component } from '../../src/runtime/context.js';
import type { InspectorFactory } from '../../src/terminator/inspector.js';
import { HANDSHAKE, msg } from '../wire/wire-helpers.js';
import { waitFor } from '../helpers/wait.js';

function ctx(flags: Record<string, string | boolean>) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ stream: new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }) });
  return { config: resolveSlice(policyKeys, { flags, env: {} }), log, metrics: createMetrics({ defaultMetrics: false }), lines };
}

const start = (c: ReturnType<typeof ctx>, injected: InspectorFactory | undefined, components: Component[], pollMs?: number) => policyForTerminator(c, c.config, injected, components, pollMs);

const peer = { identity: { cluster: 'c', role: 'client' as const, name: 'a' }, serial: '01', remoteAddress: '127.0.0.1', sanHosts: [], connectionId: 'x' };
const gatherDenied = (f: InspectorFactory) => {
  let refused = false;
  const insp = f(peer, { refused: () => (refused = true) });
  insp.fromPeer(msg(HANDSHAKE), [], []);
  return insp.fromPeer(msg({ op: 'gather', keys: [] }), [], []) !== null || refused;
};

t.test('config keys resolve to settings and limits, with the documented defaults', async (t) => {
  const c = resolveSlice(policyKeys, { flags: {}, env: {} });
  t.same(settingsFromConfig(c), { workerClientOps: true, unknownOps: 'deny', pinWorkerName: false });
  t.same(limitsFromConfig(c), { maxFrames: 1_000_000, maxFrame0Bytes: 64 * 1024 * 1024, maxMessageBytes: 16 * 2 ** 30 });
  const e = resolveSlice(policyKeys, { flags: {}, env: { SCHEDULER_GATEWAY_UNKNOWN_OPS: 'audit', SCHEDULER_GATEWAY_WORKER_CLIENT_OPS: 'false', SCHEDULER_GATEWAY_MAX_FRAMES: '10' } });
  t.same(settingsFromConfig(e), { workerClientOps: false, unknownOps: 'audit', pinWorkerName: false });
  t.equal(limitsFromConfig(e).maxFrames, 10);
  t.throws(() => resolveSlice(policyKeys, { flags: { 'unknown-ops': 'maybe' }, env: {} }), /--unknown-ops: expected one of deny, allow, audit/);
});

t.test('inspection off gives the terminator no inspector (pure forwarding)', async (t) => {
  const components: Component[] = [];
  t.same(start(ctx({ inspect: 'false' }), undefined, components), {});
  t.same(components, []);
});

t.test('an injected inspector wins; an invalid policy file stops the start with named errors', async (t) => {
  const injected: InspectorFactory = () => ({ fromPeer: () => null, fromScheduler: () => null, bufferedBytes: 0 });
  t.equal(start(ctx({}), injected, []).inspector, injected);
  const dir = t.testdir({ 'bad.yaml': 'version: 1\nrules:\n  client:\n    allow: [nope]\n' });
  t.throws(() => start(ctx({ policy: join(dir, 'bad.yaml') }), undefined, []), { code: 'GW_POLICY_INVALID', message: /rules\.client\.allow\[0\]: unknown op "nope"/ });
});

t.test('the policy file is watched and hot-reloaded; a bad edit keeps the policy in force', async (t) => {
  const dir = t.testdir({ 'p.yaml': 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n' });
  const path = join(dir, 'p.yaml');
  const c = ctx({ policy: path });
  const components: Component[] = [];
  const { inspector } = start(c, undefined, components, 20);
  t.teardown(() => Promise.all(components.map((x) => x.close())));
  t.equal(components.map((x) => x.name).join(), 'policy');
  t.equal(gatherDenied(inspector!), false);
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n    deny: [gather]\n');
  await waitFor(() => gatherDenied(inspector!), { timeoutMs: 10_000, what: 'reload to deny gather' });
  t.ok(c.lines.some((l) => l.event === 'policy_reloaded' && l.level === 'audit'), 'reload audited');
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: [bogus]\n');
  await waitFor(() => c.lines.some((l) => l.event === 'policy_reload_failed'), { timeoutMs: 10_000, what: 'failed reload logged' });
  t.equal(gatherDenied(inspector!), true, 'the last good policy is still in force');
  const reloads = await c.metrics.reloadsTotal.get();
  t.same(reloads.values.map((v) => [v.labels.result, v.value]).sort(), [['failure', 1], ['success', 1]], 'the result labels of every reloads_total');
});

t.test('SIGHUP reloads the policy through its component, without waiting for the poll', async (t) => {
  const dir = t.testdir({ 'p.yaml': 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n' });
  const path = join(dir, 'p.yaml');
  const c = ctx({ policy: path });
  const components: Component[] = [];
  const { inspector } = start(c, undefined, components, 0);
  t.teardown(() => Promise.all(components.map((x) => x.close())));
  const policy = components.find((x) => x.name === 'policy');
  t.ok(policy?.reload, 'the policy component is reloadable even with polling off');
  writeFileSync(path, 'version: 1\nrules:\n  client:\n    allow: ["@client"]\n    deny: [gather]\n');
  t.equal(gatherDenied(inspector!), false, 'nothing changes before the reload');
  t.equal(await policy!.reload!('SIGHUP'), true);
  t.equal(gatherDenied(inspector!), true);
  writeFileSync(path, 'rules: [');
  t.equal(await policy!.reload!('SIGHUP'), false, 'a broken file reports failure');
  t.equal(gatherDenied(inspector!), true, 'and keeps the last good policy');
});
