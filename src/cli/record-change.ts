/**
 * Records an operator's change in the state directory's audit trail
 * (log/audit-trail.ts) after the command has made it. If the trail cannot be
 * written the change stands (it is already on disk and reported on stdout),
 * and the command fails with its own exit code so a script notices that it
 * went unrecorded instead of retrying the change.
 */
import { join } from 'node:path';
import { GatewayError } from '../errors/base.js';
import { appendAuditTrail, AUDIT_TRAIL_FILE, type AdminEvent } from '../log/audit-trail.js';
import type { Fields } from '../log/logger.js';
import type { CliIo } from './io.js';

export const EXIT_UNRECORDED = 4;

export function recordChange(dir: string, event: AdminEvent, fields: Fields, io: CliIo): void {
  try {
    appendAuditTrail(dir, event, fields, io.env);
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? String(e);
    const path = join(dir, AUDIT_TRAIL_FILE);
    throw new GatewayError('GW_AUDIT_TRAIL_FAILED', `the change was made, but it could not be recorded in ${path}: ${reason}`, { path, reason, event }, EXIT_UNRECORDED);
  }
}
