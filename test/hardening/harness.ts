/**
 * Shared by the hardening tests: a gateway with both public ports (8786 via
 * startTestGateway, 8787 via startDashboard on the same context), loopback
 * echo upstreams, a seeded PRNG, and process-level measurements (fd count,
 * RSS) for "flat at the end" assertions.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { jsonLineSink } from '../helpers/json-lines.js';
import { resolveRunConfig, type Flags } from '../../src/config/load.js';
import { startGateway, type RunningGateway } from '../../src/gateway/compose.js';
import { createLogger } from '../../src/log/logger.js';
import { Writable } from 'node:stream';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The seeded PRNG of the wire tests (mulberry32); the seed is printed so a failure reproduces. */
export { prng } from '../wire/wire-helpers.js';

/** The seed of a run: FUZZ_SEED when given (to replay), else derived from the clock. */
export function seedFromEnv(): number {
  const s = process.env.FUZZ_SEED;
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : (Date.now() % 2_147_483_647);
}

/** Cases per fuzz target: FUZZ_CASES (scripts/fuzz-long.sh) or the CI default. */
export function casesFromEnv(ciDefault = 100_000): number {
  const s = process.env.FUZZ_CASES;
  return s !== undefined && /^\d+$/.test(s) && Number(s) > 0 ? Number(s) : ciDefault;
}

export function bytes(rand: () => number, max: number): Buffer {
  const b = Buffer.allocUnsafe(Math.floor(rand() * (max + 1)));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Flip, insert, delete, duplicate or overwrite a few bytes of a seed input. */
export function mutate(rand: () => number, seed: Buffer, maxOps = 4): Buffer {
  let b = Buffer.from(seed);
  const ops = 1 + Math.floor(rand() * maxOps);
  for (let i = 0; i < ops; i++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 6)) {
      case 0: if (b.length) b[Math.min(at, b.length - 1)]! ^= 1 << Math.floor(rand() * 8); break;
      case 1: b = Buffer.concat([b.subarray(0, at), bytes(rand, 8), b.subarray(at)]); break;
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + Math.floor(rand() * 8))]); break;
      case 3: b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 16), b.subarray(at)]); break;
      case 4: if (b.length) b[Math.min(at, b.length - 1)] = [0, 0xff, 0x7f, 0x80, 0x01][Math.floor(rand() * 5)]!; break;
      default: b = b.subarray(0, at); break;
    }
  }
  return b;
}

export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssBytes(pid: number | 'self' = 'self'): number {
  if (pid === 'self') return process.memoryUsage().rss;
  let status = '';
  try { status = readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { /* gone */ }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Heap after a forced GC when available (node --expose-gc), else as is. */
export function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

export interface EchoServer {
  readonly port: number;
  readonly server: Server;
  connections(): number;
  close(): Promise<void>;
}

/**
 * A loopback TCP echo: the stand-in scheduler for load and fuzz runs that need no Dask semantics.
 * With `greeting`, it speaks first (as a Dask listener does), so a peer knows it was forwarded.
 */
export async function startEcho(t: Teardown, o: { greeting?: string } = {}): Promise<EchoServer> {
  const socks = new Set<Socket>();
  const server = createNetServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
    if (o.greeting) s.write(o.greeting);
    s.pipe(s);
  });
  server.maxConnections = 100_000;
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, r));
  const e: EchoServer = {
    port: (server.address() as { port: number }).port,
    server,
    connections: () => socks.size,
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); if (server.listening) server.close(() => r()); else r(); }),
  };
  t.teardown(() => e.close());
  return e;
}

/** A stand-in for the scheduler's HTTP dashboard: answers every request with a small page. */
export async function startHttpUpstream(t: Teardown): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(`ok ${req.method} ${req.url}\n`); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { port: (server.address() as { port: number }).port, server };
}

export interface BothPorts {
  readonly cluster: TestCluster;
  readonly tg: TestGateway;
  /** 8786 (terminator) and 8787 (dashboard) as bound on 127.0.0.1. */
  readonly port8786: number;
  readonly port8787: number;
}

/** The gateway as it faces the network: 8786 in front of `scheduler`, 8787 in front of `dashboardUpstream`. */
export async function startBothPorts(o: { t: Teardown; scheduler: string; dashboardUpstreamPort: number; flags?: Flags; cluster?: TestCluster }): Promise<BothPorts> {
  const cluster = o.cluster ?? (await makeTestCluster());
  if (!o.cluster) o.t.teardown(() => cluster.cleanup());
  const tg = await startTestGateway({
    cluster, scheduler: o.scheduler, t: o.t,
    flags: { 'dashboard-listen': '127.0.0.1:0', 'dashboard-upstream': `127.0.0.1:${o.dashboardUpstreamPort}`, ...o.flags },
  });
  return { cluster, tg, port8786: tg.port, port8787: tg.gw.addresses.dashboard!.port };
}

export interface CountingLog {
  readonly stream: Writable;
  /** Lines by "event" and by "event:reason". */
  readonly counts: Map<string, number>;
  /** Every error- or warn-level line (bounded to the first 200). */
  readonly problems: Array<Record<string, unknown>>;
  /** The newest lines (bounded ring of 500). */
  recent(): Array<Record<string, unknown>>;
  count(key: string): number;
}

/**
 * A log sink for volume runs: counts lines instead of keeping them, so the
 * test's own memory does not grow with the case count.
 */
export function countingLog(): CountingLog {
  const counts = new Map<string, number>();
  const problems: Array<Record<string, unknown>> = [];
  const ring: Array<Record<string, unknown>> = [];
  const stream = jsonLineSink((_raw, l) => {
    if (!l) return;
    const ev = String(l.event);
    counts.set(ev, (counts.get(ev) ?? 0) + 1);
    if (l.reason !== undefined) counts.set(`${ev}:${String(l.reason)}`, (counts.get(`${ev}:${String(l.reason)}`) ?? 0) + 1);
    // Repeated refusals from one source are summarized (src/log/coalesce.ts): count what each summary stands for.
    if (ev === 'refusals_coalesced' && typeof l.count === 'number') counts.set('refusals_coalesced:count', (counts.get('refusals_coalesced:count') ?? 0) + l.count);
    if ((l.level === 'error' || l.level === 'warn') && problems.length < 200) problems.push(l);
    ring.push(l);
    if (ring.length > 500) ring.shift();
  });
  return { stream, counts, problems, recent: () => [...ring], count: (k) => counts.get(k) ?? 0 };
}

export interface VolumeGateway {
  readonly gw: RunningGateway;
  readonly port: number;
  readonly log: CountingLog;
  close(): Promise<void>;
}

/** startGateway in-process (every component, loopback ports) with a counting log: for volume runs. */
export async function startVolumeGateway(o: { t: Teardown; cluster: TestCluster; scheduler: string; flags?: Flags; level?: 'debug' | 'info' }): Promise<VolumeGateway> {
  const log = countingLog();
  const config = resolveRunConfig({
    flags: { dir: o.cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', scheduler: o.scheduler, 'failed-handshake-rate': '1000000', ...o.flags },
    env: {},
  });
  const gw = await startGateway(config, {
    log: createLogger({ stream: log.stream, level: o.level ?? 'info' }),
    env: { SCHEDULER_GATEWAY_PASSPHRASE: o.cluster.passphrase },
    trustPollMs: 250,
  });
  o.t.teardown(() => gw.close());
  return { gw, port: gw.addresses.terminator!.port, log, close: () => gw.close() };
}
