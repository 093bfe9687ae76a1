/**
 * Builds the 8786 policy from its configuration slice for the composition
 * root: the holder (validated at start, reloadable) and the inspector factory
 * (undefined when inspection is off, so the terminator pipes bytes untouched).
 */
import type { PolicyConfig } from '../config/keys/policy.js';
import type { Component, GatewayContext } from '../runtime/context.js';
import { FileWatch } from '../runtime/file-watch.js';
import type { InspectorFactory } from '../terminator/inspector.js';
import type { FrameLimits } from '../wire/frame-parser.js';
import { PolicyHolder } from './holder.js';
import { createInspectorFactory } from './inspector.js';
import type { PolicySettings } from './rules.js';

export interface PolicySetup {
  readonly holder: PolicyHolder;
  readonly inspector: InspectorFactory | undefined;
  /** Re-reads the policy file; logs, audits and counts the outcome; a failure keeps the old policy. */
  reload(reason: string): Promise<boolean>;
}

export function settingsFromConfig(c: PolicyConfig): PolicySettings {
  return { workerClientOps: c.workerClientOps, unknownOps: c.unknownOps, pinWorkerName: c.pinWorkerName };
}

export function limitsFromConfig(c: PolicyConfig): FrameLimits {
  return { maxFrames: c.maxFrames, maxFrame0Bytes: c.maxFrame0Bytes, maxMessageBytes: c.maxMessageBytes };
}

/** `reloaded` hears of every policy put in force after the start (the data-plane processes follow it). */
export function openPolicy(ctx: Pick<GatewayContext, 'log' | 'metrics'>, config: PolicyConfig, reloaded?: (holder: PolicyHolder) => void): PolicySetup {
  const { log, metrics } = ctx;
  const holder = new PolicyHolder(config.file, settingsFromConfig(config));
  const { inspect } = config;
  const inspector = inspect && !reloaded ? createInspectorFactory(holder, { log, metrics, limits: limitsFromConfig(config) }) : undefined;
  const { settings, source } = holder.current();
  log.info('policy_loaded', { source, inspect, worker_client_ops: settings.workerClientOps, unknown_ops: settings.unknownOps, pin_worker_name: settings.pinWorkerName });
  return {
    holder,
    inspector,
    async reload(reason) {
      const r = await holder.reload();
      metrics.reloadsTotal.inc({ what: 'policy', result: r.ok ? 'success' : 'failure' });
      if (r.ok) {
        log.audit('policy_reloaded', { source: holder.current().source, reason });
        reloaded?.(holder);
      }
      else log.error('policy_reload_failed', { source: holder.path, reason, code: r.error?.code, error: r.error?.message });
      return r.ok;
    },
  };
}

/**
 * The composition root's one call: the inspector for the terminator (an
 * explicitly injected one wins), plus a 'policy' component that watches the
 * policy file and reloads it when it changes, like the TLS material.
 * Returns a spreadable `{ inspector }`, or `{}` when inspection is off.
 */
export function policyForTerminator(ctx: Pick<GatewayContext, 'log' | 'metrics'>, config: PolicyConfig, injected: InspectorFactory | undefined, components: Component[], pollMs?: number): { inspector?: InspectorFactory } {
  if (injected) return { inspector: injected };
  const setup = openPolicy(ctx, config);
  watchPolicy(ctx, setup, components, pollMs);
  return setup.inspector ? { inspector: setup.inspector } : {};
}

/**
 * With several data-plane processes the primary holds and watches the
 * policy, and each process inspects with the text the primary validated:
 * the policy in force now, and `publish` for every reload. Undefined when
 * inspection is off.
 */
export function policyForDataPlane(ctx: Pick<GatewayContext, 'log' | 'metrics'>, config: PolicyConfig, components: Component[], publish: (holder: PolicyHolder) => void): PolicyHolder | undefined {
  if (!config.inspect) return undefined;
  const setup = openPolicy(ctx, config, publish);
  watchPolicy(ctx, setup, components);
  return setup.holder;
}

function watchPolicy(ctx: Pick<GatewayContext, 'log' | 'metrics'>, setup: PolicySetup, components: Component[], pollMs?: number): void {
  const path = setup.holder.path;
  if (path !== undefined) {
    const watch = FileWatch.start({ what: 'policy', files: [path], reload: (reason) => setup.reload(reason), log: ctx.log, metrics: ctx.metrics, pollMs });
    const stop = async () => watch.close();
    components.push({ name: 'policy', reload: (reason) => watch.reload(reason), drain: stop, close: stop });
  }
}
