// The measured axes. Each run drives the C load generator once against one
// freshly started contender and reads the CPU time (utime+stime) of the
// contender, the backend and the load generator around it; memory reads the
// contender's RSS at each held step, settled and after a forced GC.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { heapMarkdown, summarizeHeap } from './heapsnapshot.mjs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, cpuShares, machineBusySeconds, rssBytes, runCommand } from './proc.mjs';

const GiB = 2 ** 30;

/** Sizes per run kind; every loop in the load generator is also bounded by --deadline. */
export function sizes(quick, holdMax, runs) {
  return quick
    ? { runs: runs ?? 1, bulkBytes: 128 * 2 ** 20, pings: 3000, pingWarmup: 300, multiSeconds: 1, handshakes: 1000, hsSeconds: 2, holdSteps: [500, 1000], holdDeadline: 10, settleMs: 1000, deadline: 30 }
    : { runs: runs ?? 3, bulkBytes: GiB, pings: 10000, pingWarmup: 2000, multiSeconds: 3, handshakes: 20000, hsSeconds: 5, holdSteps: [2000, holdMax], holdDeadline: 35, settleMs: 1000, deadline: 90 };
}

/** The one TLS 1.3 suite every contender is held to (the load generator offers nothing else). */
export const PINNED_SUITE = 'TLS_AES_128_GCM_SHA256';

function tlsArgs(ctx, contender, { verify = true } = {}) {
  if (!contender.tls) return [];
  const c = ctx.certs;
  return ['--tls', '--ca', c.ca, '--cert', c.client.cert, '--key', c.client.key, '--ciphersuites', PINNED_SUITE, ...(verify ? [] : ['--no-verify'])];
}

