/**
 * The one composition root: builds the GatewayContext (logger, metrics,
 * sessions, trust) and starts each component from a flat list. A new
 * component is one `components.push(await startX(ctx))` line below.
 * Components never import each other; they share only the context.
 */
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../log/logger.js';
import { createMetrics } from '../runtime/metrics.js';
import type { RunConfig } from '../config/keys/index.js';
import { policyKeys, type PolicyConfig } from '../config/keys/policy.js';
import { terminatorKeys } from '../config/keys/terminator.js';
import { dashboardKeys } from '../config/keys/dashboard.js';
import { credentialsKeys } from '../config/keys/credentials.js';
import type { Component, GatewayContext } from '../runtime/context.js';
import { SessionRegistry, closeForTrustChange, type SessionsClosed } from '../runtime/sessions.js';
import { settingsFrom, type GatewaySettings } from './settings.js';
import { openTrust } from '../runtime/material.js';
import { ensurePrivateDir } from '../pki/state-dir.js';
import { startTerminator } from '../terminator/terminator.js';
import { crlPathFor, startDashboard } from '../dashboard/index.js';
import type { InspectorFactory } from '../terminator/inspector.js';
import { GatewayError } from '../errors/base.js';
import { policyForDataPlane, policyForTerminator } from '../policy/setup.js';
import { startDataPlane, type DataPlane } from '../dataplane/primary.js';
import { credentialsSettings, startCredentials } from '../credentials/index.js';
import { startTelemetry, telemetrySettings } from '../telemetry/telemetry.js';
import { revocationSinkFor } from '../runtime/revocation-sink.js';
import { DESCRIPTOR_RESERVE, DESCRIPTORS_PER_CONNECTION, planConnectionCaps, readOpenFilesLimit, type ConnectionCaps, type Listener } from '../limits/descriptor-budget.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { meteredMemoryBudget } from '../runtime/metered-budget.js';
import { configError } from '../config/spec.js';
import { aggregatedReader } from '../runtime/metrics-aggregate.js';

export interface GatewayDeps {
  readonly log?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** Wire-aware policy on 8786; none means plain forwarding with zero overhead. */
  readonly inspector?: InspectorFactory;
  /** Poll interval of watched PKI files (tests shorten it). */
  readonly trustPollMs?: number;
  /** The process's open-files limit (default: /proc/self/limits); bounds the connection caps of every listener. */
  readonly openFilesLimit?: () => number | undefined;
}

