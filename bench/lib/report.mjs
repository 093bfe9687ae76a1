// Turns the runs' results (per axis and contender: medians, min–max, runs)
// into ratios, target verdicts and a markdown page. Pure functions: the caller writes the files.

/** Metrics shown per axis: key path in the axis result, label, unit, and whether higher is better. */
export const METRICS = [
  { axis: 'bulk', key: 'mb_per_s', label: 'bulk throughput', unit: 'MB/s', higher: true },
  { axis: 'bulk', key: 'cpu_s_per_gib', label: 'contender CPU per GiB', unit: 's', higher: false },
  { axis: 'pingpong', key: 'p50_us', label: '64 B round trip p50', unit: 'µs', higher: false },
  { axis: 'pingpong', key: 'p99_us', label: '64 B round trip p99', unit: 'µs', higher: false },
  { axis: 'pingpong', key: 'cpu_us_per_rt', label: 'contender CPU per round trip', unit: 'µs', higher: false },
  { axis: 'multi', key: 'rt_per_s', label: '16 connections, round trips/s', unit: '/s', higher: true },
  { axis: 'multi', key: 'cpu_us_per_rt', label: 'contender CPU per round trip (16 conns)', unit: 'µs', higher: false },
  { axis: 'handshake', key: 'per_s', label: 'full mTLS handshakes/s', unit: '/s', higher: true },
  { axis: 'handshake', key: 'cpu_ms_per_handshake', label: 'contender CPU per handshake', unit: 'ms', higher: false },
  { axis: 'memory', key: 'first_kib_per_conn', label: 'RSS per idle conn (first step, settled 1 s)', unit: 'KiB', higher: false, stepIndex: 0 },
  { axis: 'memory', key: 'first_kib_per_conn_gc', label: 'RSS per idle conn (first step, after GC)', unit: 'KiB', higher: false, stepIndex: 0, gc: true },
  { axis: 'memory', key: 'last_kib_per_conn', label: 'RSS per idle conn (last step, settled 1 s)', unit: 'KiB', higher: false, stepIndex: -1 },
  { axis: 'memory', key: 'last_kib_per_conn_gc', label: 'RSS per idle conn (last step, after GC)', unit: 'KiB', higher: false, stepIndex: -1, gc: true },
  { axis: 'memory', key: 'rss_at_10k_mib', label: 'RSS holding 10,000 conns', unit: 'MiB', higher: false },
];

export const DASK_METRICS = [
  { key: 'total_s', label: 'Dask workload total' },
  { key: 'tasks_s', label: 'Dask 5,000 small tasks' },
  { key: 'roundtrips_s', label: 'Dask sequential submit→result' },
  { key: 'scatter_gather_s', label: 'Dask scatter+gather' },
];

const value = (axes, axis, contender, key) => {
  const r = axes?.[axis]?.[contender];
  return r && !r.error && typeof r[key] === 'number' ? r[key] : null;
};

const ratio = (a, b) => (a === null || b === null || b === 0 ? null : a / b);

