// The real Dask workload (Debian python3-distributed via /usr/bin/python3)
// over plain TCP, Dask's native TLS, and TLS terminated by haproxy or the
// gateway in front of a loopback tcp:// scheduler. A fresh scheduler and two
// workers per variant; the timings come from bench/dask/workload.py.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CONTENDERS } from './contenders.mjs';
import { cpuSeconds, freePort, runCommand, startProcess, waitForPort } from './proc.mjs';
import { summarizeRuns } from './stats.mjs';

export const PYTHON = '/usr/bin/python3';

export function daskSizes(quick) {
  return quick ? { tasks: 500, roundtrips: 20, scatter_mib: 2, passes: 1 } : { tasks: 5000, roundtrips: 200, scatter_mib: 20, passes: 3 };
}

/** Variants in run order; a terminator variant runs only if its contender was selected. */
export function daskVariants(contenders) {
  const out = [];
  if (contenders.includes('direct')) out.push('plain');
  out.push('native-tls');
  for (const c of ['haproxy', 'gateway', 'gateway-inspect']) if (contenders.includes(c)) out.push(c);
  return out;
}

export async function daskAvailable() {
  if (!existsSync(PYTHON)) return `${PYTHON} missing`;
  const r = await runCommand(PYTHON, ['-c', 'import distributed; print(distributed.__version__)'], { timeoutMs: 60000 });
  return r.code === 0 ? true : 'python3-distributed not importable (apt-get install python3-distributed)';
}

function tlsFlags(pair, ca) {
  return ['--tls-ca-file', ca, '--tls-cert', pair.cert, '--tls-key', pair.key];
}

/** Each part's median over the workload's passes (total = sum of a pass's parts), with min–max per key. */
export function passFigures(passes) {
  const runs = passes.map((p) => ({ ...p, total_s: Object.values(p).reduce((a, b) => a + b, 0) }));
  const s = summarizeRuns(runs);
  return { ...Object.fromEntries(Object.keys(runs[0]).map((k) => [k, s[k]])), spread: s.spread, passes: runs };
}

/** Runs one variant; returns the workload timings plus the terminator's CPU seconds. */
export async function runDaskVariant(variant, env) {
  const { certs } = env;
  const tag = `dask-${variant}`;
  const dir = join(env.work, tag);
  mkdirSync(dir, { recursive: true });
  const schedPort = await freePort();
  const procs = [];
  const py = (name, args, extraEnv = {}) => {
    const p = startProcess(`${tag}-${name}`, PYTHON, args, {
      logDir: env.logs,
      cwd: dir,
      env: { DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT: '30s', ...extraEnv },
    });
    procs.push(p);
    return p;
  };
  try {
    const nativeTls = variant === 'native-tls';
    const terminated = variant !== 'plain' && !nativeTls;
    const schedArgs = ['-m', 'distributed.cli.dask_scheduler', '--host', '127.0.0.1', '--port', String(schedPort), '--no-dashboard',
      '--protocol', nativeTls ? 'tls' : 'tcp'];
    // Behind a terminator the scheduler listens on tcp:// but dials workers over TLS with its own certificate.
    if (variant !== 'plain') schedArgs.push(...tlsFlags(certs.scheduler, certs.ca));
    const sched = py('scheduler', schedArgs, terminated ? { DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: 'False' } : {});
    await waitForPort(schedPort, { proc: sched, timeoutMs: 60000 });

    let address = `${variant === 'plain' ? 'tcp' : 'tls'}://127.0.0.1:${schedPort}`;
    let term = null;
    if (terminated) {
      term = await CONTENDERS[variant].start({ ...env, tag, backendPort: schedPort });
      procs.push(term.proc);
      address = `tls://127.0.0.1:${term.port}`;
    }
    for (const w of ['w1', 'w2']) {
      const args = ['-m', 'distributed.cli.dask_worker', address, '--name', w, '--nthreads', '1', '--no-nanny', '--no-dashboard',
        '--host', '127.0.0.1', '--local-directory', join(dir, w)];
      if (variant !== 'plain') args.push(...tlsFlags(certs[`worker-${w}`], certs.ca));
      py(w, args);
    }
    const sz = env.daskSizes;
    const wl = [join(env.root, 'bench/dask/workload.py'), address, String(sz.tasks), String(sz.roundtrips), String(sz.scatter_mib), String(sz.passes)];
    if (variant !== 'plain') wl.push(certs.ca, certs.client.cert, certs.client.key);
    const cpu0 = term ? cpuSeconds(term.proc.pid) : null;
    const r = await runCommand(PYTHON, wl, { timeoutMs: env.quick ? 120000 : 240000, cwd: dir });
    const cpu = term ? cpuSeconds(term.proc.pid) - cpu0 : null;
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || !line.startsWith('{')) {
      throw new Error(`workload failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim().split('\n').slice(-3).join(' / ').slice(0, 300)}`);
    }
    return { ...passFigures(JSON.parse(line).passes), terminator_cpu_s: cpu };
  } finally {
    // Workers first so they do not spend the grace period reconnecting to a dead scheduler.
    for (const p of procs.slice(1).reverse()) await p?.stop(5000);
    await procs[0]?.stop(5000);
  }
}
