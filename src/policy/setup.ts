/**
 * Builds the 8786 policy from its configuration slice for the composition
 * root: the holder (validated at start, reloadable) and the inspector factory
 * (undefined when inspection is off, so the terminator pipes bytes untouched).
 */
import type { PolicyConfig } from '../config/keys/policy.js';
import { statSync } from 'node:fs';
import type { Component, GatewayContext } from '../runtime/context.js';
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
      metrics.reloadsTotal.inc({ what: 'policy', result: r.ok ? 'ok' : 'error' });
      if (r.ok) log.audit('policy_reloaded', { source: holder.current().source, reason });
      else log.error('policy_reload_failed', { source: holder.path, reason, code: r.error?.code, error: r.error?.message });
      return r.ok;
    },
  };
}

/**
 * The composition root's one call: the inspector for the terminator (an
 * explicitly injected one wins), plus a 'policy' component that polls the
 * policy file and reloads it when it changes, like the TLS material.
 * Returns a spreadable `{ inspector }`, or `{}` when inspection is off.
 */
export function policyForTerminator(ctx: Pick<GatewayContext, 'log' | 'metrics'>, config: PolicyConfig, injected: InspectorFactory | undefined, components: Component[], pollMs = 1000): { inspector?: InspectorFactory } {
  if (injected) return { inspector: injected };
  const setup = openPolicy(ctx, config);
  const path = setup.holder.path;
  if (path !== undefined) {
    let timer: NodeJS.Timeout | undefined;
    if (pollMs > 0) {
      let last = fileStamp(path);
      let busy = false;
      timer = setInterval(() => {
        const now = fileStamp(path);
        if (now === last || busy) return;
        last = now;
        busy = true;
        void setup.reload('file change (poll)').finally(() => (busy = false));
      }, pollMs).unref();
    }
    const stop = async () => clearInterval(timer);
    components.push({ name: 'policy', reload: (reason) => setup.reload(reason), drain: stop, close: stop });
  }
  return setup.inspector ? { inspector: setup.inspector } : {};
}

function fileStamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