function fmt(v, digits) {
  if (v === null || v === undefined) return '—';
  if (digits === undefined) digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const fx = (r) => (r === null ? '—' : `${fmt(r, 2)}×`);

/**
 * A ratio of medians against haproxy, plus the min–max of the per-run ratios
 * (run i of the contender over run i of haproxy: both ran within the same minute).
 */
export function ratioVsHaproxy(axes, axis, contender, key) {
  const r = ratio(value(axes, axis, contender, key), value(axes, axis, 'haproxy', key));
  const mine = axes?.[axis]?.[contender]?.runs ?? [];
  const ref = new Map((axes?.[axis]?.haproxy?.runs ?? []).map((x) => [x.run, x[key]]));
  const paired = mine.map((x) => ratio(num(x[key]), num(ref.get(x.run)))).filter((x) => x !== null);
  return { ratio: r, min: paired.length ? Math.min(...paired) : null, max: paired.length ? Math.max(...paired) : null };
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The issue's targets, as ratios against haproxy from the same run. */
export const TARGETS = [
  { name: 'bulk MB/s', axis: 'bulk', key: 'mb_per_s', limit: 1.0, higher: true },
  { name: '64 B p50', axis: 'pingpong', key: 'p50_us', limit: 1.0, higher: false },
  { name: '16-conn round trips/s', axis: 'multi', key: 'rt_per_s', limit: 1.0, higher: true },
  { name: 'handshakes/s', axis: 'handshake', key: 'per_s', limit: 1.2, higher: true },
  { name: 'RSS per idle conn at the first step (settled 1 s)', axis: 'memory', key: 'first_kib_per_conn', limit: 1.5, higher: false },
];

/**
 * Whose verdicts the target table gives, in column order: the issue-17 targets are about the product
 * as deployed (gateway, gateway-inspect: --processes auto); the single-process gateway and naive Node
 * are judged beside them for reference.
 */
export const JUDGED = [
  { name: 'gateway', role: 'product, inspection off' },
  { name: 'gateway-1p', role: 'reference: the same in one process' },
  { name: 'gateway-inspect', role: 'product, inspection on (the default)' },
  { name: 'node-baseline', role: 'reference: naive Node' },
];

/** Target verdicts for one contender (a gateway variant, or the Node baseline for reference). */
export function targets(results, gw) {
  const a = results.axes;
  const out = [];
  const add = (name, limit, measured, pass, detail) =>
    out.push({ target: name, limit, measured, pass: measured === null ? null : pass, detail });
  for (const t of TARGETS) {
    const r = ratioVsHaproxy(a, t.axis, gw, t.key);
    const range = r.min === null || r.min === r.max ? undefined : `runs ${fmt(r.min, 2)}–${fmt(r.max, 2)}×`;
    add(`${t.name} vs haproxy`, `${t.higher ? '≥' : '≤'} ${t.limit.toFixed(2)}×`, r.ratio, t.higher ? r.ratio >= t.limit : r.ratio <= t.limit, range);
  }
  const rss10k = value(a, 'memory', gw, 'rss_at_10k_mib');
  add('10,000 mTLS conns held', '< 1024 MiB', rss10k, rss10k < 1024, held(a, gw));
  if (gw === 'gateway-inspect') {
    const on = 'gateway-inspect';
    const off = 'gateway';
    const costs = [
      1 - (ratio(value(a, 'bulk', on, 'mb_per_s'), value(a, 'bulk', off, 'mb_per_s')) ?? NaN),
      (ratio(value(a, 'pingpong', on, 'p50_us'), value(a, 'pingpong', off, 'p50_us')) ?? NaN) - 1,
      1 - (ratio(value(a, 'multi', on, 'rt_per_s'), value(a, 'multi', off, 'rt_per_s')) ?? NaN),
    ];
    const known = costs.filter((c) => !Number.isNaN(c));
    const worst = known.length ? Math.max(...known) : null;
    add('inspection cost vs off (worst of bulk, p50, 16-conn)', '≤ 10%', worst, worst <= 0.1,
      `bulk ${pctStr(costs[0])}, p50 ${pctStr(costs[1])}, 16-conn ${pctStr(costs[2])}`);
  }
  // Only the contender's own Dask variant counts: gateway-1p is not judged on the multi-process gateway's workload.
  const d = ratio(a.dask?.[gw]?.total_s ?? null, a.dask?.['native-tls']?.total_s ?? null);
  add('Dask workload vs native TLS', '≤ 1.00×', d, d <= 1.0, a.dask && !a.dask[gw] ? 'no Dask variant' : undefined);
  return out;
}

/** ", N processes" as measured (the contender's process tree at the start of its handshake runs), or nothing. */
function processesNote(axes, c) {
  const n = axes.handshake?.[c]?.processes ?? axes.bulk?.[c]?.processes;
  return typeof n === 'number' ? `, ${fmt(n, 0)} process${n === 1 ? '' : 'es'}` : '';
}

function held(a, gw) {
  const m = a.memory?.[gw];
  return m && !m.error ? `${m.last_held} held, extrapolated to 10,000` : undefined;
}

const pctStr = (c) => (Number.isNaN(c) || c === null ? '—' : `${(c * 100).toFixed(1)}%`);

function fmtTarget(t) {
  if (t.measured === null) return 'not measured';
  const v = t.limit.includes('%') ? pctStr(t.measured) : t.limit.includes('MiB') ? `${fmt(t.measured, 0)} MiB` : fx(t.measured);
  return `${v} ${t.pass ? '**pass**' : '**MISS**'}`;
}

/** The markdown page: machine, results with spread and ratios, Dask, targets, CPU, suites. */
export function markdown(results) {
  const { meta, axes } = results;
  const contenders = meta.contenders;
  const L = [];
  L.push(`# Gateway benchmark — ${meta.started}${meta.quick ? ' (quick)' : ''}`, '');
  L.push(`Command: \`${meta.command}\` · duration ${fmt(meta.duration_s, 0)} s · ${meta.sizes?.runs ?? 1} run(s) per contender per axis`, '');
  L.push('| machine | |', '|---|---|');
  for (const [k, v] of Object.entries(meta.machine)) L.push(`| ${k} | ${v} |`);
  for (const [k, v] of Object.entries(meta.versions)) L.push(`| ${k} | ${v} |`);
  L.push('');
  L.push(`All contenders on 127.0.0.1, TLS 1.3 pinned to ${meta.suites?.suites?.join(', ') || 'one suite'} (the load generator offers only that), ECDSA P-256, ` +
    'client certificate required, forwarding to the same C backend, driven by the same C load generator with the same parameters; ' +
    'each started fresh for every axis of every run, the contender order rotated between runs. ' +
    'Each value is the median over the runs, with min–max; "vs haproxy" is the ratio of medians and, in brackets, the min–max of the per-run ratios ' +
    '(run i against haproxy\'s run i). "contender CPU" is utime+stime of the contender process tree from /proc during the axis (a multi-process gateway: its primary and every worker).', '');
  if (meta.parameters_differ) {
    const bad = Object.keys(meta.parameters_differ);
    L.push(bad.length ? `**Load generator parameters differed between TLS contenders on: ${bad.join(', ')}** (see Notes).` : 'Load generator parameters (port aside): checked identical for every TLS contender in every run of the bulk, round-trip and handshake axes (memory uses the same TLS arguments).', '');
  }
  L.push('| metric | contender | median | min–max | vs haproxy | vs direct |', '|---|---|---:|---:|---:|---:|');
  for (const m of METRICS) {
    if (!axes[m.axis]) continue;
    for (const c of contenders) {
      const r = axes[m.axis][c];
      if (!r) continue;
      if (r.error) {
        if (m === METRICS.find((x) => x.axis === m.axis)) L.push(`| ${m.label} | ${c} | error: ${cell(r.error)} | | | |`);
        continue;
      }
      const v = value(axes, m.axis, c, m.key);
      if (v === null) continue;
      let label = `${m.label} (${m.unit})`;
      if (m.stepIndex !== undefined) {
        const held = m.stepIndex === 0 ? r.first_held : r.last_held;
        if (held) label = `RSS per idle conn at ${Math.round(held).toLocaleString('en-US')}, ${m.gc ? 'after a forced GC' : 'settled 1 s'} (KiB)`;
      }
      const vh = ratioVsHaproxy(axes, m.axis, c, m.key);
      L.push(`| ${label} | ${c} | ${fmt(v)} | ${range(r.spread?.[m.key])} | ${fx(vh.ratio)}${vh.min !== null && c !== 'haproxy' ? ` [${fmt(vh.min, 2)}–${fmt(vh.max, 2)}]` : ''} | ${fx(ratio(v, value(axes, m.axis, 'direct', m.key)))} |`);
    }
  }
  L.push('');
  for (const c of contenders) {
    const errs = Object.entries(axes).flatMap(([axis, per]) => (per[c]?.errors ?? []).map((e) => `${axis}: ${e}`));
    if (errs.length) L.push(`Failed runs of ${c}: ${errs.map(cell).join('; ')}.`, '');
  }
  if (axes.dask) {
    L.push('## Real Dask workload (seconds; lower is better)', '');
    const sz = meta.dask;
    if (sz) L.push(`${sz.tasks} small tasks, ${sz.roundtrips} sequential submit→result round trips, ${sz.scatter_mib} MiB scatter+gather; 1 scheduler, 2 workers, 1 client; ${sz.passes ?? 1} pass(es) on one cluster per variant, each part the median over the passes, total = the median of the passes' sums.`, '');
    L.push('| variant | total | total min–max | tasks | round trips | scatter+gather | vs haproxy | vs plain TCP | vs native TLS |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, r] of Object.entries(axes.dask)) {
      if (r.error) {
        L.push(`| ${name} | error: ${cell(r.error)} | | | | | | | |`);
        continue;
      }
      const t = r.total_s;
      const ref = (k) => axes.dask[k]?.total_s ?? null;
      L.push(`| ${name} | ${fmt(t, 2)} | ${range(r.spread?.total_s)} | ${fmt(r.tasks_s, 2)} | ${fmt(r.roundtrips_s, 2)} | ${fmt(r.scatter_gather_s, 2)} | ${fx(ratio(t, ref('haproxy')))} | ${fx(ratio(t, ref('plain')))} | ${fx(ratio(t, ref('native-tls')))} |`);
    }
    L.push('');
  }
  const judged = JUDGED.filter((j) => contenders.includes(j.name));
  if (judged.length && contenders.includes('haproxy')) {
    L.push('## Targets (issue 17), ratios of medians against haproxy', '');
    L.push('The issue-17 verdicts are the **product** columns: gateway and gateway-inspect as deployed on this machine. ' +
      'gateway-1p (the gateway in one process, inspection off) and node-baseline are judged beside them for reference only.', '');
    L.push(`| target | limit | ${judged.map((j) => `${j.name} (${j.role}${processesNote(axes, j.name)})`).join(' | ')} |`, `|---|---|${judged.map(() => '---|').join('')}`);
    const per = judged.map((j) => targets(results, j.name));
    const names = [...new Set(per.flat().map((t) => t.target))];
    for (const name of names) {
      const first = per.flat().find((t) => t.target === name);
      const cells = per.map((ts) => ts.find((t) => t.target === name)).map((t) => (t ? fmtTarget(t) + (t.detail ? ` (${t.detail})` : '') : 'n/a'));
      L.push(`| ${name} | ${first.limit} | ${cells.join(' | ')} |`);
    }
    L.push('', 'node-baseline (tls.createServer + pipe()) is what "naive Node" means in the comparison.', '');
  }
  L.push(...cpuPerUnit(axes, contenders), ...cpuSharesTable(axes, contenders), ...tlsFacts(meta, axes, contenders));
  if (meta.notes?.length) {
    L.push('## Notes', '', ...meta.notes.map((n) => `- ${n}`), '');
  }
  return L.join('\n');
}

const cell = (s) => String(s).slice(0, 120).replace(/\|/g, '/');

function range(sp) {
  if (!sp || sp.min === null) return '—';
  return sp.n > 1 ? `${fmt(sp.min)}–${fmt(sp.max)} (n=${sp.n})` : `n=${sp.n}`;
}

/** Contender CPU per unit of work: the steadiest figure on a shared machine. */
export const CPU_UNITS = [
  { axis: 'bulk', key: 'cpu_s_per_gib', label: 'CPU s per GiB' },
  { axis: 'pingpong', key: 'cpu_us_per_rt', label: 'CPU µs per round trip (1 conn)' },
  { axis: 'multi', key: 'cpu_us_per_rt', label: 'CPU µs per round trip (16 conns)' },
  { axis: 'handshake', key: 'cpu_ms_per_handshake', label: 'CPU ms per handshake' },
];

function cpuPerUnit(axes, contenders) {
  const cs = contenders.filter((c) => CPU_UNITS.some((u) => value(axes, u.axis, c, u.key) !== null));
  if (!cs.length) return [];
  const L = ['## Contender CPU per unit of work (median, min–max)', ''];
  L.push(`| unit | ${cs.join(' | ')} |`, `|---|${cs.map(() => '---:|').join('')}`);
  for (const u of CPU_UNITS) {
    if (!axes[u.axis]) continue;
    L.push(`| ${u.label} | ${cs.map((c) => { const v = value(axes, u.axis, c, u.key); const sp = axes[u.axis][c]?.spread?.[u.key]; return v === null ? '—' : sp?.n > 1 ? `${fmt(v)} (${fmt(sp.min)}–${fmt(sp.max)})` : fmt(v); }).join(' | ')} |`);
  }
  return [...L, ''];
}

const SHARES = ['contender_share', 'loadgen_share', 'backend_share', 'other_share', 'idle_share'];

function cpuSharesTable(axes, contenders) {
  const L = ['## Who used the CPU during each axis (median share of all cores × wall time)', ''];
  L.push('"other" is machine-wide busy time (/proc/stat) minus the three measured processes: the bench runner and anything else on the machine. ' +
    'A contender whose load generator or "other" share is high was not the only limit.', '');
  L.push('| axis | contender | contender | load generator | backend | other | idle | contender processes / threads |', '|---|---|---:|---:|---:|---:|---:|---:|');
  let rows = 0;
  for (const [axis, per] of Object.entries(axes)) {
    if (axis === 'dask') continue;
    for (const c of contenders) {
      const r = per[c];
      if (!r || r.error || typeof r.contender_share !== 'number') continue;
      L.push(`| ${axis} | ${c} | ${SHARES.map((k) => pct(r[k])).join(' | ')} | ${r.processes ?? '—'} / ${r.threads ?? '—'} |`);
      rows++;
    }
  }
  return rows ? [...L, ''] : [];
}

const pct = (v) => (typeof v === 'number' ? `${(v * 100).toFixed(0)}%` : '—');

function tlsFacts(meta, axes, contenders) {
  const L = ['## TLS as negotiated', ''];
  if (meta.suites?.mixed) L.push('**The contenders did not all negotiate one suite: this run compares cipher choices and is void.**', '');
  L.push('| contender | suites seen (all axes, all runs) | session tickets sent per handshake |', '|---|---|---:|');
  let rows = 0;
  for (const c of contenders) {
    const suites = meta.suites?.per?.[c];
    if (!suites) continue;
    L.push(`| ${c} | ${suites.join(', ')} | ${fmt(value(axes, 'handshake', c, 'tickets_per_conn') ?? value(axes, 'bulk', c, 'tickets_per_conn'), 1)} |`);
    rows++;
  }
  return rows ? [...L, ''] : [];
}