export interface RunningGateway {
  readonly context: GatewayContext;
  /** The configuration it was started with (connection caps as configured, before the descriptor budget). */
  readonly config: RunConfig;
  readonly settings: GatewaySettings;
  /** Bound address of each listening component, by component name. */
  readonly addresses: Readonly<Record<string, AddressInfo>>;
  reload(reason: string): Promise<boolean>;
  /** Stops accepting, waits up to the deadline (default: drain-timeout-ms), then closes the rest. */
  drain(deadlineMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startGateway(config: RunConfig, deps: GatewayDeps = {}): Promise<RunningGateway> {
  const settings = settingsFrom(config);
  if (!settings.scheduler) throw new GatewayError('GW_USAGE', 'no --scheduler address: start the embedded scheduler first (cli/run.ts) or pass --scheduler HOST:PORT');
  const log = deps.log ?? createLogger({ level: settings.logLevel });
  const metrics = createMetrics({ logLinesDropped: () => log.droppedLines() });
  const credentialsWanted = credentialsSettings(config.credentials, config.telemetry.controlPlane);
  const caps = effectiveCaps({
    terminator: config.terminator.maxConnections,
    dashboard: config.dashboard.enabled ? config.dashboard.maxConnections : 0,
    credentials: credentialsWanted.listen !== undefined ? credentialsWanted.maxConnections : 0,
  }, (deps.openFilesLimit ?? readOpenFilesLimit)(), log, metrics);
  const processes = config.terminator.processes;
  if (processes > 1 && deps.inspector) throw new GatewayError('GW_USAGE', '--processes: an injected inspector cannot cross into data-plane processes; use one process');
  // With several processes each has its own share (limits/memory-budget.ts); one budget object per process.
  const memoryShare = Math.floor(settings.memoryBudgetBytes / processes);
  checkMemoryBudget(config.policy, memoryShare, processes);
  const sessions = new SessionRegistry();
  if (settings.pki.mode === 'pem' && settings.stateDir) ensurePrivateDir(settings.stateDir);
  const trust = await openTrust(settings.pki, { env: deps.env ?? process.env, log, metrics, ...(deps.trustPollMs !== undefined ? { pollMs: deps.trustPollMs } : {}) });
  let dataPlane: DataPlane | undefined;
  const ctx: GatewayContext = {
    log,
    metrics,
    // With several processes, /metrics and the control-plane stream read every process (a silent one is left out).
    ...(processes > 1 ? { metricsReader: aggregatedReader(metrics.registry, () => dataPlane?.processMetrics(PROCESS_METRICS_MS) ?? Promise.resolve([])) } : {}),
    sessions,
    trust,
    clusterId: trust.current().clusterId,
    stateDir: settings.stateDir,
    allowMissingEku: settings.allowMissingEku,
    now: () => new Date(),
  };
  // Revocation reaches live sessions on every port and in every data-plane
  // process, not only new handshakes; so does a CA leaving the trust store
  // (rotate-ca finish): what no longer chains is closed.
  trust.onChange((m, newlyRevoked, removedCas) => {
    const here = closeForTrustChange(sessions, m.caPem, newlyRevoked, removedCas);
    if (!dataPlane) return auditTrustChange(log, here, removedCas);
    void dataPlane.applyTrust(m, newlyRevoked, removedCas).then((there) => auditTrustChange(log, sumApplied([here, ...there]), removedCas));
  });

  const components: Component[] = [];
  const addresses: Record<string, AddressInfo> = {};
  try {
    const limits = { ...settings.shares, maxConnections: caps.terminator };
    const port = {
      listen: settings.listen,
      scheduler: settings.scheduler,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
      failedHandshakesPerMinute: settings.failedHandshakesPerMinute,
      upstreamConnectTimeoutMs: settings.upstreamConnectTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
    };
    if (processes > 1) {
      // Every process has the open-files limit the primary planned with, and holds 8786 connections only.
      const cap = Math.min(config.terminator.maxConnections, caps.terminator * processes);
      const holder = policyForDataPlane(ctx, config.policy, components, (h) => dataPlane?.publishPolicy(h));
      dataPlane = await startDataPlane(ctx, {
        processes,
        logLevel: settings.logLevel,
        memoryBudgetBytes: memoryShare,
        policy: holder ? { config: config.policy, holder } : undefined,
        terminator: { ...port, shares: limits },
        broker: { limits: { ...limits, maxConnections: cap }, failedHandshakesPerMinute: settings.failedHandshakesPerMinute, perProcessCap: caps.terminator },
      });
      components.push(dataPlane);
      addresses.terminator = dataPlane.address;
      metrics.connectionLimit.set({ port: PORT_LABEL.terminator }, cap);
    } else {
      const terminator = await startTerminator(ctx, {
        ...port,
        ...limits,
        allowMissingEku: settings.allowMissingEku,
        memoryBudget: meteredMemoryBudget(memoryShare, metrics),
        ...policyForTerminator(ctx, config.policy, deps.inspector, components),
      });
      components.push(terminator);
      addresses.terminator = terminator.address;
    }
    const dashboard = await startDashboard(ctx, { ...config.dashboard, maxConnections: caps.dashboard, crlPath: crlPathFor(settings.pki) });
    components.push(dashboard);
    if (dashboard.address) addresses.dashboard = dashboard.address;
    const credentials = await startCredentials(ctx, { ...credentialsWanted, maxConnections: caps.credentials });
    components.push(credentials);
    if (credentials.address) addresses.credentials = credentials.address;
    const telemetry = await startTelemetry(ctx, telemetrySettings(config.telemetry, { stateDir: ctx.stateDir, dashboardUpstream: config.dashboard.upstream }), { revocations: revocationSinkFor(ctx, settings.pki, deps.env ?? process.env), commands: credentials.commands });
    components.push(telemetry);
    if (telemetry.address) addresses.metrics = telemetry.address;
  } catch (e) {
    await Promise.allSettled(components.map((c) => c.close()));
    trust.close();
    throw e;
  }
  log.info('gateway_started', { cluster: ctx.clusterId, components: components.map((c) => c.name), state_dir: ctx.stateDir });

  let closing: Promise<void> | undefined;
  const shutdown = (deadlineMs: number) => {
    // Idempotent: SIGTERM during a drain, or close() after drain(), must not run the sequence twice.
    closing ??= (async () => {
      await Promise.allSettled(components.map((c) => c.drain(deadlineMs)));
      await Promise.allSettled(components.map((c) => c.close()));
      trust.close();
      log.info('gateway_stopped', {});
    })();
    return closing;
  };
  return {
    context: ctx,
    config,
    settings,
    addresses,
    // SIGHUP: TLS material and every component that loaded files (policy, ...); true only if all succeeded.
    reload: async (reason) => {
      const results = await Promise.all([trust.reload(reason), ...components.map((c) => c.reload?.(reason) ?? Promise.resolve(true))]);
      return results.every(Boolean);
    },
    drain: (deadlineMs) => shutdown(deadlineMs ?? settings.drainTimeoutMs),
    close: () => shutdown(0),
  };
}

/** How long /metrics waits for a data-plane process's registry before leaving it out. */
const PROCESS_METRICS_MS = 2_000;

const CAP_KEYS: Readonly<Record<Listener, string>> = {
  terminator: terminatorKeys.maxConnections.key,
  dashboard: dashboardKeys.maxConnections.key,
  credentials: credentialsKeys.maxConnections.key,
};
const PORT_LABEL: Readonly<Record<Listener, string>> = { terminator: '8786', dashboard: '8787', credentials: 'credentials' };

/**
 * The connection caps in force on every listener (limits/descriptor-budget.ts;
 * 0 configured: the listener is off); each lowered cap is logged (naming its
 * key, both numbers and the limit) and every cap in force is exported as
 * scheduler_gateway_connection_limit{port}.
 */
function effectiveCaps(configured: ConnectionCaps, fdLimit: number | undefined, log: Logger, metrics: GatewayMetrics): ConnectionCaps {
  const caps = planConnectionCaps(configured, fdLimit);
  for (const l of Object.keys(caps) as Listener[]) {
    if (configured[l] === 0) continue;
    if (caps[l] < configured[l]) {
      log.warn('max_connections_lowered', {
        key: CAP_KEYS[l], configured: configured[l], effective: caps[l], open_files_limit: fdLimit,
        why: `the open-files limit backs ${DESCRIPTORS_PER_CONNECTION[l]} descriptors per connection on this port after ${DESCRIPTOR_RESERVE} spare and the other ports' share; raise it (LimitNOFILE=, ulimit -n) to allow more`,
      });
    }
    metrics.connectionLimit.set({ port: PORT_LABEL[l] }, caps[l]);
  }
  return caps;
}

/** A frame 0 larger than a process's whole budget could never be read. */
function checkMemoryBudget(policy: PolicyConfig, shareBytes: number, processes: number): void {
  if (policy.inspect && policy.maxFrame0Bytes > shareBytes) {
    const share = processes > 1 ? `'s share per process (${shareBytes}, --${terminatorKeys.processes.flag} ${processes})` : ` (${shareBytes})`;
    throw configError(terminatorKeys.memoryBudgetBytes.key, `the budget${share} is smaller than --${policyKeys.maxFrame0Bytes.flag} (${policy.maxFrame0Bytes}): one message header could never fit`);
  }
}

/** One audit line per revoked serial and one per CA change, with the sessions closed in every process. */
function auditTrustChange(log: Logger, c: SessionsClosed, removedCas: string[]): void {
  for (const [serial, closed] of Object.entries(c.revoked)) log.audit('revocation_applied', { serial, sessions_closed: closed });
  if (removedCas.length > 0) log.audit('ca_removed', { removed_cas: removedCas, reason: 'unknown_ca', sessions_closed: c.untrusted.sessions, serials: c.untrusted.serials });
}

function sumApplied(all: readonly SessionsClosed[]): SessionsClosed {
  const revoked: Record<string, number> = {};
  const serials = new Set<string>();
  let sessions = 0;
  for (const c of all) {
    for (const [serial, n] of Object.entries(c.revoked)) revoked[serial] = (revoked[serial] ?? 0) + n;
    sessions += c.untrusted.sessions;
    for (const s of c.untrusted.serials) serials.add(s);
  }
  return { revoked, untrusted: { sessions, serials: [...serials] } };
}
