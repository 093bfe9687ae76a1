// Summarizes V8 .cpuprofile files (node --cpu-prof): self time per function
// and per category, so the report can say what limits an axis.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

function category(frame) {
  const { functionName: fn, url } = frame;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'native/program';
  if (url.includes('/dist/')) return 'gateway code';
  if (url.includes('node_modules')) return 'npm dependencies';
  if (url.startsWith('node:')) return 'node core';
  return url ? 'other JS' : 'native/builtin';
}

/**
 * Self time per function and category for one profile. window {from, to} in
 * microseconds of CLOCK_MONOTONIC (process.hrtime, the clock V8 stamps
 * samples with) keeps only the measured axis, not start-up and drain.
 */
export function summarizeProfile(profile, top = 20, window = undefined) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const { samples = [], timeDeltas = [] } = profile;
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0;
    if (window && (t < window.from || t > window.to)) continue;
    // timeDeltas[i + 1] is the time until the next sample: attribute it to this one.
    const dt = timeDeltas[i + 1] ?? 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const fns = new Map();
  const cats = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id).callFrame;
    const cat = category(f);
    if (cat === 'idle') {
      idle += us;
      continue;
    }
    total += us;
    const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
  }
  const rank = (m) => [...m].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, ms: us / 1000, pct: total ? (100 * us) / total : 0 }));
  return { busy_ms: total / 1000, idle_ms: idle / 1000, functions: rank(fns).slice(0, top), categories: rank(cats) };
}

/**
 * The .cpuprofile files in dir, each with the key of its window: a file's own name, or for a multi-process
 * contender (one profile per process, in a subdirectory <name>-<tag>/) that of the single profile, <name>-<tag>.cpuprofile.
 */
function profileFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.cpuprofile')) out.push({ f: e.name, key: e.name });
    if (e.isDirectory()) {
      for (const f of readdirSync(join(dir, e.name)).filter((x) => x.endsWith('.cpuprofile'))) out.push({ f: `${e.name}/${f}`, key: `${e.name}.cpuprofile` });
    }
  }
  return out.sort((a, b) => a.f.localeCompare(b.f));
}

/** Summaries of every .cpuprofile in dir, with a markdown rendering; windows maps file name to {from, to}. */
export function summarizeProfiles(dir, top = 20, windows = {}) {
  const out = { files: {} };
  const md = ['# Gateway CPU profiles (self time, idle excluded)', ''];
  for (const { f, key } of profileFiles(dir)) {
    let s;
    try {
      s = summarizeProfile(JSON.parse(readFileSync(join(dir, f), 'utf8')), top, windows[key]);
    } catch (e) {
      md.push(`## ${f}`, '', `unreadable: ${e.message}`, '');
      continue;
    }
    out.files[f] = s;
    const scope = windows[key] ? 'during the axis only' : 'whole process lifetime';
    md.push(`## ${f}`, '', `${scope}: busy ${s.busy_ms.toFixed(0)} ms, idle ${s.idle_ms.toFixed(0)} ms`, '');
    md.push('| category | self ms | % |', '|---|---:|---:|');
    for (const c of s.categories) md.push(`| ${c.name} | ${c.ms.toFixed(0)} | ${c.pct.toFixed(1)} |`);
    md.push('', '| function | self ms | % |', '|---|---:|---:|');
    for (const fn of s.functions) md.push(`| \`${fn.name}\` | ${fn.ms.toFixed(1)} | ${fn.pct.toFixed(1)} |`);
    md.push('');
  }
  out.markdown = md.join('\n');
  return out;
}

// `node bench/lib/cpuprofile.mjs DIR|FILE`: print the summary.
if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: node bench/lib/cpuprofile.mjs DIR_OR_FILE\n');
    process.exit(2);
  }
  if (target.endsWith('.cpuprofile')) {
    const s = summarizeProfile(JSON.parse(readFileSync(target, 'utf8')));
    process.stdout.write(JSON.stringify(s, null, 2) + '\n');
  } else {
    let windows = {};
    try {
      windows = JSON.parse(readFileSync(join(target, 'windows.json'), 'utf8'));
    } catch {}
    process.stdout.write(summarizeProfiles(target, 20, windows).markdown + '\n');
  }
}
