/**
 * Real Dask processes for tests, on both supported versions:
 *   DASK_2022  Debian's python3-distributed 2022.12.1, run ONLY with /usr/bin/python3
 *   DASK_2026  Dask 2026.7.1 with Bokeh, in .venv-dask (scripts/install-dask-venv.sh)
 * Every process is spawned in its own process group and killed with it in
 * teardown, so nothing outlives a test. Options take `version` (default DASK_2022).
 *
 * Exports:
 *   DASK_VERSIONS, DASK_2022, DASK_2026, versionAvailable(v)
 *   eachDaskVersion(t, name, fn)    one subtest per version; a missing version fails
 *       under CI and is a visible skip elsewhere
 *   requireDask(t, v = DASK_2022): boolean   the same rule for a whole file
 *   DASK_PYTHON                     '/usr/bin/python3'
 *   freePort(): Promise<number>     a loopback port that was free a moment ago
 *   startScheduler(opts): DaskProcess & {port, address, dashboardPort}
 *       plain tcp:// on 127.0.0.1; with opts.tls (ca/cert/key) it also holds a
 *       scheduler certificate so it can dial tls:// workers
 *   startWorker(opts): DaskProcess  `dask worker` on tls://127.0.0.1:<random>,
 *       resolves once "Registered to" is logged
 *   runClient(script, opts): Promise<T>  runs a Python script, returns the JSON
 *       printed on its LAST stdout line; clientPrelude() builds `c = Client(...)`
 *   stopAll(): Promise<void>        kills every process this module started
 * Pass `t` (tap) to startScheduler/startWorker to register teardown automatically.
 */
import type { Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { appendFileSync, mkdirSync } from 'node:fs';
import { relative } from 'node:path';
import { freeLoopbackPort } from '../../src/supervisor/embedded.js';
import { GiveUp, waitFor } from './wait.js';

export const DASK_PYTHON = '/usr/bin/python3';

export interface DaskVersion {
  /** The distributed release, e.g. "2022.12.1". */
  readonly id: string;
  readonly python: string;
  /** Has the Bokeh dashboard. */
  readonly bokeh: boolean;
  /** Frames since 2023.11 may have a leading length shorter than the message. */
  readonly splitFraming: boolean;
  /** How to install it when missing. */
  readonly hint: string;
}

export const DASK_2022: DaskVersion = { id: '2022.12.1', python: DASK_PYTHON, bokeh: false, splitFraming: false, hint: 'apt-get install python3-distributed' };
export const DASK_2026: DaskVersion = {
  id: '2026.7.1',
  python: fileURLToPath(new URL('../../.venv-dask/bin/python', import.meta.url)),
  bokeh: true,
  splitFraming: true,
  hint: 'bash scripts/install-dask-venv.sh',
};
export const DASK_VERSIONS: readonly DaskVersion[] = [DASK_2022, DASK_2026];

const availableVersions = new Map<string, boolean>();
/** The version's interpreter imports distributed at exactly that release. */
export function versionAvailable(v: DaskVersion): boolean {
  let ok = availableVersions.get(v.id);
  if (ok === undefined) {
    const check = `import distributed, sys; sys.exit(0 if distributed.__version__.startswith(${JSON.stringify(v.id)}) else 1)`;
    ok = spawnSync(v.python, ['-c', check], { stdio: 'ignore', timeout: 60_000 }).status === 0;
    availableVersions.set(v.id, ok);
  }
  return ok;
}


/**
 * Whether Dask `v` can run here; if not, fails `t` under CI (where
 * scripts/install-test-prereqs.sh must have installed it) and skips it
 * visibly elsewhere, so a missing version never counts as a pass.
 */
export function requireDask(t: Test, v: DaskVersion = DASK_2022): boolean {
  if (versionAvailable(v)) return true;
  const why = `Dask ${v.id} is not installed for ${v.python} (${v.hint})`;
  if (process.env.CI) t.fail(why);
  else t.pass(why, { skip: why });
  return false;
}

/** Runs `fn` as one subtest per supported Dask version, named "<name> (Dask <id>)". */
export function eachDaskVersion(t: Test, name: string, fn: (t: Test, v: DaskVersion) => Promise<void> | void): void {
  for (const v of DASK_VERSIONS) {
    if (!requireDask(t, v)) continue;
    t.test(`${name} (Dask ${v.id})`, async (tt) => {
      const started = Date.now();
      try {
        await fn(tt, v);
      } finally {
        recordWallTime(v, `${name}`, Date.now() - started);
      }
    });
  }
}

/** Where scripts/test.sh finds the wall time each Dask version cost (one JSON line per subtest). */
export const WALL_TIME_FILE = fileURLToPath(new URL('../artifacts/dask-wall-time.jsonl', import.meta.url));

function recordWallTime(v: DaskVersion, name: string, ms: number): void {
  mkdirSync(fileURLToPath(new URL('../artifacts/', import.meta.url)), { recursive: true });
  const file = relative(fileURLToPath(new URL('../..', import.meta.url)), process.argv[1] ?? '');
  appendFileSync(WALL_TIME_FILE, JSON.stringify({ version: v.id, file, name, ms }) + '\n');
}

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface DaskProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  alive(): boolean;
  /** SIGTERM the process group, SIGKILL after 3 s; resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const running = new Set<DaskProcess>();

/** A loopback port that was free a moment ago. */
export const freePort = freeLoopbackPort;

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function spawnDask(args: string[], env: NodeJS.ProcessEnv, t?: Teardown, version: DaskVersion = DASK_2022): DaskProcess {
  const proc = spawn(version.python, args, {
    detached: true, // own process group: stop() kills the worker's children too
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1', DASK_DISTRIBUTED__ADMIN__TICK__LIMIT: '30s', ...env },
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000); // bounded even for chatty processes
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) => proc.once('exit', () => { exited = true; r(); }));
  const p: DaskProcess = {
    proc,
    pid: proc.pid!,
    output: () => out,
    alive: () => !exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      running.delete(p);
      if (exited) return;
      try { process.kill(-proc.pid!, signal); } catch { /* already gone */ }
      const timer = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 3_000);
      await exit;
      clearTimeout(timer);
      try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* group empty */ }
    },
  };
  running.add(p);
  t?.teardown(() => p.stop('SIGKILL'));
  return p;
}

