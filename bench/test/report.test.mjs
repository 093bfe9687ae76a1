// Target verdicts and profile windows: the parts of the report that decide pass/miss.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { markdown, ratioVsHaproxy, targets } from '../lib/report.mjs';
import { summarizeRuns } from '../lib/stats.mjs';
import { summarizeProfile, summarizeProfiles } from '../lib/cpuprofile.mjs';

function results(gw) {
  return {
    meta: { started: 'x', command: 'c', duration_s: 1, quick: true, contenders: ['direct', 'haproxy', 'gateway', 'gateway-inspect'], machine: {}, versions: {}, notes: [] },
    axes: {
      bulk: { direct: { mb_per_s: 4000 }, haproxy: { mb_per_s: 800 }, gateway: { mb_per_s: gw.bulk }, 'gateway-inspect': { mb_per_s: gw.bulkInspect } },
      pingpong: { haproxy: { p50_us: 40 }, gateway: { p50_us: gw.p50 }, 'gateway-inspect': { p50_us: gw.p50 } },
      multi: { haproxy: { rt_per_s: 30000 }, gateway: { rt_per_s: 30000 }, 'gateway-inspect': { rt_per_s: 30000 } },
      handshake: { haproxy: { per_s: 600 }, gateway: { error: 'boom' } },
      memory: { haproxy: { first_kib_per_conn: 24, rss_at_10k_mib: 250, last_held: 9850 }, gateway: { first_kib_per_conn: 40, rss_at_10k_mib: 1100, last_held: 9850 } },
      dask: { 'native-tls': { total_s: 10 }, gateway: { total_s: 9.5 } },
    },
  };
}

const verdict = (ts, name) => ts.find((t) => t.target.startsWith(name));

test('targets compare the gateway with haproxy in the right direction', () => {
  const ts = targets(results({ bulk: 820, bulkInspect: 700, p50: 44 }), 'gateway');
  assert.equal(verdict(ts, 'bulk').pass, true);
  assert.equal(verdict(ts, '64 B p50').pass, false, 'a higher latency than haproxy misses');
  assert.equal(verdict(ts, 'handshakes').pass, null, 'an errored axis is not measured, neither pass nor miss');
  assert.equal(verdict(ts, 'RSS per idle').pass, false, '40/24 is above 1.5x');
  assert.equal(verdict(ts, '10,000').pass, false, '1100 MiB is not under 1 GiB');
  assert.equal(verdict(ts, 'Dask').pass, true);
});

test('handshakes must reach 1.20x haproxy: 1.10x misses, 1.25x passes', () => {
  const r = results({ bulk: 800, bulkInspect: 800, p50: 40 });
  r.axes.handshake.gateway = { per_s: 660 };
  assert.equal(verdict(targets(r, 'gateway'), 'handshakes').pass, false);
  r.axes.handshake.gateway = { per_s: 750 };
  assert.equal(verdict(targets(r, 'gateway'), 'handshakes').pass, true);
});

test('ratios against haproxy pair run i with haproxy run i for their spread', () => {
  const axes = {
    bulk: {
      haproxy: summarizeRuns([{ run: 1, mb_per_s: 1000 }, { run: 2, mb_per_s: 500 }, { run: 3, mb_per_s: 800 }]),
      gateway: summarizeRuns([{ run: 1, mb_per_s: 900 }, { run: 2, mb_per_s: 600 }, { run: 3, mb_per_s: 800 }]),
    },
  };
  const r = ratioVsHaproxy(axes, 'bulk', 'gateway', 'mb_per_s');
  assert.equal(r.ratio, 1, 'median 800 over median 800');
  assert.equal(r.min, 0.9);
  assert.equal(r.max, 1.2);
});

test('the page shows medians with their min-max and warns when suites differ', () => {
  const res = results({ bulk: 800, bulkInspect: 800, p50: 40 });
  res.axes.bulk.gateway = summarizeRuns([{ run: 1, mb_per_s: 700, cipher: 'A' }, { run: 2, mb_per_s: 900, cipher: 'A' }, { run: 3, mb_per_s: 800, cipher: 'A' }]);
  res.meta.suites = { per: { gateway: ['A'], haproxy: ['B'] }, suites: ['A', 'B'], mixed: true };
  const md = markdown(res);
  assert.match(md, /\| bulk throughput \(MB\/s\) \| gateway \| 800 \| 700–900 \(n=3\) \| 1\.00× \|/);
  assert.match(md, /did not all negotiate one suite/);
});

test('inspection cost is the worst of bulk, p50 and 16-connection rate', () => {
  const ts = targets(results({ bulk: 800, bulkInspect: 700, p50: 40 }), 'gateway-inspect');
  const t = verdict(ts, 'inspection cost');
  assert.ok(Math.abs(t.measured - 0.125) < 1e-9, `bulk 700 vs 800 is a 12.5% cost, got ${t.measured}`);
  assert.equal(t.pass, false);
});

test('the markdown page carries ratios against haproxy and direct', () => {
  const md = markdown(results({ bulk: 400, bulkInspect: 380, p50: 40 }));
  assert.match(md, /\| bulk throughput \(MB\/s\) \| gateway \| 400 \| — \| 0\.50× \| 0\.10× \|/);
  assert.match(md, /error: boom/);
});

