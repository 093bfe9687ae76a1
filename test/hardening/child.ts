/**
 * Spawns test/hardening/gateway-child.ts (and other .ts scripts) as separate
 * Node processes with the TypeScript loader tap uses, each in its own process
 * group, and collects their JSON lines. Killed in teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Flags } from '../../src/config/load.js';
import { GiveUp, waitFor } from '../helpers/wait.js';
import { lineSplitter } from '../helpers/json-lines.js';
import type { Teardown } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
const TS_LOADER = `file://${join(REPO, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs')}`;

export interface GatewayChild {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** p8789 only when the credentials endpoint is configured. */
  readonly ports: { p8786: number; p8787: number; p8789?: number; metrics: number };
  readonly lines: Array<Record<string, unknown>>;
  /** Lines at level error (and non-JSON stderr output). */
  errors(): Array<Record<string, unknown>>;
  exited(): boolean;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** Runs a node script (a .ts file) with tap's TypeScript loader; the caller handles its output. */
export function spawnTs(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv; nofile?: number } = {}): ChildProcess {
  const node = [process.execPath, `--import=${TS_LOADER}`, '--expose-gc', script, ...args];
  // prlimit execs the command: the pid (and process group) is node's.
  const argv = opts.nofile ? ['prlimit', `--nofile=${opts.nofile}:${opts.nofile}`, '--', ...node] : node;
  return spawn(argv[0]!, argv.slice(1), {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', NODE_OPTIONS: '', ...opts.env },
  });
}

/** Calls onJson for every JSON line of the stream, onOther for any other line. */
export function jsonLines(stream: Readable, onJson: (l: Record<string, unknown>) => void, onOther: (l: string) => void): void {
  stream.on('data', lineSplitter((raw, parsed) => (parsed ? onJson(parsed) : onOther(raw))));
}

/** nofile: the open-files limit the gateway runs under (prlimit). */
export async function spawnGatewayChild(o: { t: Teardown; flags: Flags; passphrase: string; readyTimeoutMs?: number; nofile?: number }): Promise<GatewayChild> {
  const proc = spawnTs(join(here, 'gateway-child.ts'), [JSON.stringify(o.flags)], { env: { SCHEDULER_GATEWAY_PASSPHRASE: o.passphrase }, ...(o.nofile ? { nofile: o.nofile } : {}) });
  const lines: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  let exited = false;
  const exit = new Promise<void>((r) => proc.once('exit', () => { exited = true; r(); }));
  jsonLines(proc.stdout!, (l) => {
    lines.push(l);
    if (lines.length > 200_000) lines.splice(0, 100_000); // bounded for long soaks
  }, (l) => stderr.push(l));
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 1000) stderr.push(d.toString()); });
  const kill = async (signal: NodeJS.Signals) => {
    if (exited) return;
    try { process.kill(-proc.pid!, signal); } catch { /* gone */ }
    const timer = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
    await exit;
    clearTimeout(timer);
  };
  o.t.teardown(() => kill('SIGKILL'));
  const ready = await waitFor(() => {
    if (exited) throw new GiveUp(`gateway child exited:\n${stderr.join('').slice(-3000)}`);
    return lines.find((l) => l.event === 'child_ready');
  }, { timeoutMs: o.readyTimeoutMs ?? 90_000, what: 'gateway child ready' }).catch(async (e) => { await kill('SIGKILL'); throw e; });
  return {
    proc,
    pid: proc.pid!,
    ports: { p8786: ready.p8786 as number, p8787: ready.p8787 as number, ...(ready.p8789 ? { p8789: ready.p8789 as number } : {}), metrics: ready.metrics as number },
    lines,
    errors: () => [...lines.filter((l) => l.level === 'error'), ...stderr.filter((s) => s.trim() !== '').map((s) => ({ level: 'stderr', text: s }))],
    exited: () => exited,
    kill,
  };
}

/** The child's memoryUsage() after a full collection: gateway-child.ts answers SIGUSR2 with a child_gc line. */
export async function collectedMemory(gw: GatewayChild): Promise<NodeJS.MemoryUsage> {
  // The newest child_gc line, not an index: the line buffer is trimmed in long runs.
  const before = gw.lines.findLast((l) => l.event === 'child_gc');
  process.kill(gw.pid, 'SIGUSR2');
  const line = await waitFor(() => {
    const last = gw.lines.findLast((l) => l.event === 'child_gc');
    return last !== before ? last : undefined;
  }, { timeoutMs: 30_000, intervalMs: 20, what: 'the gateway collected its garbage' });
  return line as unknown as NodeJS.MemoryUsage;
}

/** Scrapes the child's /metrics and returns the value of one series (sum over matching label sets). */
export async function metricValue(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? ([^\s]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) sum += Number(m[4]);
  }
  return sum;
}
