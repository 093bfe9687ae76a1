/**
 * The one composition root: builds the GatewayContext (logger, metrics,
 * sessions, trust) and starts each component from a flat list. A new
 * component is one `components.push(await startX(ctx))` line below.
 * Components never import each other; they share only the context.
 */
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../log/logger.js';
import { createMetrics } from '../runtime/metrics.js';
import type { Resolved } from '../config/load.js';
import type { Component, GatewayContext } from '../runtime/context.js';
import { SessionRegistry } from '../runtime/sessions.js';
import { settingsFrom, type GatewaySettings } from './settings.js';
import { openTrust } from '../runtime/material.js';
import { ensurePrivateDir } from '../pki/state-dir.js';
import { issuedByAny } from '../pki/certificate.js';
import { startTerminator } from '../terminator/terminator.js';
import { startDashboard } from '../dashboard/index.js';
import type { InspectorFactory } from '../terminator/inspector.js';
import { GatewayError } from '../errors/base.js';
import { policyForTerminator } from '../policy/setup.js';
import { credentialsSettings, startCredentials } from '../credentials/index.js';
import { startTelemetry } from '../telemetry/telemetry.js';
import { revocationSinkFor } from '../runtime/revocation-sink.js';
import { DESCRIPTOR_RESERVE, DESCRIPTORS_PER_CONNECTION, planConnectionCaps, readOpenFilesLimit, type ConnectionCaps, type Listener } from '../limits/descriptor-budget.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { MemoryBudget } from '../limits/memory-budget.js';
import { configError } from '../config/spec.js';

export interface GatewayDeps {
  readonly log?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Wire-aware policy on 8786; none means plain forwarding with zero overhead. */
  readonly inspector?: InspectorFactory;
  /** Poll interval of watched PKI files (tests shorten it). */
  readonly trustPollMs?: number;
  /** The process's open-files limit (default: /proc/self/limits); bounds the connection caps of every listener. */
  readonly openFilesLimit?: () => number | undefined;
}

