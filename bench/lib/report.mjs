// Turns one run's results into ratios, target verdicts and a markdown page.
// Pure functions: the caller writes the files.

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
  { axis: 'memory', key: 'first_kib_per_conn', label: 'RSS per idle conn (first step)', unit: 'KiB', higher: false, stepIndex: 0 },
  { axis: 'memory', key: 'last_kib_per_conn', label: 'RSS per idle conn (last step)', unit: 'KiB', higher: false, stepIndex: -1 },
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

/** Target verdicts for one gateway variant. */
export function targets(results, gw) {
  const a = results.axes;
  const out = [];
  const add = (name, limit, measured, pass, detail) =>
    out.push({ target: name, limit, measured, pass: measured === null ? null : pass, detail });
  const vs = (axis, key) => ratio(value(a, axis, gw, key), value(a, axis, 'haproxy', key));
  let r = vs('bulk', 'mb_per_s');
  add('bulk MB/s vs haproxy', '≥ 1.00×', r, r >= 1.0);
  r = vs('pingpong', 'p50_us');
  add('64 B p50 vs haproxy', '≤ 1.00×', r, r <= 1.0);
  r = vs('multi', 'rt_per_s');
  add('16-conn round trips/s vs haproxy', '≥ 1.00×', r, r >= 1.0);
  r = vs('handshake', 'per_s');
  add('handshakes/s vs haproxy', '≥ 1.00×', r, r >= 1.0);
  r = vs('memory', 'last_kib_per_conn');
  add('RSS per idle conn vs haproxy', '≤ 1.50×', r, r <= 1.5);
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
  const daskVariant = gw === 'gateway-inspect' ? 'gateway-inspect' : 'gateway';
  const d = ratio(a.dask?.[daskVariant]?.total_s ?? null, a.dask?.['native-tls']?.total_s ?? null);
  add('Dask workload vs native TLS', '≤ 1.00×', d, d <= 1.0);
  return out;
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

/** The markdown page: machine, results with ratios, Dask, targets, errors. */
export function markdown(results) {
  const { meta, axes } = results;
  const contenders = meta.contenders;
  const L = [];
  L.push(`# Gateway benchmark — ${meta.started}${meta.quick ? ' (quick)' : ''}`, '');
  L.push(`Command: \`${meta.command}\` · duration ${fmt(meta.duration_s, 0)} s`, '');
  L.push('| machine | |', '|---|---|');
  for (const [k, v] of Object.entries(meta.machine)) L.push(`| ${k} | ${v} |`);
  for (const [k, v] of Object.entries(meta.versions)) L.push(`| ${k} | ${v} |`);
  L.push('');
  L.push('All contenders on 127.0.0.1, TLS 1.3, ECDSA P-256, client certificate required, forwarding to the same C backend; ' +
    'each started fresh per axis. Ratios are against haproxy and against direct plain TCP from this run. ' +
    '"contender CPU" is utime+stime of the contender process tree from /proc during the axis.', '');
  L.push('| metric | contender | value | vs haproxy | vs direct |', '|---|---|---:|---:|---:|');
  for (const m of METRICS) {
    if (!axes[m.axis]) continue;
    for (const c of contenders) {
      const r = axes[m.axis][c];
      if (!r) continue;
      if (r.error) {
        if (m === METRICS.find((x) => x.axis === m.axis)) L.push(`| ${m.label} | ${c} | error: ${r.error.slice(0, 120).replace(/\|/g, '/')} | | |`);
        continue;
      }
      const v = value(axes, m.axis, c, m.key);
      if (v === null) continue;
      let label = `${m.label} (${m.unit})`;
      if (m.stepIndex !== undefined) {
        const step = r.steps?.at(m.stepIndex);
        if (step) label = `RSS per idle conn at ${step.held.toLocaleString('en-US')} (KiB)`;
      }
      L.push(`| ${label} | ${c} | ${fmt(v)} | ${fx(ratio(v, value(axes, m.axis, 'haproxy', m.key)))} | ${fx(ratio(v, value(axes, m.axis, 'direct', m.key)))} |`);
    }
  }
  L.push('');
  if (axes.dask) {
    L.push('## Real Dask workload (seconds; lower is better)', '');
    const sz = meta.dask;
    if (sz) L.push(`${sz.tasks} small tasks, ${sz.roundtrips} sequential submit→result round trips, ${sz.scatter_mib} MiB scatter+gather; 1 scheduler, 2 workers, 1 client; each part is the best of ${sz.passes ?? 1} pass(es) on the same cluster, total = sum of the parts.`, '');
    L.push('| variant | total | tasks | round trips | scatter+gather | vs haproxy | vs plain TCP | vs native TLS |', '|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, r] of Object.entries(axes.dask)) {
      if (r.error) {
        L.push(`| ${name} | error: ${r.error.slice(0, 120).replace(/\|/g, '/')} | | | | | | |`);
        continue;
      }
      const t = r.total_s;
      const ref = (k) => axes.dask[k]?.total_s ?? null;
      L.push(`| ${name} | ${fmt(t, 2)} | ${fmt(r.tasks_s, 2)} | ${fmt(r.roundtrips_s, 2)} | ${fmt(r.scatter_gather_s, 2)} | ${fx(ratio(t, ref('haproxy')))} | ${fx(ratio(t, ref('plain')))} | ${fx(ratio(t, ref('native-tls')))} |`);
    }
    L.push('');
  }
  const gws = contenders.filter((c) => c.startsWith('gateway'));
  if (gws.length) {
    L.push('## Targets', '');
    L.push(`| target | limit | ${gws.join(' | ')} |`, `|---|---|${gws.map(() => '---|').join('')}`);
    const per = gws.map((g) => targets(results, g));
    for (let i = 0; i < per[0].length; i++) {
      const cells = per.map((ts) => ts.find((t) => t.target === per[0][i].target)).map((t) => (t ? fmtTarget(t) + (t.detail ? ` (${t.detail})` : '') : 'n/a'));
      L.push(`| ${per[0][i].target} | ${per[0][i].limit} | ${cells.join(' | ')} |`);
    }
    const extra = per.flat().filter((t) => !per[0].some((p) => p.target === t.target));
    for (const t of extra) L.push(`| ${t.target} | ${t.limit} | ${gws.map((g) => (g === 'gateway-inspect' ? fmtTarget(t) + (t.detail ? ` (${t.detail})` : '') : 'n/a')).join(' | ')} |`);
    L.push('');
  }
  const ciphers = Object.entries(axes.bulk ?? {}).filter(([, r]) => r.cipher && r.cipher !== 'none');
  if (ciphers.length) L.push(`Negotiated TLS 1.3 suite (bulk): ${ciphers.map(([c, r]) => `${c} ${r.cipher}`).join(', ')}.`, '');
  L.push('## Load generator and contender CPU per axis', '');
  L.push('| axis | contender | contender CPU s | load generator CPU s |', '|---|---|---:|---:|');
  for (const [axis, per] of Object.entries(axes)) {
    if (axis === 'dask') continue;
    for (const [c, r] of Object.entries(per)) {
      if (r.error || r.cpu_s === undefined) continue;
      L.push(`| ${axis} | ${c} | ${fmt(r.cpu_s, 2)} | ${fmt(r.client_cpu_s, 2)} |`);
    }
  }
  L.push('');
  if (meta.notes?.length) {
    L.push('## Notes', '', ...meta.notes.map((n) => `- ${n}`), '');
  }
  return L.join('\n');
}