test('a profile window keeps only the samples taken inside it', () => {
  const profile = {
    startTime: 1000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
      { id: 2, callFrame: { functionName: 'startup', url: 'node:internal/x', lineNumber: 0 } },
      { id: 3, callFrame: { functionName: 'hot', url: 'file:///r/dist/terminator/pipe.js', lineNumber: 9 } },
    ],
    samples: [2, 2, 3, 3, 3, 3],
    timeDeltas: [0, 100, 100, 100, 100, 100],
  };
  const all = summarizeProfile(profile);
  assert.equal(all.functions[0].name, 'hot dist/terminator/pipe.js:10');
  const win = summarizeProfile(profile, 10, { from: 1200, to: 1500 });
  assert.deepEqual(win.functions.map((f) => f.name), ['hot dist/terminator/pipe.js:10']);
  assert.equal(win.categories[0].name, 'gateway code');
});

function withSingleProcess() {
  const r = results({ bulk: 800, bulkInspect: 780, p50: 40 });
  r.meta.contenders = ['direct', 'haproxy', 'node-baseline', 'gateway-1p', 'gateway', 'gateway-inspect'];
  r.axes.bulk['gateway-1p'] = { mb_per_s: 600, cpu_s_per_gib: 1.9 };
  r.axes.bulk.gateway.cpu_s_per_gib = 2.1;
  r.axes.bulk.haproxy.cpu_s_per_gib = 1.2;
  r.axes.handshake.gateway = { per_s: 900, processes: 3, cpu_ms_per_handshake: 3.2 };
  r.axes.handshake['gateway-1p'] = { per_s: 500, processes: 1, cpu_ms_per_handshake: 3.0 };
  r.axes.pingpong['gateway-1p'] = { p50_us: 45, cpu_us_per_rt: 50 };
  return r;
}

test('the target table names the product columns and shows gateway-1p beside gateway for reference', () => {
  const md = markdown(withSingleProcess());
  const header = md.split('\n').find((l) => l.startsWith('| target | limit |'));
  assert.equal(header, '| target | limit | gateway (product, inspection off, 3 processes) | gateway-1p (reference: the same in one process, 1 process) | gateway-inspect (product, inspection on (the default)) | node-baseline (reference: naive Node) |');
  assert.match(md, /issue-17 verdicts are the \*\*product\*\* columns: gateway and gateway-inspect/);
  const hs = md.split('\n').find((l) => l.startsWith('| handshakes/s vs haproxy'));
  assert.match(hs, /\| 1\.50× \*\*pass\*\* \| 0\.83× \*\*MISS\*\* \|/, 'gateway 900/600 passes, gateway-1p 500/600 misses, in that order');
});

test('gateway-1p is not judged on the multi-process gateway\'s Dask workload', () => {
  const r = withSingleProcess();
  assert.equal(verdict(targets(r, 'gateway'), 'Dask').pass, true);
  assert.equal(verdict(targets(r, 'gateway-1p'), 'Dask').measured, null);
  r.axes.dask['gateway-1p'] = { total_s: 11 };
  assert.equal(verdict(targets(r, 'gateway-1p'), 'Dask').pass, false);
});

test('CPU per unit of work is given for every contender, gateway-1p included', () => {
  const md = markdown(withSingleProcess());
  const lines = md.split('\n');
  const head = lines.find((l) => l.startsWith('| unit |'));
  assert.equal(head, '| unit | haproxy | gateway-1p | gateway |', 'contenders with no CPU figure (node-baseline here) are left out');
  assert.ok(lines.includes('| CPU s per GiB | 1.20 | 1.90 | 2.10 |'), lines.filter((l) => l.startsWith('| CPU')).join('\n'));
  assert.ok(lines.includes('| CPU µs per round trip (1 conn) | — | 50.0 | — |'));
  assert.ok(lines.includes('| CPU ms per handshake | — | 3.00 | 3.20 |'));
});

test('a multi-process profile directory is summarized per process, each within its axis window', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-prof-'));
  try {
    const profile = (fn) => ({
      startTime: 1000,
      nodes: [{ id: 1, callFrame: { functionName: fn, url: 'file:///r/dist/x.js', lineNumber: 0 } }, { id: 2, callFrame: { functionName: 'startup', url: 'node:internal/x', lineNumber: 0 } }],
      samples: [2, 2, 1, 1],
      timeDeltas: [0, 100, 100, 100],
    });
    mkdirSync(join(dir, 'gateway-bulk-gateway-r1'));
    writeFileSync(join(dir, 'gateway-bulk-gateway-r1', 'CPU.1.101.0.001.cpuprofile'), JSON.stringify(profile('worker')));
    writeFileSync(join(dir, 'gateway-bulk-gateway-r1', 'CPU.1.100.0.001.cpuprofile'), JSON.stringify(profile('primary')));
    writeFileSync(join(dir, 'gateway-1p-bulk-gateway-1p-r1.cpuprofile'), JSON.stringify(profile('single')));
    const windows = { 'gateway-bulk-gateway-r1.cpuprofile': { from: 1150, to: 1400 } };
    const s = summarizeProfiles(dir, 10, windows);
    assert.deepEqual(Object.keys(s.files), ['gateway-1p-bulk-gateway-1p-r1.cpuprofile', 'gateway-bulk-gateway-r1/CPU.1.100.0.001.cpuprofile', 'gateway-bulk-gateway-r1/CPU.1.101.0.001.cpuprofile']);
    assert.deepEqual(s.files['gateway-bulk-gateway-r1/CPU.1.101.0.001.cpuprofile'].functions.map((f) => f.name), ['worker dist/x.js:1'], 'the window drops start-up');
    assert.equal(s.files['gateway-1p-bulk-gateway-1p-r1.cpuprofile'].functions.length, 2, 'no window: the whole lifetime');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
