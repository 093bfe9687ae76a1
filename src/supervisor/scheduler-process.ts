/**
 * Runs `dask scheduler` (Debian's python3-distributed, /usr/bin/python3)
 * bound to 127.0.0.1 on plain tcp://, holding a scheduler certificate so it
 * can dial tls:// workers (the dask CLI turns TLS flags
 * into require_encryption=True, so the environment overrides it).
 * Supervised: if it dies it is restarted on the same port with exponential
 * backoff, so the gateway's upstream address never changes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { Logger } from '../log/logger.js';
import { GatewayError } from '../errors/base.js';

export const DASK_PYTHON = '/usr/bin/python3';

export function daskInstalled(python = DASK_PYTHON): boolean {
  return spawnSync(python, ['-c', 'import distributed'], { stdio: 'ignore', timeout: 60_000 }).status === 0;
}

export interface SchedulerProcessOptions {
  readonly port: number;
  readonly dashboardPort: number;
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly log: Logger;
  readonly python?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Runs the scheduler under a parent-death signal (Linux prctl PR_SET_PDEATHSIG,
 * kept across exec): if the gateway is killed with SIGKILL it cannot stop its
 * child, and an orphaned scheduler would keep the port, so every restart of
 * the gateway would fail to bind it. The ppid check closes the race where the
 * gateway died before prctl ran.
 */
const LAUNCHER = [
  'import ctypes, os, signal, sys',
  'ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)',
  'os.getppid() == int(os.environ.pop("SCHEDULER_GATEWAY_PARENT_PID", "0")) or sys.exit(3)',
  'os.execv(sys.executable, [sys.executable, "-m", "distributed.cli.dask_scheduler"] + sys.argv[1:])',
].join('\n');

const MAX_BACKOFF_MS = 30_000;
/** A run this long counts as healthy: the next failure starts the backoff over. */
const HEALTHY_AFTER_MS = 60_000;

export class SupervisedScheduler {
  readonly #o: SchedulerProcessOptions;
  #child: ChildProcess | undefined;
  #stopping = false;
  #backoffMs = 1_000;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;

  constructor(o: SchedulerProcessOptions) {
    this.#o = o;
  }

  get restarts(): number {
    return this.#restarts;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Spawns and resolves once the port accepts connections. */
  async start(readyTimeoutMs = 60_000): Promise<void> {
    this.#spawn();
    const deadline = Date.now() + readyTimeoutMs;
    while (!(await portOpen(this.#o.port))) {
      if (this.#stopping) return;
      if (Date.now() > deadline) throw new GatewayError('GW_SUPERVISOR_START_FAILED', `dask scheduler did not listen on 127.0.0.1:${this.#o.port} within ${readyTimeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.#o.log.info('scheduler_ready', { address: `tcp://127.0.0.1:${this.#o.port}`, dashboard: `http://127.0.0.1:${this.#o.dashboardPort}/`, pid: this.pid });
  }

  #spawn(): void {
    const { port, dashboardPort, tls } = this.#o;
    const args = ['-c', LAUNCHER, '--host', '127.0.0.1', '--port', String(port), '--protocol', 'tcp',
      '--dashboard-address', `127.0.0.1:${dashboardPort}`, '--tls-ca-file', tls.ca, '--tls-cert', tls.cert, '--tls-key', tls.key];
    const child = spawn(this.#o.python ?? DASK_PYTHON, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true, // its own process group, stopped as a whole
      env: { ...process.env, ...this.#o.env, DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: 'False', PYTHONUNBUFFERED: '1', SCHEDULER_GATEWAY_PARENT_PID: String(process.pid) },
    });
    this.#child = child;
    const startedAt = Date.now();
    let tail = '';
    let gone = false;
    // Exit, or a failed spawn (EAGAIN, ENOENT...) that never exits: both restart with backoff, neither throws.
    const onGone = (fields: Record<string, unknown>) => {
      if (gone) return;
      gone = true;
      if (this.#child === child) this.#child = undefined;
      if (this.#stopping) return;
      if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.#backoffMs = 1_000;
      this.#o.log.error('scheduler_exited', { ...fields, restart_in_ms: this.#backoffMs, stderr_tail: tail.split('\n').slice(-6).join('\n') });
      this.#restartTimer = setTimeout(() => {
        this.#restarts++;
        this.#spawn();
      }, this.#backoffMs);
      this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    };
    child.stderr!.on('data', (b: Buffer) => { tail = (tail + b.toString()).slice(-2000); });
    child.stderr!.on('error', () => {}); // the pipe breaking is the child going away: 'exit' reports it
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (child.pid === undefined) onGone({ code: null, signal: null, spawn_error: e.code ?? e.message });
      else this.#o.log.error('scheduler_process_error', { pid: child.pid, error: e.code ?? e.message });
    });
    child.once('exit', (code, signal) => onGone({ code, signal }));
  }

  /** Idempotent: SIGTERM to the process group, SIGKILL after the grace period. */
  async stop(graceMs = 5_000): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    signalGroup(child, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, sig);
  } catch {
    // already gone
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
