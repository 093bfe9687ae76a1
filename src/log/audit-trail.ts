/**
 * The administrative audit trail: one JSON line per change an operator
 * makes to a cluster's credentials (CA created, certificate issued or
 * revoked, dashboard token created or revoked), appended to <dir>/audit.log
 * (mode 0600) and synced before the command reports success. The gateway's
 * own audit lines go to its log stream; these are written by short-lived
 * CLI commands, which have no log pipeline, so they live next to what they
 * describe. Secrets never reach it: fields pass through the logger's
 * redaction, and callers pass identifiers (serials, token ids), never
 * tokens, keys or passphrases.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { redact, type Fields } from './logger.js';

export const AUDIT_TRAIL_FILE = 'audit.log';

export type AdminEvent = 'cluster_initialized' | 'certificate_issued' | 'certificate_revoked' | 'token_created' | 'token_revoked'
  // certificate lifecycle (src/cli/certs-lifecycle.ts)
  | 'certificate_renewed' | 'ca_rotation_begun' | 'ca_rotation_switched' | 'ca_rotation_finished' | 'passphrase_changed' | 'crl_signed';

/** Who ran the command, as the OS knows them (sudo keeps the caller in SUDO_USER). */
export function operator(env: NodeJS.ProcessEnv): Fields {
  let user = 'unknown';
  let uid = -1;
  try {
    const u = userInfo();
    user = u.username;
    uid = u.uid;
  } catch {
    // No passwd entry (containers with an arbitrary uid): keep the uid alone.
    uid = process.getuid?.() ?? -1;
  }
  return { user, uid, ...(env.SUDO_USER ? { sudo_user: env.SUDO_USER } : {}), host: hostname(), pid: process.pid };
}

/** Appends and syncs one line; throws (with the OS reason) when the trail cannot be written. */
export function appendAuditTrail(dir: string, event: AdminEvent, fields: Fields, env: NodeJS.ProcessEnv, now = new Date()): void {
  const line = JSON.stringify({ time: now.toISOString(), level: 'audit', event, ...(redact(fields) as Fields), operator: operator(env) }) + '\n';
  const fd = openSync(join(dir, AUDIT_TRAIL_FILE), 'a', 0o600);
  try {
    writeSync(fd, line);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