export interface SchedulerOptions {
  readonly port?: number;
  /** Scheduler certificate + CA: lets a tcp:// scheduler dial tls:// workers. */
  readonly tls?: TlsFiles;
  readonly env?: NodeJS.ProcessEnv;
  readonly t?: Teardown;
  readonly readyTimeoutMs?: number;
  readonly version?: DaskVersion;
}

export async function startScheduler(opts: SchedulerOptions = {}): Promise<DaskProcess & { port: number; address: string; dashboardPort: number }> {
  const port = opts.port ?? (await freePort());
  const dashboardPort = await freePort();
  const args = ['-m', 'distributed.cli.dask_scheduler', '--host', '127.0.0.1', '--port', String(port), '--protocol', 'tcp',
    '--dashboard-address', `127.0.0.1:${dashboardPort}`, '--no-show'];
  const env: NodeJS.ProcessEnv = { ...opts.env };
  if (opts.tls) {
    args.push('--tls-ca-file', opts.tls.ca, '--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
    env.DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION = 'False'; // the dask CLI turns TLS flags into require_encryption=True
  }
  const p = spawnDask(args, env, opts.t, opts.version);
  try {
    await waitFor(async () => {
      if (!p.alive()) throw new GiveUp(`scheduler exited:\n${p.output()}`);
      return tcpOpen(port);
    }, { timeoutMs: opts.readyTimeoutMs ?? 60_000, intervalMs: 200, what: `scheduler on 127.0.0.1:${port}` });
  } catch (e) {
    await p.stop('SIGKILL');
    throw e;
  }
  return Object.assign(p, { port, address: `tcp://127.0.0.1:${port}`, dashboardPort });
}

export interface WorkerOptions {
  /** e.g. tls://127.0.0.1:<gateway port> */
  readonly scheduler: string;
  readonly tls: TlsFiles;
  readonly name: string;
  readonly nthreads?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly t?: Teardown;
  readonly readyTimeoutMs?: number;
  readonly version?: DaskVersion;
  /** Run the worker under a nanny (as `dask worker` does by default). */
  readonly nanny?: boolean;
}

export async function startWorker(opts: WorkerOptions): Promise<DaskProcess> {
  const args = ['-m', 'distributed.cli.dask_worker', opts.scheduler, '--protocol', 'tls', '--host', '127.0.0.1',
    '--tls-ca-file', opts.tls.ca, '--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key,
    '--name', opts.name, '--nthreads', String(opts.nthreads ?? 2), opts.nanny ? '--nanny' : '--no-nanny', '--no-dashboard', '--memory-limit', '0'];
  const p = spawnDask(args, { ...opts.env }, opts.t, opts.version);
  try {
    await waitFor(() => {
      if (!p.alive()) throw new GiveUp(`worker ${opts.name} exited:\n${p.output()}`);
      return /Registered to:/.test(p.output());
    }, { timeoutMs: opts.readyTimeoutMs ?? 60_000, intervalMs: 200, what: `worker ${opts.name} registered` });
  } catch (e) {
    await p.stop('SIGKILL');
    throw e;
  }
  return p;
}

/** Python lines that leave a connected `c = Client(...)` and `sec` (Security) in scope. */
export function clientPrelude(address: string, tls: TlsFiles, opts: { timeout?: number } = {}): string {
  return [
    'import json, sys, hashlib, os',
    'from distributed import Client',
    'from distributed.security import Security',
    `sec = Security(tls_ca_file=${JSON.stringify(tls.ca)}, tls_client_cert=${JSON.stringify(tls.cert)}, tls_client_key=${JSON.stringify(tls.key)}, require_encryption=True)`,
    `c = Client(${JSON.stringify(address)}, security=sec, timeout=${opts.timeout ?? 30})`,
  ].join('\n');
}

export interface RunClientOptions {
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Called with the child once spawned (e.g. to kill it from the test). */
  readonly onSpawn?: (p: DaskProcess) => void;
  readonly t?: Teardown;
  readonly version?: DaskVersion;
}

/** Runs a Python script (stdin, like a heredoc); resolves with the JSON of its last stdout line. */
export async function runClient<T = unknown>(script: string, opts: RunClientOptions = {}): Promise<T> {
  const p = spawnDaskScript(script, opts);
  opts.onSpawn?.(p);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => { void p.stop('SIGKILL'); }, timeoutMs);
    p.proc.once('exit', (c) => { clearTimeout(timer); resolve(c); });
  });
  running.delete(p);
  const out = p.output();
  const lines = out.trim().split('\n').filter((l) => l.startsWith('{') || l.startsWith('['));
  if (code !== 0 || lines.length === 0) throw new Error(`python client failed (exit ${code}):\n${out.slice(-4000)}`);
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Starts a script without waiting for it: for long-running clients a test cuts or observes. */
export function spawnDaskScript(script: string, opts: { env?: NodeJS.ProcessEnv; t?: Teardown; version?: DaskVersion } = {}): DaskProcess {
  const p = spawnDask(['-c', script], { ...opts.env }, opts.t, opts.version);
  return p;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
}
