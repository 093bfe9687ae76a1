#!/usr/bin/env node
// `npm run bench`: the gateway (multi-process as deployed, and in one process)
// against direct TCP, haproxy and a naive Node terminator (stunnel on request),
// plus a real Dask workload. Writes bench/results/<timestamp>.json and bench/results/latest.md.
//
//   node bench/run.mjs [--quick] [--only=bulk,pingpong,multi,handshake,memory,dask]
//                      [--contenders=direct,haproxy,stunnel,node-baseline,gateway-1p,gateway,gateway-inspect]
//                      [--runs=N] [--profile[=v8|perf]] [--no-build]
// Every axis runs N times (3; 1 with --quick) per contender, the contender order
// rotated from run to run; the page gives each figure's median and min–max.
// --profile runs the gateway under `node --cpu-prof` (v8: self time per JS function, heap
// snapshot at the last memory step) and every contender under `perf record` (perf: whole
// process, kernel and OpenSSL included); =v8 or =perf picks one, so neither perturbs the other.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AXES, PINNED_SUITE, sizes } from './lib/axes.mjs';
import { ensureCerts } from './lib/certs.mjs';
import { CONTENDERS, DEFAULT_CONTENDERS } from './lib/contenders.mjs';
import { daskAvailable, daskSizes, daskVariants, runDaskVariant } from './lib/dask.mjs';
import { summarizeProfiles } from './lib/cpuprofile.mjs';
import { startProcess, stopAll, waitForPort } from './lib/proc.mjs';
import { markdown } from './lib/report.mjs';
import { parameterCheck, rotation, suiteCheck, summarizeRuns } from './lib/stats.mjs';
import { perfAvailable, perfComparison, perfMarkdown, perfSummary, startPerf } from './lib/perf.mjs';
import { buildGateway, buildTools, ensurePrereqs, machineInfo, nofileLimit, versions } from './lib/setup.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL_AXES = [...Object.keys(AXES), 'dask'];

function parseFlags(argv) {
  const o = { quick: false, only: ALL_AXES, contenders: DEFAULT_CONTENDERS, profile: false, build: true, runs: undefined };
  for (const a of argv) {
    const [k, v] = a.split('=', 2);
    if (k === '--quick') o.quick = true;
    else if (k === '--profile') o.profile = v === undefined ? 'all' : v;
    else if (k === '--no-build') o.build = false;
    else if (k === '--only' && v) o.only = v.split(',');
    else if (k === '--contenders' && v) o.contenders = v.split(',');
    else if (k === '--runs' && /^[1-9]\d?$/.test(v ?? '')) o.runs = Number(v);
    else throw new Error(`unknown flag ${a}\nusage: node bench/run.mjs [--quick] [--only=${ALL_AXES.join(',')}] [--contenders=${Object.keys(CONTENDERS).join(',')}] [--runs=N] [--profile[=v8|perf]] [--no-build]`);
  }
  if (o.profile && !['all', 'v8', 'perf'].includes(o.profile)) throw new Error(`--profile takes v8 or perf, not '${o.profile}'`);
  for (const x of o.only) if (!ALL_AXES.includes(x)) throw new Error(`unknown axis '${x}' (axes: ${ALL_AXES.join(', ')})`);
  for (const c of o.contenders) if (!CONTENDERS[c]) throw new Error(`unknown contender '${c}' (contenders: ${Object.keys(CONTENDERS).join(', ')})`);
  return o;
}

