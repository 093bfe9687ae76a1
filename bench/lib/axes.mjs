// The measured axes. Each drives the C load generator against one freshly
// started contender and reads the contender's CPU time (utime+stime of its
// process tree) around the run; memory reads its RSS at each held step.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { heapMarkdown, summarizeHeap } from './heapsnapshot.mjs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, rssBytes, runCommand } from './proc.mjs';

const GiB = 2 ** 30;

/** Sizes per run kind; every loop in the load generator is also bounded by --deadline. */
export function sizes(quick, holdMax) {
  return quick
    ? { bulkBytes: 128 * 2 ** 20, reps: 1, pings: 3000, pingWarmup: 300, multiSeconds: 1, handshakes: 1000, hsSeconds: 2, holdSteps: [500, 1000], holdDeadline: 10, deadline: 30 }
    : { bulkBytes: GiB, reps: 3, pings: 10000, pingWarmup: 2000, multiSeconds: 5, handshakes: 20000, hsSeconds: 8, holdSteps: [2000, holdMax], holdDeadline: 35, deadline: 90 };
}

function tlsArgs(ctx, contender, { verify = true } = {}) {
  if (!contender.tls) return [];
  const c = ctx.certs;
  return ['--tls', '--ca', c.ca, '--cert', c.client.cert, '--key', c.client.key, ...(verify ? [] : ['--no-verify'])];
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
  return out;
}

/**
 * Runs a short axis ctx.sizes.reps times on the same contender and keeps the
 * median run by key (the machine is shared: one outlier must not decide a
 * ratio). CPU is summed over all repetitions; all runs are kept for the JSON.
 */
async function medianOf(ctx, inst, key, fn) {
  const runs = [];
  let cpu = 0;
  for (let i = 0; i < ctx.sizes.reps; i++) {
    const one = await withCpu(inst, fn);
    runs.push(one.r);
    cpu = one.cpu === null ? null : cpu + one.cpu;
  }
  const sorted = [...runs].sort((a, b) => a[key] - b[key]);
  return { r: sorted[Math.floor((sorted.length - 1) / 2)], runs, cpu };
}

/** Runs fn and returns its result plus the contender's CPU seconds spent meanwhile. */
async function withCpu(inst, fn) {
  const pid = inst.proc?.pid;
  const before = pid ? cpuSeconds(pid) : null;
  const r = await fn();
  const cpu = pid ? cpuSeconds(pid) - before : null;
  if (inst.proc?.exited) throw new Error(`${inst.proc.name} exited during the run: ${JSON.stringify(inst.proc.exited)}`);
  return { r, cpu };
}

