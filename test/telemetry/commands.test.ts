import t, { type Test } from 'tap';
import { join } from 'node:path';
import { CommandProcessor, revocationCommands } from '../../src/telemetry/commands.js';
import { commandKey, parseInbound, signCommand, type CommandMessage } from '../../src/telemetry/protocol.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import type { RevocationSink } from '../../src/runtime/context.js';
import { captureLogger, metricValue, tempDir } from './helpers.js';

const CRED = 'c'.repeat(43);

function fixture(t: Test, now = () => new Date()) {
  const dir = tempDir(t);
  const applied: string[] = [];
  const sink: RevocationSink = {
    async revokeSerial(serial, reason) { applied.push(`cert ${serial} ${reason}`); },
    async revokeToken(ref) { applied.push(`token ${ref}`); },
  };
  const cap = captureLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const make = () => CommandProcessor.open({ clusterId: 'c1', key: commandKey(CRED), handlers: revocationCommands(sink), seenFile: join(dir, 'seen.json'), log: cap.log, metrics, now });
  return { applied, make, metrics, lines: cap.lines };
}

const cmd = (o: Partial<Omit<CommandMessage, 'type' | 'sig'>> = {}, cred = CRED) =>
  signCommand(cred, { id: 'cmd-00000001', cluster: 'c1', issued: new Date().toISOString(), name: 'revoke-certificate', args: { serial: '0a1b', reason: 'keyCompromise' }, ...o });

t.test('a signed, fresh command is applied once, audited and acknowledged', async (t) => {
  const f = fixture(t);
  const p = await f.make();
  t.same(await p.handle(cmd()), { type: 'command-result', id: 'cmd-00000001', ok: true });
  t.same(f.applied, ['cert 0a1b keyCompromise']);
  t.ok(f.lines().some((l) => l['level'] === 'audit' && l['event'] === 'telemetry_command_applied'));
  t.equal(await metricValue(f.metrics.controlCommandsTotal, { type: 'revoke-certificate', result: 'applied' }), 1);
});

t.test('the same id again, even re-signed later and after a restart, is acknowledged but not reapplied', async (t) => {
  const f = fixture(t);
  await (await f.make()).handle(cmd());
  const restarted = await f.make();
  const again = await restarted.handle(cmd({ issued: new Date(Date.now() + 1000).toISOString() }));
  t.same(again, { type: 'command-result', id: 'cmd-00000001', ok: true, duplicate: true });
  t.equal(f.applied.length, 1);
});

const REFUSALS: [string, () => CommandMessage, RegExp, string][] = [
  ['a signature made with another credential', () => cmd({}, 'x'.repeat(43)), /bad signature/, 'bad_signature'],
  ['a tampered argument', () => ({ ...cmd(), args: { serial: 'ffff', reason: 'keyCompromise' } }), /bad signature/, 'bad_signature'],
  ['another cluster', () => cmd({ cluster: 'c2' }), /command for cluster c2/, 'wrong_cluster'],
  ['a stale issued time (replay of an old message)', () => cmd({ issued: new Date(Date.now() - 10 * 60_000).toISOString() }), /outside the accepted window/, 'stale'],
  ['an unknown command', () => cmd({ name: 'format-disk' }), /unknown command/, 'unknown'],
  ['a serial that is not hex', () => cmd({ args: { serial: "1; rm -rf /" } }), /hex serial/, 'failed'],
  ['a token revocation without a token', () => cmd({ name: 'revoke-token', args: {} }), /token id or name/, 'failed'],
];

for (const [what, make, msg, result] of REFUSALS) {
  t.test(`refuses ${what}, audits it, applies nothing`, async (t) => {
    const f = fixture(t);
    const r = await (await f.make()).handle(make());
    t.equal(r.ok, false);
    t.match(r.error, msg);
    t.same(f.applied, []);
    t.ok(f.lines().some((l) => l['level'] === 'audit' && l['event'] === 'telemetry_command_refused'));
    t.ok((await metricValue(f.metrics.controlCommandsTotal, { result })) >= 1);
  });
}

t.test('parseInbound refuses malformed messages with a reason', async (t) => {
  t.equal(parseInbound('nope'), 'not JSON');
  t.equal(parseInbound('[]'), 'not an object');
  t.equal(parseInbound('{"type":"ack","seq":-1}'), 'ack without a valid seq');
  t.equal(parseInbound('{"type":"ack","seq":1.5}'), 'ack without a valid seq');
  t.equal(parseInbound('{"type":"what"}'), 'unknown message type');
  const c = cmd();
  t.match(parseInbound(JSON.stringify({ ...c, args: { serial: 5 } })), /is not a short string/);
  t.match(parseInbound(JSON.stringify({ ...c, id: 'x' })), /valid id/);
  t.match(parseInbound(JSON.stringify({ ...c, sig: 'short' })), /valid signature/);
  t.same(parseInbound(JSON.stringify(c)), c);
});