const log = (msg) => process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function main() {
  const opts = parseFlags(process.argv.slice(2));
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const work = join(root, 'bench/work');
  const logs = join(work, 'logs', stamp);
  const resultsDir = join(root, 'bench/results');
  mkdirSync(logs, { recursive: true });
  const notes = [];

  const bin = await ensurePrereqs(log);
  const tools = buildTools(root, join(work, 'bin'));
  const certs = ensureCerts(join(work, 'certs'));
  const gatewayWanted = opts.contenders.some((c) => c.startsWith('gateway'));
  if (gatewayWanted && opts.build) await buildGateway(root, log);

  // Each proxied connection costs a contender two descriptors, and RLIMIT_NOFILE cannot be raised here.
  const nofile = nofileLimit();
  const holdMax = Math.min(10000, Math.floor((nofile - 300) / 2));
  if (holdMax < 10000 && !opts.quick && opts.only.includes('memory')) notes.push(`The open-files limit is ${nofile} and cannot be raised, so a proxy holding N client connections needs 2N descriptors: the last memory step holds ${holdMax.toLocaleString('en-US')} connections and the 10,000 figure is extrapolated linearly from it.`);
  const sz = sizes(opts.quick, holdMax, opts.runs);
  const profileDir = opts.profile ? join(work, 'profiles', stamp) : null;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const v8Dir = opts.profile === 'all' || opts.profile === 'v8' ? profileDir : null;
  const env = { root, work, logs, certs, bin, maxConns: holdMax + 20, profileDir: v8Dir, quick: opts.quick, daskSizes: daskSizes(opts.quick) };
  const ctx = { loadgen: tools.loadgen, certs, sizes: sz, quick: opts.quick, profileDir: v8Dir, cores: os.cpus().length };
  const meta = {
    started: started.toISOString(),
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    quick: opts.quick,
    contenders: opts.contenders,
    sizes: sz,
    dask: opts.only.includes('dask') ? env.daskSizes : undefined,
    machine: machineInfo(),
    versions: versions(root, bin),
    notes,
  };
  const axes = {};
  const profileWindows = {};
  const usePerf = (opts.profile === 'all' || opts.profile === 'perf') && perfAvailable();
  if ((opts.profile === 'all' || opts.profile === 'perf') && !usePerf) notes.push('perf is not installed or not permitted: no native profiles');
  const perfRuns = [];
  // The whole run stays under 15 minutes (2 in --quick): whatever would start later is skipped and says so.
  // Time is kept back for the Dask workload, which runs last (5 variants × 3 passes); the budget leaves room
  // for the one Dask variant that may start just before it.
  // More runs than the default (--runs) stretch the budget in proportion.
  const budgetS = (opts.quick ? 112 : 850) * Math.max(1, sz.runs / (opts.quick ? 1 : 3));
  const daskReserveS = opts.only.includes('dask') ? (opts.quick ? 55 : 200) : 0;
  const elapsedS = () => (Date.now() - started.getTime()) / 1000;
  const overBudget = (reserve = 0) => elapsedS() > budgetS - reserve;
  const backend = startProcess('backend', tools.backend, ['0'], { logDir: logs });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    backend.child.stdout.on('data', (d) => {
      buf += d;
      const m = /PORT (\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    backend.exitPromise.then((e) => reject(new Error(`backend exited: ${JSON.stringify(e)}`)));
  });
  await waitForPort(port, { proc: backend });
  env.backendPort = port;
  ctx.backendPid = backend.pid;

  // Runs outer, then axes, then contenders in an order rotated per run: drift in background
  // load spreads over every contender instead of always hitting the one measured last.
  const samples = {};
  let budgetSkips = 0;
  // The ~10,000-connection memory step runs in the first run only: it is a capacity check (< 1 GiB), it costs more
  // than any other axis, and the idle-memory ratio is taken at the first step, which every run measures.
  const laterRunCtx = { ...ctx, sizes: { ...sz, holdSteps: sz.holdSteps.slice(0, 1) } };
  for (let run = 0; run < sz.runs; run++) {
    for (const axis of opts.only.filter((a) => a !== 'dask')) {
      samples[axis] ??= {};
      for (const name of rotation(opts.contenders, run)) {
        const r = await measure(axis, name, run);
        if (r) (samples[axis][name] ??= []).push({ run: run + 1, ...r });
      }
    }
  }
  for (const [axis, per] of Object.entries(samples)) {
    axes[axis] = {};
    for (const name of opts.contenders) if (per[name]) axes[axis][name] = summarizeRuns(per[name]);
  }

  /** One run of one axis on a freshly started contender; null when the axis does not apply. */
  async function measure(axis, name, run) {
    const contender = CONTENDERS[name];
    const avail = contender.available(env);
    if (avail !== true) return { error: avail };
    if (axis === 'memory' && !contender.tls) return null; // no terminator, nothing to measure
    if (overBudget(daskReserveS)) {
      budgetSkips++;
      return { error: `skipped: the run would pass its ${budgetS} s budget` };
    }
    const tag = `${axis}-${name}-r${run + 1}`;
    let inst = null;
    const t0 = Date.now();
    try {
      inst = await contender.start({ ...env, tag });
      const from = monotonicMicros();
      const perf = usePerf && inst.proc && axis !== 'memory' ? await startPerf(inst.proc.pid, join(profileDir, `perf-${tag}.data`), logs, `perf-${tag}`) : null;
      let r;
      try {
        r = await AXES[axis].run(run === 0 ? ctx : laterRunCtx, contender, inst);
      } finally {
        await perf?.stop();
      }
      if (inst.threads) r.threads = inst.threads;
      if (inst.processes) r.processes = inst.processes;
      // A contender that refuses part of a step is measured at fewer connections than the others: say so.
      for (const st of r.steps ?? []) {
        if (st.held < st.target * 0.98) notes.push(`${name} held only ${st.held} of ${st.target} connections in run ${run + 1} (${st.failed} refused or failed)`);
      }
      if (profileDir) profileWindows[`${name}-${tag}.cpuprofile`] = { from, to: monotonicMicros() };
      if (perf) perfRuns.push(tag);
      log(`run ${run + 1} ${axis} ${name}: ${brief(r)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      return r;
    } catch (e) {
      log(`run ${run + 1} ${axis} ${name}: ERROR ${e.message ?? e}`);
      return { error: String(e.message ?? e) };
    } finally {
      // A profiled gateway writes its .cpuprofile only on a clean exit: give it time to drain.
      const exit = await inst?.proc?.stop(profileDir ? 20000 : 5000);
      if (exit && exit.code && exit.signal === null && exit.code !== 0 && exit.code !== 143) {
        notes.push(`${name} exited with code ${exit.code} after ${axis} (run ${run + 1})`);
      }
    }
  }
  await backend.stop();

  if (opts.only.includes('dask')) {
    const avail = await daskAvailable();
    axes.dask = {};
    for (const v of daskVariants(opts.contenders)) {
      if (avail === true && overBudget()) budgetSkips++;
      if (avail !== true || overBudget()) {
        axes.dask[v] = { error: avail !== true ? avail : `skipped: the run passed its ${budgetS} s budget` };
        continue;
      }
      const t0 = Date.now();
      try {
        axes.dask[v] = await runDaskVariant(v, env);
        log(`dask ${v}: ${brief(axes.dask[v])} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        axes.dask[v] = { error: String(e.message ?? e) };
        log(`dask ${v}: ERROR ${axes.dask[v].error}`);
      }
    }
  }

  meta.finished = new Date().toISOString();
  meta.duration_s = (Date.now() - started.getTime()) / 1000;
  meta.machine['load average at end'] = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const results = { meta, axes };
  // One suite for everyone, or the comparison measures cipher choice instead of the terminators.
  meta.suites = suiteCheck(axes);
  meta.parameters_differ = parameterCheck(axes);
  for (const [axis, ps] of Object.entries(meta.parameters_differ)) notes.push(`${axis}: the TLS contenders were driven with different load generator parameters: ${ps.join(' | ')}`);
  const suiteFault = meta.suites.mixed || meta.suites.suites.some((x) => x !== PINNED_SUITE)
    ? `contenders negotiated ${JSON.stringify(meta.suites.per)}, not all ${PINNED_SUITE}: the run is void` : null;
  if (suiteFault) notes.push(suiteFault);
  // Only a complete default run may stand as bench/results/latest.md.
  const complete = !opts.quick && sz.runs >= 3 && !budgetSkips && opts.only.length === ALL_AXES.length && DEFAULT_CONTENDERS.every((c) => opts.contenders.includes(c));
  if (budgetSkips) notes.push(`${budgetSkips} measurement(s) skipped at the ${budgetS} s budget: a partial run, not written as latest.md`);
  if (profileDir) {
    writeFileSync(join(profileDir, 'windows.json'), JSON.stringify(profileWindows, null, 2));
    if (v8Dir) results.profiles = summarizeProfiles(profileDir, 25, profileWindows);
    if (perfRuns.length) {
      const parts = ['# Native CPU profiles (perf, whole process, kernel included)', ''];
      results.perf = {};
      for (const tag of perfRuns) {
        results.perf[tag] = await perfSummary(join(profileDir, `perf-${tag}.data`));
        parts.push(perfMarkdown(tag, results.perf[tag]));
      }
      writeFileSync(join(profileDir, 'perf-summary.md'), parts.join('\n'));
      writeFileSync(join(profileDir, 'perf-compare.md'), perfComparison(results.perf, axes));
      log(`perf summary: ${relative(root, join(profileDir, 'perf-summary.md'))}`);
    }
    if (v8Dir) {
      writeFileSync(join(profileDir, 'summary.md'), results.profiles.markdown);
      log(`profile summary: ${relative(root, join(profileDir, 'summary.md'))}`);
    }
  }
  // A profiled run is slowed by its profilers: its figures stay beside the profiles, never in bench/results.
  // A partial run (quick, subset, fewer runs, void) goes to bench/work/results, where it cannot be committed by mistake.
  const outDir = profileDir ?? (complete && !suiteFault ? resultsDir : join(work, 'results'));
  mkdirSync(outDir, { recursive: true });
  const jsonPath = join(outDir, profileDir ? 'results.json' : `${stamp}${suiteFault ? '-void' : ''}.json`);
  const mdPath = join(outDir, profileDir ? 'results.md' : complete && !suiteFault ? 'latest.md' : `${stamp}${suiteFault ? '-void' : ''}.md`);
  writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n');
  const md = markdown(results);
  writeFileSync(mdPath, md + '\n');
  process.stdout.write('\n' + md + '\n');
  log(`wrote ${relative(root, jsonPath)} and ${relative(root, mdPath)} in ${meta.duration_s.toFixed(0)} s`);
  if (suiteFault) throw new Error(suiteFault);
}

/** CLOCK_MONOTONIC in microseconds: the clock V8 stamps .cpuprofile samples with. */
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

function brief(r) {
  return Object.entries(r)
    .filter(([, v]) => typeof v === 'number')
    .slice(0, 4)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
    .join(' ');
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    await stopAll();
    process.exit(130);
  });
}

main().then(
  async () => {
    await stopAll();
  },
  async (e) => {
    process.stderr.write(`bench: ${e?.stack ?? e}\n`);
    await stopAll();
    process.exitCode = 1;
  },
);
