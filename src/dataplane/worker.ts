/**
 * One data-plane process, wired: what worker-main.ts starts once the IPC
 * pipe is up. Kept apart from the entry point so tests can drive it over an
 * in-memory channel.
 */
import type { AddressInfo } from 'node:net';
import type { Channel } from './channel.js';
import { OP, fromWireTrust, type Listening, type PolicyText, type TrustApplied, type TrustUpdate, type WorkerInit } from './protocol.js';
import { relayLogger } from './log-relay.js';
import { RelayedTrust } from './relayed-trust.js';
import { RemoteAdmission } from './remote-admission.js';
import { createMetrics } from '../runtime/metrics.js';
import { SessionRegistry, closeForTrustChange } from '../runtime/sessions.js';
import type { GatewayContext } from '../runtime/context.js';
import { meteredMemoryBudget } from '../runtime/metered-budget.js';
import { startTerminator, type Terminator } from '../terminator/terminator.js';
import type { InspectorFactory } from '../terminator/inspector.js';
import { PolicyHolder } from '../policy/holder.js';
import { createInspectorFactory } from '../policy/inspector.js';
import { limitsFromConfig, settingsFromConfig } from '../policy/setup.js';
import { WorkerDirectory } from '../policy/worker-directory.js';

/** Returns what to do when the primary is gone: close everything, then leave. */
export function startDataPlaneProcess(ch: Channel, exit: (code: number) => void): () => Promise<void> {
  let running: Promise<Running> | undefined;
  ch.handle(OP.init, (body) => {
    running ??= start(ch, body as WorkerInit);
    return running.then((r) => r.listening);
  });
  ch.handle(OP.drain, async (b) => (await running)?.terminator.drain(Number((b as { deadlineMs: unknown }).deadlineMs)));
  ch.handle(OP.close, async () => {
    await (await running)?.close();
    setImmediate(() => exit(0));
  });
  // Messages sent before a process listens are dropped: the primary waits for this before `init`.
  ch.notify(OP.ready, null);
  return async () => {
    ch.close();
    await (await running?.catch(() => undefined))?.close();
    exit(1);
  };
}

interface Running {
  readonly listening: Listening;
  readonly terminator: Terminator;
  close(): Promise<void>;
}

async function start(ch: Channel, init: WorkerInit): Promise<Running> {
  const log = relayLogger(ch, init.logLevel, init.index);
  const metrics = createMetrics();
  const sessions = new SessionRegistry();
  const trust = new RelayedTrust(fromWireTrust(init.trust));
  const ctx: GatewayContext = { log, metrics, sessions, trust, clusterId: init.trust.clusterId, stateDir: undefined, allowMissingEku: init.allowMissingEku, now: () => new Date() };
  ch.handle(OP.metrics, () => metrics.registry.getMetricsAsJSON());
  ch.handle(OP.trust, (b) => applyTrust(ctx, trust, b as TrustUpdate));
  const inspector = inspectorFor(ch, init, ctx);
  const t = init.terminator;
  const terminator = await startTerminator(ctx, {
    ...t.shares,
    listen: t.listen,
    scheduler: t.scheduler,
    handshakeTimeoutMs: t.handshakeTimeoutMs,
    failedHandshakesPerMinute: t.failedHandshakesPerMinute,
    upstreamConnectTimeoutMs: t.upstreamConnectTimeoutMs,
    idleTimeoutMs: t.idleTimeoutMs,
    allowMissingEku: init.allowMissingEku,
    memoryBudget: meteredMemoryBudget(init.memoryBudgetBytes, metrics),
    admission: (reclaim) => new RemoteAdmission(ch, reclaim),
    ...(inspector ? { inspector } : {}),
  });
  const a = terminator.address as AddressInfo;
  return {
    listening: { address: { address: a.address, family: a.family, port: a.port } },
    terminator,
    // The turn's last lines leave (setImmediate) before the exit's marker (worker-main.ts).
    close: () => terminator.close(),
  };
}

/** The same closes a trust change causes in the primary, counted for its one audit line (gateway/compose.ts). */
function applyTrust(ctx: GatewayContext, trust: RelayedTrust, u: TrustUpdate): TrustApplied {
  const m = fromWireTrust(u.material);
  trust.apply(m, [...u.newlyRevoked], [...u.removedCas]);
  return closeForTrustChange(ctx.sessions, m.caPem, u.newlyRevoked, u.removedCas);
}

function inspectorFor(ch: Channel, init: WorkerInit, ctx: GatewayContext): InspectorFactory | undefined {
  if (!init.policy) return undefined;
  const { config, current } = init.policy;
  const holder = new PolicyHolder(undefined, settingsFromConfig(config));
  holder.adopt(current.text, current.source);
  ch.handle(OP.policy, (b) => {
    const p = b as PolicyText;
    try {
      holder.adopt(p.text, p.source);
    } catch (e) {
      // The primary validated it; a failure here keeps the policy in force, like a failed reload.
      ctx.log.error('policy_reload_failed', { source: p.source, reason: 'from primary', error: (e as Error).message });
    }
  });
  const workers = new WorkerDirectory(undefined, (address, owner) => ch.notify(OP.workerRegistered, { address, owner }));
  for (const [address, owner] of init.workers) workers.addRelayed(address, owner);
  ch.handle(OP.workerRegistered, (b) => {
    const { address, owner } = b as { address: unknown; owner: unknown };
    if (typeof address === 'string' && typeof owner === 'string') workers.addRelayed(address, owner);
  });
  return createInspectorFactory(holder, { log: ctx.log, metrics: ctx.metrics, limits: limitsFromConfig(config) }, workers);
}
