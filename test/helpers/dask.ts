/**
 * Real Dask processes for tests (Debian python3-distributed 2022.12.1, run
 * ONLY with /usr/bin/python3). Every process is spawned in its own process
 * group and killed with it in teardown, so nothing outlives a test.
 *
 * Exports:
 *   DASK_PYTHON                     '/usr/bin/python3'
 *   daskAvailable(): boolean        python3-distributed importable
 *   freePort(): Promise<number>     a loopback port that was free a moment ago
 *   waitFor(pred, {timeoutMs, intervalMs, what}) poll a (sync or async) predicate until truthy
 *   startScheduler(opts): DaskProcess & {port, address, dashboardPort}
 *       plain tcp:// on 127.0.0.1; with opts.tls (ca/cert/key) it also holds a
 *       scheduler certificate so it can dial tls:// workers (dask-wire.md §5.3-5.4)
 *   startWorker(opts): DaskProcess  `dask worker` on tls://127.0.0.1:<random>,
 *       resolves once "Registered to" is logged
 *   runClient(script, opts): Promise<T>  runs a Python script, returns the JSON
 *       printed on its LAST stdout line; clientPrelude() builds `c = Client(...)`
 *   stopAll(): Promise<void>        kills every process this module started
 * Pass `t` (tap) to startScheduler/startWorker to register teardown automatically.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freeLoopbackPort } from '../../src/supervisor/embedded.js';

export const DASK_PYTHON = '/usr/bin/python3';

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

let available: boolean | undefined;
export function daskAvailable(): boolean {
  available ??= spawnSync(DASK_PYTHON, ['-c', 'import distributed'], { stdio: 'ignore', timeout: 60_000 }).status === 0;
  return available;
}

/** A loopback port that was free a moment ago. */
export const freePort = freeLoopbackPort;

export async function waitFor<T>(pred: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function spawnDask(args: string[], env: NodeJS.ProcessEnv, t?: Teardown): DaskProcess {
  const proc = spawn(DASK_PYTHON, args, {
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
}

export async function startScheduler(opts: SchedulerOptions = {}): Promise<DaskProcess & { port: number; address: string; dashboardPort: number }> {
  const port = opts.port ?? (await freePort());
  const dashboardPort = await freePort();
  const args = ['-m', 'distributed.cli.dask_scheduler', '--host', '127.0.0.1', '--port', String(port), '--protocol', 'tcp',
    '--dashboard-address', `127.0.0.1:${dashboardPort}`, '--no-show'];
  const env: NodeJS.ProcessEnv = { ...opts.env };
  if (opts.tls) {
    args.push('--tls-ca-file', opts.tls.ca, '--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
    env.DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION = 'False'; // dask-wire.md §5.3
  }
  const p = spawnDask(args, env, opts.t);
  try {
    await waitFor(async () => {
      if (!p.alive()) throw new Error(`scheduler exited:\n${p.output()}`);
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
}

export async function startWorker(opts: WorkerOptions): Promise<DaskProcess> {
  const args = ['-m', 'distributed.cli.dask_worker', opts.scheduler, '--protocol', 'tls', '--host', '127.0.0.1',
    '--tls-ca-file', opts.tls.ca, '--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key,
    '--name', opts.name, '--nthreads', String(opts.nthreads ?? 2), '--no-nanny', '--no-dashboard', '--memory-limit', '0'];
  const p = spawnDask(args, { ...opts.env }, opts.t);
  try {
    await waitFor(() => {
      if (!p.alive()) throw new Error(`worker ${opts.name} exited:\n${p.output()}`);
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
export function spawnDaskScript(script: string, opts: { env?: NodeJS.ProcessEnv; t?: Teardown } = {}): DaskProcess {
  const p = spawnDask(['-c', script], { ...opts.env }, opts.t);
  return p;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
}
