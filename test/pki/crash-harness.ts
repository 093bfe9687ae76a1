/**
 * Crash injection for the lifecycle commands (crash-keys.test.ts,
 * crash-rotation.test.ts): each command is killed with SIGKILL at every named
 * point of its write (src/pki/crash-points.ts) in a child process
 * (crash-child.ts). After each crash the gateway starts on the state
 * directory, the state is wholly the old one (killed before the commit
 * instant) or wholly the new one (after it), never a mix, and running the
 * command again completes it.
 */
import type { Test } from 'tap';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCluster } from '../../src/pki/init.js';
import { issueCertificate } from '../../src/pki/issue.js';
import { beginRotation, switchRotation } from '../../src/pki/rotation.js';
import { loadCa } from '../../src/pki/ca.js';
import { loadServerMaterial } from '../../src/pki/server-material.js';
import { readIndex, readState } from '../../src/pki/records.js';
import { splitPemCertificates } from '../../src/pki/certificate.js';
import { spawnTs } from '../hardening/child.js';
import { startTestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/dask.js';
import type { TestCluster } from '../helpers/pki.js';
import { runCerts } from './cli-harness.js';

const PASS = 'crash-test-passphrase-1';
const NEW_PASS = 'crash-test-passphrase-2';
const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.ts');
const root = mkdtempSync(join(tmpdir(), 'sgw-crash-'));
const newPassFile = join(root, 'new-pass');
writeFileSync(newPassFile, NEW_PASS, { mode: 0o600 });

const templates = { plain: join(root, 't-plain'), begun: join(root, 't-begun'), switched: join(root, 't-switched') };

/** Builds the three starting states the cases copy: a cluster, one with a rotation begun, one switched. */
export async function prepareTemplates(t: Test): Promise<void> {
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  await initCluster({ dir: templates.plain, clusterId: 'crash', passphrase: PASS });
  await issueCertificate({ dir: templates.plain, passphrase: PASS, role: 'worker', name: 'w1' });
  copy(templates.plain, templates.begun);
  await beginRotation({ dir: templates.begun, passphrase: PASS });
  copy(templates.begun, templates.switched);
  await switchRotation({ dir: templates.switched, passphrase: PASS });
}

function copy(from: string, to: string): void {
  cpSync(from, to, { recursive: true });
  chmodSync(to, 0o700);
}

let n = 0;
function fresh(template: string): string {
  const dir = join(root, `case-${++n}`);
  copy(template, dir);
  return dir;
}

export interface Case {
  name: string;
  argv: string[];
  template: string;
  points: string[];
  /** Whether the command's change is in effect in dir. */
  done(dir: string): boolean | Promise<boolean>;
  /** What running it again after a crash does: 0, or the error code expected. */
  rerun(done: boolean): 0 | RegExp;
}

const commit = (...files: string[]) => ['commit:staged', 'commit:journaled', ...files.map((f) => `commit:applied:${f}`)];
const phase = (dir: string) => readState(dir).rotation?.phase;

const CASES: Case[] = [
  {
    name: 'certs passphrase', argv: ['passphrase', '--new-passphrase-file', newPassFile], template: templates.begun,
    points: commit('ca-key.pem', 'ca-previous-key.pem', 'gateway-key.pem'),
    done: (dir) => loadCa(dir, NEW_PASS).then(() => true, () => false),
    rerun: () => 0,
  },
  {
    name: 'certs renew --name gateway', argv: ['renew', '--name', 'gateway'], template: templates.plain,
    points: commit('gateway.pem', 'gateway-key.pem', 'index.json'),
    done: (dir) => readIndex(dir).certificates.filter((e) => e.role === 'gateway').length >= 2,
    rerun: () => 0,
  },
  {
    name: 'certs rotate-ca begin', argv: ['rotate-ca', 'begin'], template: templates.plain,
    points: [...commit('ca-previous-key.pem', 'ca-key.pem', 'ca.pem', 'index.json', 'state.json'), 'rotate-ca:begin:committed'],
    done: (dir) => phase(dir) === 'begun', rerun: () => 0,
  },
  {
    name: 'certs rotate-ca switch', argv: ['rotate-ca', 'switch'], template: templates.begun,
    points: [...commit('gateway.pem', 'gateway-key.pem', 'revoked.json', 'crl.pem', 'index.json', 'state.json'), 'rotate-ca:switch:committed'],
    done: (dir) => phase(dir) === 'switched', rerun: () => 0,
  },
  {
    name: 'certs rotate-ca finish', argv: ['rotate-ca', 'finish', '--force'], template: templates.switched,
    points: [...commit('ca.pem', 'ca-previous-key.pem', 'state.json'), 'rotate-ca:finish:committed'],
    done: (dir) => phase(dir) === undefined, rerun: (done) => (done ? /GW_PKI_NO_ROTATION/ : 0),
  },
];

export const cases: Record<string, Case> = Object.fromEntries(CASES.map((c) => [c.name, c]));

function runChild(point: string, argv: string[], dir: string): Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawnTs(CHILD, [point, ...cliArgs(argv, dir)], { env: { SCHEDULER_GATEWAY_PASSPHRASE: PASS } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 120_000);
    child.once('exit', (_code, signal) => { clearTimeout(timer); resolve({ signal, stdout, stderr }); });
  });
}

