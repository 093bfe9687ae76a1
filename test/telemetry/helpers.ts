/**
 * Test fixtures of the telemetry tests: a GatewayContext built by hand, a
 * receiver with a fresh database and development TLS, enrolled clusters.
 * Everything lives in a temp directory removed on teardown.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { createMetrics, type GatewayMetrics } from '../../src/runtime/metrics.js';
import { SessionRegistry } from '../../src/runtime/sessions.js';
import type { GatewayContext, TrustSource } from '../../src/runtime/context.js';
import { resolveSlice } from '../../src/config/load.js';
import { telemetryKeys, type TelemetryConfig } from '../../src/config/keys/telemetry.js';
import { telemetrySettings, type TelemetrySettings } from '../../src/telemetry/telemetry.js';
import { ReceiverDb } from '../../src/control-plane-dev/receiver-db.js';
import { startReceiver, type Receiver, type ReceiverFaults } from '../../src/control-plane-dev/receiver.js';
import { devTls } from '../../src/control-plane-dev/dev-cert.js';

export interface Teardown { teardown(fn: () => unknown): void }

export function tempDir(t: Teardown, prefix = 'sgw-tel-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger whose lines are kept for assertions. */
export function captureLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = { write: (s: string) => { out.push(s); return true; } } as unknown as Writable;
  return { log: createLogger({ stream, level: 'debug' }), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const noTrust: TrustSource = {
  current: () => { throw new Error('no trust material in telemetry tests'); },
  isRevoked: () => false,
  onChange: () => () => undefined,
  reload: async () => true,
};

/** A hand-built context plus the telemetry settings to start with (startTelemetry(ctx, ctx.telemetry, deps)). */
export type TelemetryTestContext = GatewayContext & { readonly telemetry: TelemetrySettings };

export function makeContext(o: { config: TelemetryTestConfig; clusterId: string; stateDir?: string; log?: Logger; metrics?: GatewayMetrics }): TelemetryTestContext {
  return {
    telemetry: { ...telemetrySettings(o.config.slice, { stateDir: o.stateDir, dashboardUpstream: undefined }), ...o.config.override },
    log: o.log ?? createLogger({ stream: { write: () => true } as unknown as Writable }),
    metrics: o.metrics ?? createMetrics({ defaultMetrics: false }),
    sessions: new SessionRegistry(),
    trust: noTrust,
    clusterId: o.clusterId,
    stateDir: o.stateDir,
    allowMissingEku: false,
    now: () => new Date(),
  };
}

export interface TestReceiver {
  readonly dir: string;
  readonly dbPath: string;
  readonly db: ReceiverDb;
  readonly caPath: string;
  url(): URL;
  /** Enrolls a cluster and writes its credential file (0600); returns the path. */
  enroll(cluster: string): string;
  start(faults?: ReceiverFaults, port?: number): Promise<Receiver>;
  stop(): Promise<void>;
  port: number;
}

export async function testReceiver(t: Teardown, dir: string): Promise<TestReceiver> {
  const tls = await devTls(join(dir, 'receiver-tls'));
  const dbPath = join(dir, 'receiver.db');
  const db = new ReceiverDb(dbPath);
  let running: Receiver | undefined;
  const r: TestReceiver = {
    dir, dbPath, db, caPath: tls.caPath, port: 0,
    url: () => new URL(`https://127.0.0.1:${r.port}`),
    enroll(cluster) {
      const file = join(dir, `${cluster}.credential`);
      writeFileSync(file, db.enroll(cluster) + '\n', { mode: 0o600 });
      return file;
    },
    async start(faults, port) {
      running = await startReceiver({
        listen: { host: '127.0.0.1', port: port ?? r.port }, db, certPem: tls.certPem, keyPem: tls.keyPem,
        log: createLogger({ stream: { write: () => true } as unknown as Writable }), commandPollMs: 100, ...(faults ? { faults } : {}),
      });
      r.port = running.port;
      return running;
    },
    async stop() {
      await running?.close();
      running = undefined;
    },
  };
  t.teardown(async () => { await r.stop(); db.close(); });
  return r;
}

/** A test gateway's telemetry slice, and settings no key can express (metrics endpoint off). */
export interface TelemetryTestConfig {
  readonly slice: TelemetryConfig;
  readonly override: Partial<TelemetrySettings>;
}

/** The telemetry config of a test gateway: the declared defaults, short intervals, loopback, a free metrics port. */
export function telemetryConfig(o: { controlPlane?: URL; ca?: string; credential?: string; spoolDir?: string; schedulerUrl?: URL; intervalMs?: number; extra?: Partial<TelemetrySettings> }): TelemetryTestConfig {
  const declared = resolveSlice(telemetryKeys, { flags: {}, env: {} });
  const slice: TelemetryConfig = {
    ...declared,
    metricsListen: { host: '127.0.0.1', port: 0 },
    controlPlane: o.controlPlane,
    controlPlaneCa: o.ca,
    controlPlaneCredential: o.credential,
    interval: o.intervalMs ?? 100,
    scrapeInterval: 100,
    schedulerMetricsUrl: o.schedulerUrl,
    spoolDir: o.spoolDir,
    spoolMaxBytes: 64 * 1024 * 1024,
  };
  return { slice, override: o.extra ?? {} };
}

export interface BatchRow { seq: number; samples: number }

/** Seqs stored for a cluster, ascending, read straight from the receiver's SQLite file. */
export function storedSeqs(db: ReceiverDb, cluster: string): number[] {
  return db.batches(cluster).map((b) => b.seq).sort((a, b) => a - b);
}

/** The current value of one labelled series of a prom-client metric. */
export async function metricValue(m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await m.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}
