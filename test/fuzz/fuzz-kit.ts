/**
 * The fuzz runner shared by test/fuzz/*: a seeded PRNG per target (the seed
 * is printed; FUZZ_SEED replays it), a case count (FUZZ_CASES; CI default
 * 100,000), and per target: crashes (an exception outside the target's
 * contract), hangs (a case slower than the hang limit), heap growth across
 * the run (after forced GCs) and a summary line for the report.
 */
import type { Test } from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { casesFromEnv, mutate, prng, seedFromEnv } from '../hardening/harness.js';
import { KNOWN_OPS } from '../../src/policy/catalog.js';

setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as () => void;

export function gc(): void {
  gcFn();
  gcFn();
}

export function heapAfterGc(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

export interface FuzzStats {
  readonly target: string;
  readonly seed: number;
  readonly cases: number;
  readonly crashes: number;
  readonly hangs: number;
  /** How the target answered, by outcome name (accepted, refused, ...). */
  readonly outcomes: Record<string, number>;
  readonly ms: number;
  readonly slowestCaseMs: number;
  readonly heapGrowthBytes: number;
  readonly firstCrash?: string;
}

export interface FuzzTarget<I> {
  readonly name: string;
  /** Default: casesFromEnv(). */
  readonly cases?: number;
  generate(rand: () => number, i: number): I;
  /** Returns an outcome name; throwing `isExpected` errors is a clean refusal, anything else a crash. */
  run(input: I): string | Promise<string>;
  isExpected?(e: unknown): boolean;
  /**
   * A case slower than this, twice in a row, is a hang. Default 1000 ms. A
   * slow case is run again: on a loaded machine one run can stall for a
   * second in the scheduler or the collector; a real hang is slow again.
   */
  readonly hangMs?: number;
}

export async function fuzz<I>(t: Test, target: FuzzTarget<I>): Promise<FuzzStats> {
  const seed = seedFromEnv();
  const cases = target.cases ?? casesFromEnv();
  const rand = prng(seed);
  const hangMs = target.hangMs ?? 1000;
  t.comment(`fuzz ${target.name}: seed ${seed} (replay with FUZZ_SEED=${seed}), ${cases} cases`);
  // The heap baseline is taken after a warm-up: compiled code, caches and coverage data of the first cases are not growth.
  const warmUp = Math.min(Math.max(1000, Math.floor(cases / 20)), Math.floor(cases / 2));
  let heapBefore = heapAfterGc();
  const outcomes: Record<string, number> = {};
  let crashes = 0;
  let hangs = 0;
  let slowest = 0;
  let firstCrash: string | undefined;
  const started = performance.now();
  const runOnce = async (input: I): Promise<{ outcome: string; error?: unknown; dt: number }> => {
    const t0 = performance.now();
    try {
      const r = target.run(input);
      const outcome = typeof r === 'string' ? r : await r;
      return { outcome, dt: performance.now() - t0 };
    } catch (error) {
      const dt = performance.now() - t0;
      return target.isExpected?.(error) ? { outcome: 'refused', dt } : { outcome: 'crash', error, dt };
    }
  };
  for (let i = 0; i < cases; i++) {
    if (i === warmUp) heapBefore = heapAfterGc();
    const input = target.generate(rand, i);
    const { outcome, error, dt } = await runOnce(input);
    if (outcome === 'crash') {
      crashes++;
      firstCrash ??= `case ${i} (seed ${seed}): ${(error as Error)?.stack ?? String(error)}\ninput: ${preview(input)}`;
    }
    if (dt > hangMs) {
      const again = (await runOnce(input)).dt;
      slowest = Math.max(slowest, Math.min(dt, again));
      if (again > hangMs) hangs++;
    } else if (dt > slowest) slowest = dt;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  const ms = Math.round(performance.now() - started);
  const heapGrowthBytes = heapAfterGc() - heapBefore;
  const stats: FuzzStats = { target: target.name, seed, cases, crashes, hangs, outcomes, ms, slowestCaseMs: Math.round(slowest * 10) / 10, heapGrowthBytes, ...(firstCrash ? { firstCrash } : {}) };
  t.comment(`fuzz ${target.name}: ${JSON.stringify({ ...stats, firstCrash: undefined })}`);
  return stats;
}

function preview(input: unknown): string {
  const s = Buffer.isBuffer(input) ? input.toString('hex') : typeof input === 'string' ? JSON.stringify(input) : safeJson(input);
  return s.length > 600 ? `${s.slice(0, 600)}...` : s;
}

function safeJson(v: unknown): string {
  try { return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : Buffer.isBuffer(x) ? x.toString('hex') : x)); } catch { return String(v); }
}

