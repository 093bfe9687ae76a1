/**
 * What every self-hosted source shares: turn "here is a document" into a
 * held set, or into a logged, counted refusal that keeps the previous set.
 * The log line names the source and the broken rule, never a value.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { isGatewayError } from '../errors/base.js';
import { parseCredentialDocument, type CredentialSet } from './credential.js';
import type { CredentialHolder } from './holder.js';

export interface SourceDeps {
  readonly holder: CredentialHolder;
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'reloadsTotal' | 'inputRejectedTotal'>;
  readonly now: () => Date;
}

/** Validates and installs; returns the set, or undefined after logging why not. */
export function install(deps: SourceDeps, source: 'file' | 'command', load: () => string, fields: Record<string, unknown>): CredentialSet | undefined {
  let set: CredentialSet;
  try {
    set = parseCredentialDocument(load(), source, deps.now());
  } catch (e) {
    refused(deps, source, e, fields);
    return undefined;
  }
  deps.holder.put(set);
  deps.metrics.reloadsTotal.inc({ what: 'credentials', result: 'success' });
  return set;
}

export function refused(deps: SourceDeps, source: string, e: unknown, fields: Record<string, unknown>): void {
  const code = isGatewayError(e) ? e.code : 'internal';
  deps.metrics.reloadsTotal.inc({ what: 'credentials', result: 'failure' });
  deps.metrics.inputRejectedTotal.inc({ surface: 'credentials', reason: code });
  // GatewayError messages of this component are built without values; anything else is reduced to its code.
  deps.log.error('credentials_source_failed', { source, ...fields, code, problem: isGatewayError(e) ? e.message : 'internal error' });
}