export interface RunningGateway {
  readonly context: GatewayContext;
  readonly settings: GatewaySettings;
  /** Bound address of each listening component, by component name. */
  readonly addresses: Readonly<Record<string, AddressInfo>>;
  reload(reason: string): Promise<boolean>;
  /** Stops accepting, waits up to the deadline (default: drain-timeout-ms), then closes the rest. */
  drain(deadlineMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startGateway(configured: Resolved, deps: GatewayDeps = {}): Promise<RunningGateway> {
  const settings = settingsFrom(configured, deps.cwd ?? process.cwd());
  if (!settings.scheduler) throw new GatewayError('GW_USAGE', 'no --scheduler address: start the embedded scheduler first (cli/run.ts) or pass --scheduler HOST:PORT');
  const log = deps.log ?? createLogger({ level: settings.logLevel });
  const metrics = createMetrics();
  const config = withDescriptorBudget(configured, (deps.openFilesLimit ?? readOpenFilesLimit)(), log, metrics);
  const memoryBudget = memoryBudgetFor(config, settings.memoryBudgetBytes, metrics);
  const sessions = new SessionRegistry();
  if (settings.pki.mode === 'pem' && settings.stateDir) ensurePrivateDir(settings.stateDir);
  const trust = await openTrust(settings.pki, { env: deps.env ?? process.env, log, metrics, ...(deps.trustPollMs !== undefined ? { pollMs: deps.trustPollMs } : {}) });
  const ctx: GatewayContext = {
    config,
    log,
    metrics,
    sessions,
    trust,
    clusterId: trust.current().clusterId,
    stateDir: settings.stateDir,
    now: () => new Date(),
  };
  // Revocation reaches live sessions on every port, not only new handshakes;
  // so does a CA leaving the trust store (rotate-ca finish): what no longer chains is closed.
  trust.onChange((m, newlyRevoked, removedCas) => {
    for (const serial of newlyRevoked) {
      const closed = sessions.revokeSerial(serial);
      log.audit('revocation_applied', { serial, sessions_closed: closed });
    }
    if (removedCas.length > 0) {
      const closed = sessions.closeUntrusted((der) => issuedByAny(der, m.caPem));
      log.audit('ca_removed', { removed_cas: removedCas, reason: 'unknown_ca', sessions_closed: closed.sessions, serials: closed.serials });
    }
  });

  const components: Component[] = [];
  const addresses: Record<string, AddressInfo> = {};
  try {
    const terminator = await startTerminator(ctx, {
      listen: settings.listen,
      scheduler: settings.scheduler,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
      maxConnections: config['terminator.max-connections'] as number,
      ...settings.shares,
      allowMissingEku: settings.allowMissingEku,
      memoryBudget,
      failedHandshakesPerMinute: settings.failedHandshakesPerMinute,
      upstreamConnectTimeoutMs: settings.upstreamConnectTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      ...policyForTerminator(ctx, deps.inspector, components),
    });
    components.push(terminator);
    addresses.terminator = terminator.address;
    const dashboard = await startDashboard(ctx);
    components.push(dashboard);
    if (dashboard.address) addresses.dashboard = dashboard.address;
    const credentials = await startCredentials(ctx);
    components.push(credentials);
    if (credentials.address) addresses.credentials = credentials.address;
    const telemetry = await startTelemetry(ctx, { revocations: revocationSinkFor(ctx, settings.pki, deps.env ?? process.env), commands: credentials.commands });
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

const CAP_KEYS: Readonly<Record<Listener, string>> = {
  terminator: 'terminator.max-connections',
  dashboard: 'dashboard.max-connections',
  credentials: 'credentials.max-connections',
};
const PORT_LABEL: Readonly<Record<Listener, string>> = { terminator: '8786', dashboard: '8787', credentials: 'credentials' };

/**
 * The connection caps in force on every listener (limits/descriptor-budget.ts),
 * written back into the configuration the components read; each lowered cap
 * is logged (naming its key, both numbers and the limit) and every cap in
 * force is exported as scheduler_gateway_connection_limit{port}.
 */
function withDescriptorBudget(config: Resolved, fdLimit: number | undefined, log: Logger, metrics: GatewayMetrics): Resolved {
  const on = (l: Listener) =>
    l === 'terminator' || (l === 'dashboard' ? config['dashboard.enabled'] !== false : credentialsSettings(config).listen !== undefined);
  const capOf = (l: Listener) => (on(l) ? (config[CAP_KEYS[l]] as number) : 0);
  const configured: ConnectionCaps = { terminator: capOf('terminator'), dashboard: capOf('dashboard'), credentials: capOf('credentials') };
  const caps = planConnectionCaps(configured, fdLimit);
  const out: Resolved = { ...config };
  for (const l of Object.keys(caps) as Listener[]) {
    if (!on(l)) continue;
    if (caps[l] < configured[l]) {
      log.warn('max_connections_lowered', {
        key: CAP_KEYS[l], configured: configured[l], effective: caps[l], open_files_limit: fdLimit,
        why: `the open-files limit backs ${DESCRIPTORS_PER_CONNECTION[l]} descriptors per connection on this port after ${DESCRIPTOR_RESERVE} spare and the other ports' share; raise it (LimitNOFILE=, ulimit -n) to allow more`,
      });
    }
    out[CAP_KEYS[l]] = caps[l];
    metrics.connectionLimit.set({ port: PORT_LABEL[l] }, caps[l]);
  }
  return out;
}

/** The 8786 memory budget; a frame 0 larger than the whole budget could never be read. */
function memoryBudgetFor(config: Resolved, limitBytes: number, metrics: GatewayMetrics): MemoryBudget {
  const frame0 = config['policy.max-frame0-bytes'] as number | undefined;
  if (config['policy.inspect'] !== false && frame0 !== undefined && frame0 > limitBytes) {
    throw configError('terminator.memory-budget-bytes', `${limitBytes} is smaller than --max-frame0-bytes (${frame0}): one message header could never fit`);
  }
  metrics.memoryBudgetLimitBytes.set(limitBytes);
  return new MemoryBudget({
    limitBytes,
    onChange: (used, paused) => {
      metrics.memoryBudgetUsedBytes.set(used);
      metrics.memoryBudgetPausedConnections.set(paused);
    },
    onEvict: () => metrics.memoryBudgetEvictionsTotal.inc(),
  });
}