export const AXES = {
  bulk: {
    describe: 'one connection, one-way bulk',
    async run(ctx, contender, inst) {
      const { r, runs, cpu } = await medianOf(ctx, inst, 'mb_per_s', () =>
        loadgen(ctx, ['bulk', '--port', String(inst.port), '--bytes', String(ctx.sizes.bulkBytes), ...tlsArgs(ctx, contender)]),
      );
      if (runs.some((x) => !x.complete)) throw new Error(`bulk stopped at the deadline after ${r.bytes} bytes`);
      const moved = runs.reduce((n, x) => n + x.bytes + x.warm_bytes, 0);
      return {
        mb_per_s: r.mb_per_s,
        cipher: r.cipher,
        bytes: r.bytes,
        seconds: r.seconds,
        runs_mb_per_s: runs.map((x) => x.mb_per_s),
        cpu_s: cpu,
        cpu_s_per_gib: cpu === null ? null : cpu / (moved / GiB),
        client_cpu_s: runs.reduce((n, x) => n + x.client_cpu_s, 0),
      };
    },
  },
  pingpong: {
    describe: '64 B round trips on one connection',
    async run(ctx, contender, inst) {
      const n = ctx.sizes.pings;
      const { r, runs, cpu } = await medianOf(ctx, inst, 'p50_us', () =>
        loadgen(ctx, ['pingpong', '--port', String(inst.port), '--count', String(n), '--warmup', String(ctx.sizes.pingWarmup), ...tlsArgs(ctx, contender)]),
      );
      const trips = runs.reduce((k, x) => k + x.count + ctx.sizes.pingWarmup, 0);
      return {
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        p999_us: r.p999_us,
        mean_us: r.mean_us,
        count: r.count,
        runs_p50_us: runs.map((x) => x.p50_us),
        cpu_s: cpu,
        cpu_us_per_rt: cpu === null ? null : (cpu * 1e6) / trips,
        client_cpu_s: runs.reduce((k, x) => k + x.client_cpu_s, 0),
      };
    },
  },
  multi: {
    describe: '16 connections, one 64 B message in flight each',
    async run(ctx, contender, inst) {
      const { r, cpu } = await withCpu(inst, () =>
        loadgen(ctx, ['multi', '--port', String(inst.port), '--conns', '16', '--seconds', String(ctx.sizes.multiSeconds), ...tlsArgs(ctx, contender)]),
      );
      return {
        rt_per_s: r.rt_per_s,
        count: r.count,
        seconds: r.seconds,
        cpu_s: cpu,
        cpu_us_per_rt: cpu === null ? null : (cpu * 1e6) / r.total,
        client_cpu_s: r.client_cpu_s,
      };
    },
  },
  handshake: {
    describe: 'full mTLS handshakes (connect, handshake, first upstream byte, close), 8 in flight',
    async run(ctx, contender, inst) {
      const { r, cpu } = await withCpu(inst, () =>
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
        cpu_s: cpu,
        cpu_ms_per_handshake: cpu === null ? null : (cpu * 1e3) / Math.max(1, r.count),
        client_cpu_s: r.client_cpu_s,
      };
    },
  },
  memory: {
    describe: 'idle mTLS connections held open: RSS growth per connection',
    async run(ctx, contender, inst) {
      const pid = inst.proc?.pid;
      // Warm the contender (TLS context, JIT, pools) so the baseline is not its cold start.
      await loadgen(ctx, ['handshake', '--port', String(inst.port), '--count', '50', '--seconds', '5', '--parallel', '4', ...tlsArgs(ctx, contender, { verify: false })]);
      await sleep(ctx.quick ? 300 : 1000);
      const base = pid ? rssBytes(pid) : null;
      const steps = await holdSteps(ctx, contender, inst, pid, async (held) => {
        // Profiling runs: a heap snapshot at the last step, after its RSS was read, shows what a connection holds.
        if (ctx.profileDir && contender.name.startsWith('gateway')) await heapSnapshot(ctx, contender, inst, held);
      });
      const out = { base_rss_mib: base === null ? null : base / 2 ** 20, steps: [] };
      for (const s of steps) {
        const grow = pid ? s.rss - base : null;
        out.steps.push({
          target: s.target,
          held: s.held,
          failed: s.failed,
          rss_mib: pid ? s.rss / 2 ** 20 : null,
          kib_per_conn: pid ? grow / s.held / 1024 : null,
        });
      }
      const last = out.steps.at(-1);
      // The fd limit can keep the last step just under 10,000: extrapolate linearly and say so.
      out.rss_at_10k_mib = pid && last ? (base + (last.kib_per_conn * 1024) * 10000) / 2 ** 20 : null;
      out.first_kib_per_conn = out.steps[0]?.kib_per_conn ?? null;
      out.last_kib_per_conn = last?.kib_per_conn ?? null;
      out.last_held = last?.held ?? 0;
      return out;
    },
  },
};

/** Opens connections step by step with `loadgen hold`, reading RSS at each "HELD n" line. */
async function holdSteps(ctx, contender, inst, pid, atLastStep) {
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
      await sleep(ctx.quick ? 300 : 1000); // let the contender settle (GC, deferred frees)
      steps.push({ target, held: Number(m[1]), failed: Number(m[2]), rss: pid ? rssBytes(pid) : 0 });
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
