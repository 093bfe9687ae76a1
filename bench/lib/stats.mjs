// Statistics over repeated runs and the run order: pure functions, no I/O.

/** Median of finite numbers (mean of the middle two for an even count); null when there are none. */
export function median(xs) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Median and spread of one key over runs: { median, min, max, n }. */
export function spread(runs, key) {
  const v = runs.map((r) => r[key]).filter(Number.isFinite);
  if (!v.length) return { median: null, min: null, max: null, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/**
 * One contender's runs of one axis folded into the figures the report uses:
 * every numeric key's median (the headline), its min–max, the runs themselves,
 * and the errors of runs that failed. All runs failing makes the whole an error.
 */
export function summarizeRuns(runs) {
  const ok = runs.filter((r) => !r.error);
  const errors = runs.filter((r) => r.error).map((r) => r.error);
  if (!ok.length) return { error: errors[0] ?? 'no runs', errors, runs };
  const keys = [...new Set(ok.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] === 'number')))];
  const out = { runs, errors, n: ok.length, spread: {} };
  for (const k of keys) {
    const s = spread(ok, k);
    out[k] = s.median;
    out.spread[k] = s;
  }
  out.ciphers = [...new Set(ok.map((r) => r.cipher).filter((c) => c && c !== 'none'))];
  return out;
}

/** The contender order for run i: rotated by i, so no contender always goes first or last. */
export function rotation(list, i) {
  if (!list.length) return [];
  const k = i % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * The TLS suites negotiated per contender over all axes and runs; `mixed` is
 * true when contenders (or runs) did not all use one suite, which voids the comparison.
 */
export function suiteCheck(axes) {
  const per = {};
  for (const [axis, byContender] of Object.entries(axes)) {
    if (axis === 'dask') continue;
    for (const [c, r] of Object.entries(byContender)) for (const s of r.ciphers ?? []) (per[c] ??= new Set()).add(s);
  }
  const all = new Set(Object.values(per).flatMap((s) => [...s]));
  return { per: Object.fromEntries(Object.entries(per).map(([c, s]) => [c, [...s]])), suites: [...all], mixed: all.size > 1 };
}

/**
 * Axes on which the TLS contenders were not all driven with the same load
 * generator parameters (port aside): { axis: [distinct parameter strings] }.
 */
export function parameterCheck(axes) {
  const out = {};
  for (const [axis, byContender] of Object.entries(axes)) {
    if (axis === 'dask') continue;
    const seen = new Set();
    for (const r of Object.values(byContender)) for (const run of r.runs ?? []) if (run.params && run.cipher && run.cipher !== 'none') seen.add(run.params);
    if (seen.size > 1) out[axis] = [...seen];
  }
  return out;
}