/** The assertions every target must pass: no crash, no hang, heap bounded, and the target really refused something. */
export function assertClean(t: Test, s: FuzzStats, opts: { maxHeapGrowthBytes?: number; mustRefuse?: boolean } = {}): void {
  t.equal(s.crashes, 0, `${s.target}: zero crashes in ${s.cases} cases${s.firstCrash ? `\n${s.firstCrash}` : ''}`);
  t.equal(s.hangs, 0, `${s.target}: zero hangs (slowest case ${s.slowestCaseMs} ms)`);
  const max = opts.maxHeapGrowthBytes ?? 16 * 1024 * 1024;
  t.ok(s.heapGrowthBytes < max, `${s.target}: heap after GC grew ${(s.heapGrowthBytes / 1048576).toFixed(1)} MiB (< ${(max / 1048576).toFixed(0)} MiB)`);
  if (opts.mustRefuse ?? true) t.ok((s.outcomes.refused ?? 0) > 0, `${s.target}: hostile input was refused (${s.outcomes.refused ?? 0} times)`);
}

export function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!;
}

/** Short hostile strings: control bytes, unicode, format characters, huge numbers, path tricks. */
export const NASTY = [
  '', ' ', '\0', '\r\n', '\n', '\t', '%00', '%', '..', '../../etc/passwd', '\u202e', '\ud800', '😀', 'ä', '\\', '"', "'", '{', '}', '[', ']',
  ':', ',', '#', '&', '*', '!', '|', '>', '-', '---', '...', '~', 'null', 'true', 'false', 'NaN', 'Infinity', '-0', '1e309', '0x10', '9'.repeat(40),
  '-1', '0', '1', '4294967296', '18446744073709551616', 'a'.repeat(5000), '<<: *a', '&a', '!!binary', '!!python/object', '%YAML 1.1',
  'spiffe://', 'spiffe://c/worker', 'URI:', 'DNS:', ', URI:spiffe://x/admin', 'dgw_', 'Bearer ', '=', ';', '\x7f', '\x1b[31m',
];

/** Mutates a string at the character level, sometimes splicing in a hostile token. */
export function mutateText(rand: () => number, s: string): string {
  if (rand() < 0.3) {
    const at = Math.floor(rand() * (s.length + 1));
    return s.slice(0, at) + pick(rand, NASTY) + s.slice(at + Math.floor(rand() * 4));
  }
  return mutate(rand, Buffer.from(s, 'utf8')).toString('utf8');
}

/** A random JSON-ish value: what a confused or hostile document could hold anywhere. */
export function value(rand: () => number, depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.35) return pick(rand, NASTY);
  if (r < 0.45) return Math.floor(rand() * 2 ** 40) * (rand() < 0.5 ? -1 : 1);
  if (r < 0.5) return rand() < 0.5;
  if (r < 0.55) return null;
  if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => value(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) o[pick(rand, ['version', 'rules', 'client', 'worker', 'admin', 'allow', 'deny', 'pickled', '@client', '*', pick(rand, NASTY)])] = value(rand, depth + 1);
  return o;
}

const OPS = [...KNOWN_OPS];

/** A Dask op map (or a batch of two), mostly known ops with hostile field values. */
export function opMap(rand: () => number): unknown {
  const m: Record<string, unknown> = { op: rand() < 0.8 ? pick(rand, OPS) : pick(rand, NASTY) };
  for (let k = Math.floor(rand() * 5); k > 0; k--) m[pick(rand, ['reply', 'address', 'keys', 'tasks', 'msg', 'workers', 'nanny', 'name', 'client', 'serializers', pick(rand, NASTY)])] = value(rand);
  if (rand() < 0.1) m.pickled = { __Pickled__: true };
  return rand() < 0.3 ? [m, opMap(rand)] : m;
}
