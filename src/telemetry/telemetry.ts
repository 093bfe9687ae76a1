/**
 * The telemetry component of `run`: the /metrics endpoint, the scheduler
 * scrape, and (with --control-plane) the batcher, the spool and the stream
 * with its command channel. Everything here is asynchronous and bounded; no
 * failure in it stops the gateway once it has started.
 *
 * Folder map, in the path of a sample (the gateway's metrics are declared
 * once, in runtime/metrics.ts, and read through ctx.metricsReader when several
 * processes' are combined): registry-samples.ts (the gateway's own samples),
 * scrape.ts (bounded HTTP fetch), prom-parse.ts (strict
 * text-format parser), allowlist.ts + privacy.ts (what may leave), collector.ts
 * (a batch's samples), spool.ts (durable queue), backoff.ts + stream.ts (WSS to
 * the control plane), protocol.ts + commands.ts (messages, signed commands),
 * metrics-server.ts (/metrics). The development receiver lives in
 * control-plane-dev/. Protocol and reasons: docs/telemetry-protocol.md.
 * Nothing here imports terminator/, dashboard/ or policy/; revocations reach
 * sessions only through the injected RevocationSink.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Component, GatewayContext, RevocationSink } from '../runtime/context.js';
import { formatEndpoint, type Endpoint } from '../config/spec.js';
import type { TelemetryConfig } from '../config/keys/telemetry.js';
import { isGatewayError } from '../errors/base.js';
import { telemetryError } from './errors.js';
import { parseCertificatePem } from '../pki/certificate.js';
import { loadAllowlist, type Allowlist } from './allowlist.js';
import { Collector, batchMessage, encodeBatch } from './collector.js';
import { registrySamples } from './registry-samples.js';
import { Spool, FLAG_GZIP } from './spool.js';
import { TelemetryStream } from './stream.js';
import { Backoff } from './backoff.js';
import { CommandProcessor, revocationCommands, type CommandHandler } from './commands.js';
import { STREAM_PATH, commandKey } from './protocol.js';
import { startMetricsServer } from './metrics-server.js';

/** Settings resolved from configuration; shared by `run` and `telemetry preview`. */
export interface TelemetrySettings {
  readonly metricsListen: Endpoint | undefined;
  readonly metricsUnsafePublic: boolean;
  readonly controlPlane: URL | undefined;
  readonly caFile: string | undefined;
  readonly credentialFile: string | undefined;
  readonly intervalMs: number;
  readonly scrapeIntervalMs: number;
  readonly schedulerUrl: URL | undefined;
  readonly spoolDir: string | undefined;
  readonly spoolMaxBytes: number;
  readonly spoolMaxAgeMs: number;
  readonly allowlist: Allowlist;
  readonly hashLabels: boolean;
  readonly gzip: boolean;
}

/** What telemetry falls back on: the state directory (spool, hash key) and the scheduler's dashboard (its /metrics). */
export interface TelemetryDefaults {
  readonly stateDir: string | undefined;
  readonly dashboardUpstream: Endpoint | undefined;
}

export function telemetrySettings(c: TelemetryConfig, d: TelemetryDefaults): TelemetrySettings {
  const upstream = d.dashboardUpstream;
  const derived = upstream?.host !== undefined ? new URL(`http://${formatEndpoint(upstream)}/metrics`) : undefined;
  return {
    metricsListen: c.metricsListen,
    metricsUnsafePublic: c.metricsListenUnsafePublic,
    controlPlane: streamUrl(c.controlPlane),
    caFile: c.controlPlaneCa,
    credentialFile: c.controlPlaneCredential,
    intervalMs: c.interval,
    scrapeIntervalMs: c.scrapeInterval,
    schedulerUrl: c.schedulerMetricsUrl ?? derived,
    spoolDir: c.spoolDir ?? (d.stateDir ? join(d.stateDir, 'spool') : undefined),
    spoolMaxBytes: c.spoolMaxBytes,
    spoolMaxAgeMs: c.spoolMaxAgeDays * 86_400_000,
    allowlist: loadAllowlist(c.allowlist),
    hashLabels: c.hashLabels,
    gzip: c.gzip,
  };
}