/** Starts a gateway on dir with the passphrase its keys are under; resolves with what it serves. */
async function gatewayLoads(dir: string, passphrase: string) {
  const cluster = { dir, passphrase } as TestCluster;
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${await freePort()}`, flags: { dashboard: 'false' } });
  try {
    return { certPem: gw.gw.context.trust.current().certPem, cas: splitPemCertificates(gw.gw.context.trust.current().caPem).length };
  } finally {
    await gw.close();
  }
}

/** Every crash point of one case, each on a fresh copy of its starting state. */
export async function crashAtEachPoint(t: Test, c: Case): Promise<void> {
  const started = Date.now();
  for (const point of c.points) {
    const dir = fresh(c.template);
    const r = await runChild(point, c.argv, dir);
    t.equal(r.signal, 'SIGKILL', `${point}: the child was killed there (${r.stderr.trim().split('\n').pop() ?? ''})`);
    t.match(r.stdout, `crashing at ${point}`);
    const changed = point !== 'commit:staged';
    const passphrase = c.name === 'certs passphrase' && changed ? NEW_PASS : PASS;
    const served = await gatewayLoads(dir, passphrase);
    t.ok(served.certPem.length > 0, `${point}: the gateway starts on the directory`);
    t.equal(await c.done(dir), changed, `${point}: the change is ${changed ? 'wholly in effect' : 'not in effect at all'}`);
    t.notOk(existsSync(join(dir, '.commit.json')), `${point}: the interrupted commit was completed on load`);
    if (c.name === 'certs passphrase') {
      const other = changed ? PASS : NEW_PASS;
      await t.rejects(loadServerMaterial(dir, other), { code: 'GW_PKI_WRONG_PASSPHRASE' }, `${point}: no key is left under the other passphrase`);
      await t.rejects(loadCa(dir, other), { code: 'GW_PKI_WRONG_PASSPHRASE' });
    }
    if (phase(dir) === 'begun' || phase(dir) === 'switched') t.equal(served.cas, 2, `${point}: a rotation in progress trusts both CAs`);
    const again = await runCerts(cliArgs(c.argv, dir), { cwd: root, env: { SCHEDULER_GATEWAY_PASSPHRASE: PASS } });
    const want = c.rerun(changed);
    if (want === 0) t.equal(again.code, 0, `${point}: running it again completes it: ${again.stderr}`);
    else t.match(again.stderr, want, `${point}: running it again says it is done`);
    t.equal(await c.done(dir), true, `${point}: done after the rerun`);
    await gatewayLoads(dir, c.name === 'certs passphrase' ? NEW_PASS : PASS);
  }
  t.comment(`${c.name}: ${c.points.length} crashes, each followed by a gateway start and a rerun, in ${Math.round((Date.now() - started) / 1000)} s`);
}

function cliArgs(argv: string[], dir: string): string[] {
  const [sub, ...rest] = argv;
  return sub === 'rotate-ca' ? [sub, rest[0]!, '--dir', dir, ...rest.slice(1)] : [sub!, '--dir', dir, ...rest];
}