async function loadgen(ctx, args) {
  const r = await runCommand(ctx.loadgen, [...args, '--deadline', String(ctx.sizes.deadline)], {
    timeoutMs: (ctx.sizes.deadline + 30) * 1000,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out;
  try {
    out = JSON.parse(line);
  } catch {
    throw new Error(`loadgen ${args[0]} gave no result (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim().slice(0, 400)}`);
  }
  if (out.error) throw new Error(`loadgen ${args[0]}: ${out.error}: ${r.stderr.trim().slice(0, 400)}`);
  // Everything but the port, so the report can check every contender got the same load.
  out.params = args.filter((a, i) => a !== '--port' && args[i - 1] !== '--port').join(' ');
  return out;
}

/**
 * Runs fn (one axis on one contender) and adds who spent the machine's CPU
 * meanwhile: the contender's process tree, the backend, the load generator
 * (its own getrusage, reported by fn's result as client_cpu_total_s) and
 * everything else (the bench itself, other users of a shared machine).
 */
async function withCpu(ctx, inst, fn) {
  const pid = inst.proc?.pid;
  const t0 = process.hrtime.bigint();
  const before = { c: pid ? cpuSeconds(pid) : null, b: cpuSeconds(ctx.backendPid), m: machineBusySeconds() };
  const r = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = pid ? cpuSeconds(pid) - before.c : null;
  if (inst.proc?.exited) throw new Error(`${inst.proc.name} exited during the run: ${JSON.stringify(inst.proc.exited)}`);
  const backend = cpuSeconds(ctx.backendPid) - before.b;
  const shares = cpuShares({ wall, cores: ctx.cores, contender: cpu ?? 0, backend, loadgen: r.client_cpu_total_s ?? 0, machine: machineBusySeconds() - before.m });
  return { r, cpu, extra: { params: r.params, wall_s: wall, backend_cpu_s: backend, loadgen_cpu_s: r.client_cpu_total_s ?? null, ...shares } };
}

/** Tickets the contender sent per TLS connection (a ticket is CPU and memory the contender spends). */
const ticketsPerConn = (r) => (r.tls_conns ? r.tickets / r.tls_conns : null);

export const AXES = {
  bulk: {
    describe: 'one connection, one-way bulk',
    async run(ctx, contender, inst) {
      const { r, cpu, extra } = await withCpu(ctx, inst, () =>
        loadgen(ctx, ['bulk', '--port', String(inst.port), '--bytes', String(ctx.sizes.bulkBytes), ...tlsArgs(ctx, contender)]),
      );
      if (!r.complete) throw new Error(`bulk stopped at the deadline after ${r.bytes} bytes`);
      const moved = r.bytes + r.warm_bytes;
      return {
        mb_per_s: r.mb_per_s,
        cipher: r.cipher,
        tickets_per_conn: ticketsPerConn(r),
        bytes: r.bytes,
        seconds: r.seconds,
        cpu_s: cpu,
        cpu_s_per_gib: cpu === null ? null : cpu / (moved / GiB),
        client_cpu_s: r.client_cpu_s,
        ...extra,
      };
    },
  },
  pingpong: {
    describe: '64 B round trips on one connection',
    async run(ctx, contender, inst) {
      const n = ctx.sizes.pings;
      const { r, cpu, extra } = await withCpu(ctx, inst, () =>
        loadgen(ctx, ['pingpong', '--port', String(inst.port), '--count', String(n), '--warmup', String(ctx.sizes.pingWarmup), ...tlsArgs(ctx, contender)]),
      );
      const trips = r.count + ctx.sizes.pingWarmup;
      return {
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        p999_us: r.p999_us,
        mean_us: r.mean_us,
        count: r.count,
        cipher: r.cipher,
        cpu_s: cpu,
        cpu_us_per_rt: cpu === null ? null : (cpu * 1e6) / trips,
        client_cpu_s: r.client_cpu_s,
        ...extra,
      };
    },
  },
  multi: {
    describe: '16 connections, one 64 B message in flight each',
    async run(ctx, contender, inst) {
      const { r, cpu, extra } = await withCpu(ctx, inst, () =>
        loadgen(ctx, ['multi', '--port', String(inst.port), '--conns', '16', '--seconds', String(ctx.sizes.multiSeconds), ...tlsArgs(ctx, contender)]),
      );
      return {
        rt_per_s: r.rt_per_s,
        count: r.count,
        seconds: r.seconds,
        cipher: r.cipher,
        cpu_s: cpu,
        cpu_us_per_rt: cpu === null ? null : (cpu * 1e6) / r.total,
        client_cpu_s: r.client_cpu_s,
        ...extra,
      };
    },
  },
  handshake: {
    describe: 'full mTLS handshakes (connect, handshake, first upstream byte, close), 8 in flight',
    async run(ctx, contender, inst) {
      const { r, cpu, extra } = await withCpu(ctx, inst, () =>
        loadgen(ctx, [
          'handshake', '--port', String(inst.port), '--count', String(ctx.sizes.handshakes),
          '--seconds', String(ctx.sizes.hsSeconds), '--parallel', '8', ...tlsArgs(ctx, contender, { verify: false }),
        ]),
      );
      if (r.failed > 0 && r.count === 0) throw new Error(`every handshake failed (${r.failed})`);
      return {
        per_s: r.per_s,
        count: r.count,
        failed: r.failed,
        p50_us: r.p50_us,
        cipher: r.cipher,
        tickets_per_conn: ticketsPerConn(r),
        cpu_s: cpu,
        cpu_ms_per_handshake: cpu === null ? null : (cpu * 1e3) / Math.max(1, r.count),
        client_cpu_s: r.client_cpu_s,
        ...extra,
      };
    },
  },
  memory: {
    describe: 'idle mTLS connections held open: RSS growth per connection, settled and after a forced GC',
    async run(ctx, contender, inst) {
      const pid = inst.proc?.pid;
      // Warm the contender (TLS context, JIT, pools) so the baseline is not its cold start.
      await loadgen(ctx, ['handshake', '--port', String(inst.port), '--count', '50', '--seconds', '5', '--parallel', '4', ...tlsArgs(ctx, contender, { verify: false })]);
      const base = await rssAtMoment(ctx, inst);
      const steps = await holdSteps(ctx, contender, inst, async (held) => {
        // Profiling runs: a heap snapshot at the last step, after its RSS was read, shows what a connection holds
        // (one process only: a worker's heap divided by every held connection would say nothing).
        if (ctx.profileDir && contender.name.startsWith('gateway') && inst.processes === 1) await heapSnapshot(ctx, contender, inst, held);
      });
      return memoryFigures(base, steps, pid !== undefined);
    },
  },
};

/**
 * RSS at the stated moment: settleMs after the last connection opened; then,
 * for a Node contender started with the GC hook, again right after a forced full GC.
 */
async function rssAtMoment(ctx, inst) {
  await sleep(ctx.sizes.settleMs);
  const pid = inst.proc?.pid;
  if (!pid) return { rss: null, rss_gc: null };
  const rss = rssBytes(pid);
  const gcDone = inst.gc ? await inst.gc() : false;
  return { rss, rss_gc: gcDone ? rssBytes(pid) : null };
}

/** Per-connection growth from the baseline at every held step, settled and after GC (KiB). */
export function memoryFigures(base, steps, measured) {
  const perConn = (at, from, held) => (at === null || from === null || !held ? null : (at - from) / held / 1024);
  const out = { base_rss_mib: measured && base.rss !== null ? base.rss / 2 ** 20 : null, steps: [] };
  for (const s of steps) {
    out.steps.push({
      target: s.target,
      held: s.held,
      failed: s.failed,
      rss_mib: measured ? s.rss / 2 ** 20 : null,
      kib_per_conn: measured ? perConn(s.rss, base.rss, s.held) : null,
      kib_per_conn_gc: measured ? perConn(s.rss_gc, base.rss_gc, s.held) : null,
    });
  }
  const first = out.steps[0];
  // A run that held only the first step says nothing about the last one (see run.mjs: the big step runs once).
  const last = out.steps.length > 1 ? out.steps.at(-1) : undefined;
  // The fd limit can keep the last step just under 10,000: extrapolate linearly and say so.
  out.rss_at_10k_mib = measured && last?.kib_per_conn !== null && last ? (base.rss + last.kib_per_conn * 1024 * 10000) / 2 ** 20 : null;
  out.first_kib_per_conn = first?.kib_per_conn ?? null;
  out.first_kib_per_conn_gc = first?.kib_per_conn_gc ?? null;
  out.last_kib_per_conn = last?.kib_per_conn ?? null;
  out.last_kib_per_conn_gc = last?.kib_per_conn_gc ?? null;
  out.first_held = first?.held ?? 0;
  out.last_held = last?.held ?? null;
  return out;
}

/** Opens connections step by step with `loadgen hold`, reading RSS at each "HELD n" line. */
async function holdSteps(ctx, contender, inst, atLastStep) {
  const targets = ctx.sizes.holdSteps;
  const args = [
    'hold', '--port', String(inst.port), '--steps', targets.join(','), '--parallel', '64',
    // Per step: a contender that opens connections slowly (stunnel: a thread each) is reported with what it held.
    '--deadline', String(ctx.sizes.holdDeadline), ...tlsArgs(ctx, contender, { verify: false }),
  ];
  const child = spawn(ctx.loadgen, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), (ctx.sizes.holdDeadline * targets.length + 60) * 1000);
  const steps = [];
  try {
    const lines = createInterface({ input: child.stdout });
    for await (const line of lines) {
      const m = /^HELD (\d+) \S+ (\d+) (\d+)/.exec(line);
      if (!m) continue;
      const target = targets[steps.length];
      const { rss, rss_gc } = await rssAtMoment(ctx, inst);
      steps.push({ target, held: Number(m[1]), failed: Number(m[2]), rss, rss_gc });
      if (steps.length === targets.length) await atLastStep(Number(m[1]));
      child.stdin.write('\n');
      if (steps.length === targets.length) break;
    }
  } finally {
    clearTimeout(kill);
    child.stdin.end();
    child.kill('SIGTERM');
  }
  if (steps.length < targets.length) throw new Error(`hold ended early: ${stderr.trim().slice(0, 400)}`);
  return steps;
}

/** SIGUSR2 makes a gateway started with --heapsnapshot-signal write a snapshot; summarize it per held connection. */
async function heapSnapshot(ctx, contender, inst, held) {
  const list = () => readdirSync(ctx.profileDir).filter((f) => f.endsWith('.heapsnapshot'));
  const before = new Set(list());
  process.kill(inst.proc.pid, 'SIGUSR2');
  const end = Date.now() + 120_000;
  let file;
  let lastSize = -1;
  while (Date.now() < end) {
    await sleep(1000);
    file ??= list().find((f) => !before.has(f));
    if (!file) continue;
    const size = statSync(join(ctx.profileDir, file)).size;
    if (size > 0 && size === lastSize) break;
    lastSize = size;
  }
  if (!file) return;
  try {
    const s = summarizeHeap(JSON.parse(readFileSync(join(ctx.profileDir, file), 'utf8')), { perConn: held });
    writeFileSync(join(ctx.profileDir, `heap-${contender.name}.md`), heapMarkdown(`${contender.name}: ${held} idle connections held`, s));
  } catch (e) {
    writeFileSync(join(ctx.profileDir, `heap-${contender.name}.md`), `snapshot unreadable: ${e.message}\n`);
  }
}