/** https://host -> wss://host:443/v1/stream; an explicit path is kept. */
export function streamUrl(u: URL | undefined): URL | undefined {
  if (!u) return undefined;
  const out = new URL(u.href);
  out.protocol = 'wss:';
  if (out.pathname === '/' || out.pathname === '') out.pathname = STREAM_PATH;
  return out;
}

/** The credential: one line of printable ASCII, in a file only its owner can read. */
export function readCredential(file: string): string {
  const bad = (reason: string) => telemetryError('badCredential', { file, reason });
  let text: string;
  try {
    if ((statSync(file).mode & 0o077) !== 0) throw bad(`readable by other users; run chmod 600 ${file}`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (isGatewayError(e)) throw e;
    throw bad(`cannot read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const cred = text.trim();
  if (cred.length < 16 || cred.length > 4096 || !/^[\x21-\x7e]+$/.test(cred)) throw bad('expected one line of 16 to 4096 printable characters');
  return cred;
}

/** The per-cluster key of hashed labels: 32 random bytes, created once, 0600. */
export function loadHashKey(dir: string): Buffer {
  const file = join(dir, 'telemetry-hash.key');
  try {
    const key = readFileSync(file);
    if (key.length === 32) return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw telemetryError('spoolIo', { dir, reason: `cannot read ${file}` });
  }
  const key = randomBytes(32);
  writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
  return key;
}

/** A pinned CA must be readable PEM at startup, not a TLS failure at every connect. */
function readCaFile(file: string): string {
  const bad = (reason: string) => telemetryError('badEndpoint', { key: '--control-plane-ca', reason: `${file}: ${reason}` });
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw bad(`cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    parseCertificatePem(pem);
  } catch {
    throw bad('not a PEM certificate');
  }
  return pem;
}

export interface TelemetryDeps {
  /** Applies revocation commands; without it commands are refused. */
  readonly revocations?: RevocationSink;
  /** Extra command handlers (the credentials component's push-credentials). */
  readonly commands?: ReadonlyMap<string, CommandHandler>;
  /** Backoff and timeouts; tests shorten them. */
  readonly backoff?: { baseMs: number; capMs: number };
  readonly ackTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly scrapeTimeoutMs?: number;
}

export async function startTelemetry(ctx: GatewayContext, s: TelemetrySettings, deps: TelemetryDeps = {}): Promise<Component & { address: AddressInfo | undefined }> {
  const log = ctx.log.child({ component: 'telemetry' });
  const stateDirForKey = ctx.stateDir ?? s.spoolDir;
  const hashKey = s.hashLabels && stateDirForKey ? loadHashKey(stateDirForKey) : undefined;
  if (s.hashLabels && !hashKey) throw telemetryError('badEndpoint', { key: '--telemetry-hash-labels', reason: 'needs a state directory or --spool-dir for its key' });

  const reader = ctx.metricsReader ?? ctx.metrics.registry;
  const collector = new Collector({
    gatewaySamples: () => registrySamples(reader),
    schedulerUrl: s.schedulerUrl,
    scrapeIntervalMs: s.scrapeIntervalMs,
    scrapeTimeoutMs: deps.scrapeTimeoutMs ?? Math.min(10_000, Math.max(100, s.scrapeIntervalMs)),
    scrapeMaxBytes: 4 * 1024 * 1024,
    allowlist: s.allowlist,
    hashKey,
    metrics: ctx.metrics,
    log,
    now: ctx.now,
  });

  let spool: Spool | undefined;
  let stream: TelemetryStream | undefined;
  if (s.controlPlane) {
    if (s.controlPlane.username || s.controlPlane.password) throw telemetryError('badEndpoint', { key: '--control-plane', reason: 'the URL must not carry a user or password (the credential comes from --control-plane-credential)' });
    if (!s.credentialFile) throw telemetryError('badCredential', { file: '(none)', reason: '--control-plane needs --control-plane-credential' });
    if (!s.spoolDir) throw telemetryError('spoolIo', { dir: '(none)', reason: '--control-plane needs a state directory or --spool-dir' });
    const credential = readCredential(s.credentialFile);
    const caPem = s.caFile ? readCaFile(s.caFile) : undefined;
    spool = await Spool.open({ dir: s.spoolDir, maxBytes: s.spoolMaxBytes, maxAgeMs: s.spoolMaxAgeMs, log, metrics: ctx.metrics, now: ctx.now });
    const handlers = new Map<string, CommandHandler>([...(deps.revocations ? revocationCommands(deps.revocations) : []), ...(deps.commands ?? [])]);
    const commands = await CommandProcessor.open({
      clusterId: ctx.clusterId, key: commandKey(credential), handlers, seenFile: join(s.spoolDir, 'commands-seen.json'), log, metrics: ctx.metrics, now: ctx.now,
    });
    stream = new TelemetryStream({
      url: s.controlPlane, caPem, credential, clusterId: ctx.clusterId, spool, commands, log, metrics: ctx.metrics,
      backoff: new Backoff(deps.backoff ?? { baseMs: 1000, capMs: 5 * 60_000 }),
      ackTimeoutMs: deps.ackTimeoutMs ?? 30_000,
      connectTimeoutMs: deps.connectTimeoutMs ?? 10_000,
    });
  }
  // Everything that can refuse the configuration has run: only now listen and connect.
  const metricsServer = s.metricsListen
    ? await startMetricsServer({ listen: s.metricsListen, unsafePublic: s.metricsUnsafePublic, reader, log })
    : undefined;
  if (stream && s.controlPlane) {
    stream.start();
    log.info('telemetry_stream_configured', { url: s.controlPlane.origin, spool: s.spoolDir, interval_ms: s.intervalMs, pinned_ca: s.caFile !== undefined });
  }
  // The scrape only feeds batches: without a control plane there is nothing to scrape for.
  if (spool) collector.start();

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async () => {
    if (!spool) return;
    try {
      await spool.expire();
      const collected = await collector.collect();
      const created = ctx.now();
      const seq = await spool.append(created.getTime(), (n) => encodeBatch(batchMessage(ctx.clusterId, n, created, collected), s.gzip), s.gzip ? FLAG_GZIP : 0);
      if (seq === undefined) return;
      ctx.metrics.streamBatchesTotal.inc({ outcome: 'spooled' });
      stream?.notify();
    } catch (e) {
      // Disk full and friends: this batch is lost (a gap in seq the receiver can see); the gateway goes on.
      const reason = isGatewayError(e) && e.code === 'GW_TELEMETRY_SPOOL_IO' ? 'write_failed' : 'collect_failed';
      ctx.metrics.spoolDroppedTotal.inc({ reason });
      log.error('telemetry_batch_failed', { reason, problem: isGatewayError(e) ? e.message : String(e) });
    }
  };
  let ticking: Promise<void> | undefined;
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      ticking = tick().finally(() => { ticking = undefined; loop(); });
    }, s.intervalMs);
  };
  if (spool) loop();

  const stopBatching = () => {
    stopped = true;
    clearTimeout(timer);
    collector.stop();
  };
  return {
    name: 'telemetry',
    address: metricsServer?.address,
    async drain() {
      if (stopped) return;
      stopBatching();
      // One last batch, so the counters at shutdown are not lost. It only has to reach the
      // spool: it is sent after the restart if the control plane does not take it now.
      await ticking;
      await tick();
    },
    async close() {
      stopBatching();
      await stream?.close();
      await metricsServer?.close();
    },
  };
}
