/**
 * Parser-differential attacks end to end (docs/security.md, "What the
 * scheduler reads"), against a real scheduler of each supported version:
 * a client certificate and a worker certificate try a hidden op, a hidden
 * placeholder, a hidden address, desynchronised framing and a hidden
 * broadcast target (wire_attacks.py speaks Dask's framing by hand). Nothing
 * runs on the scheduler, nothing registers, nothing is dialled; each attempt
 * is refused with its code and audited with its rule.
 */
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway, type LogLine } from '../helpers/gateway.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker, type DaskVersion } from '../helpers/dask.js';

const ATTACKS = fileURLToPath(new URL('./wire_attacks.py', import.meta.url));
const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

interface Attempt {
  state: string;
  replies: string[];
}

/** What each attempt must come to: closed with a wire or pinning code, or answered with a refusal. */
const EXPECTED: Record<string, { client: [string, string]; worker: [string, string] }> = {
  hidden_op: { client: ['closed', 'GW_WIRE_DUPLICATE_KEY'], worker: ['closed', 'GW_WIRE_DUPLICATE_KEY'] },
  op_in_str32: { client: ['answered', 'GW_POLICY_DENIED'], worker: ['answered', 'GW_POLICY_DENIED'] },
  hidden_placeholder: { client: ['answered', 'GW_POLICY_PICKLED'], worker: ['answered', 'GW_POLICY_PICKLED'] },
  dropped_placeholder: { client: ['closed', 'GW_WIRE_DUPLICATE_KEY'], worker: ['closed', 'GW_WIRE_DUPLICATE_KEY'] },
  desync_L_inside_frame: { client: ['closed', 'GW_WIRE_LENGTH_MISMATCH'], worker: ['closed', 'GW_WIRE_LENGTH_MISMATCH'] },
  hidden_broadcast_target: { client: ['closed', 'GW_WIRE_DUPLICATE_KEY'], worker: ['closed', 'GW_WIRE_DUPLICATE_KEY'] },
  hidden_inner_op: { client: ['closed', 'GW_WIRE_DUPLICATE_KEY'], worker: ['closed', 'GW_WIRE_DUPLICATE_KEY'] },
  hidden_address: { client: ['closed', 'GW_WIRE_DUPLICATE_KEY'], worker: ['closed', 'GW_WIRE_DUPLICATE_KEY'] },
  address_in_str32: { client: ['answered', 'GW_POLICY_DENIED'], worker: ['closed', 'GW_POLICY_PIN_ADDRESS'] },
};

eachDaskVersion(t, 'parser-differential attacks are refused and change nothing on the scheduler', async (t, version: DaskVersion) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: files(sched), t, version });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t });
  const w1 = await cluster.issue('worker', 'w1');
  await startWorker({ scheduler: gw.address, tls: files(w1), name: 'w1', t, version, nanny: true });

  // A listener on another loopback address: the scheduler must never dial it.
  let dialled = 0;
  const decoy = createServer((s) => ((dialled += 1), s.destroy()));
  await new Promise<void>((r) => decoy.listen(0, '127.0.0.2', r));
  t.teardown(() => new Promise<void>((r) => decoy.close(() => r())));
  const decoyAddress = `tls://127.0.0.2:${(decoy.address() as AddressInfo).port}`;
  const markers = mkdtempSync(join(tmpdir(), 'gw-attack-'));
  t.teardown(() => rmSync(markers, { recursive: true, force: true }));

  for (const role of ['client', 'worker'] as const) {
    const id = await cluster.issue(role, `mallory-${role}`);
    const script = `import runpy, sys; sys.argv = ${JSON.stringify([ATTACKS, '127.0.0.1', String(gw.port), id.caPath, id.certPath, id.keyPath, markers, decoyAddress, '127.0.0.1'])}; runpy.run_path(${JSON.stringify(ATTACKS)}, run_name="__main__")`;
    const out = await runClient<Record<string, Attempt | string[]>>(script, { version, timeoutMs: 180_000 });
    for (const [attack, want] of Object.entries(EXPECTED)) {
      const [how, code] = want[role];
      const got = out[attack] as Attempt;
      if (how === 'closed') t.match(got.state, /^closed/, `${role} ${attack}: the connection is closed`);
      else t.match(got.replies.join(' '), new RegExp(`scheduler-gateway refused .*\\(${code}`), `${role} ${attack}: answered with the refusal`);
    }
    const desync = out.desync_short_L as Attempt;
    t.match(desync.replies[0], /'type': 'Scheduler'/, `${role} desync_short_L: the scheduler answered identity and read the trailing frame as payload, not as a message`);
    t.same(out.markers, [], `${role}: no attacker pickle ran on the scheduler`);
  }

  const refusals = gw.lines.filter((l: LogLine) => l.event === 'request_refused' || (l.event === 'connection_closed' && l.reason === 'policy_denied'));
  for (const role of ['client', 'worker'] as const) {
    for (const [attack, want] of Object.entries(EXPECTED)) {
      const [how, code] = want[role];
      const event = how === 'closed' ? 'connection_closed' : 'request_refused';
      t.ok(refusals.some((l) => l.event === event && l.code === code && l.role === role && typeof l.rule === 'string'), `${role} ${attack}: audited as ${event} ${code} with its rule`);
    }
  }
  t.same(readdirSync(markers), [], 'no marker file: nothing ran on the scheduler');
  t.equal(dialled, 0, 'the scheduler never dialled the decoy');
  const admin = await cluster.issue('admin', 'auditor');
  const state = await runClient<{ workers: string[] }>(`${clientPrelude(gw.address, files(admin))}
print(json.dumps({"workers": sorted(c.scheduler_info()["workers"])}))
`, { version });
  t.equal(state.workers.length, 1, 'one worker registered: the real one');
  t.notOk(state.workers.some((w) => w.includes('127.0.0.2') || w.includes(':45678')), `no forged address registered (${state.workers.join(', ')})`);
});
