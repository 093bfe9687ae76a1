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

export function openPolicy(ctx: Pick<GatewayContext, 'log' | 'metrics'>, config: PolicyConfig): PolicySetup {
  const { log, metrics } = ctx;
  const holder = new PolicyHolder(config.file, settingsFromConfig(config));
  const { inspect } = config;
  const inspector = inspect ? createInspectorFactory(holder, { log, metrics, limits: limitsFromConfig(config) }) : undefined;
  const { settings, source } = holder.current();
  log.info('policy_loaded', { source, inspect, worker_client_ops: settings.workerClientOps, unknown_ops: settings.unknownOps, pin_worker_name: settings.pinWorkerName });
  return {
    holder,
    inspector,
    async reload(reason) {
      const r = await holder.reload();
      metrics.reloadsTotal.inc({ what: 'policy', result: r.ok ? 'success' : 'failure' });
      if (r.ok) log.audit('policy_reloaded', { source: holder.current().source, reason });
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
  const path = setup.holder.path;
  if (path !== undefined) {
    const watch = FileWatch.start({ what: 'policy', files: [path], reload: (reason) => setup.reload(reason), log: ctx.log, metrics: ctx.metrics, pollMs });
    const stop = async () => watch.close();
    components.push({ name: 'policy', reload: (reason) => watch.reload(reason), drain: stop, close: stop });
  }
  return setup.inspector ? { inspector: setup.inspector } : {};
}
