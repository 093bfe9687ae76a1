/**
 * Each forwarded 8786 connection holds two descriptors (peer and scheduler).
 * A --max-connections that the process's open-files limit cannot back turns
 * the excess into EMFILE at accept or at the scheduler dial (libuv then
 * closes connections unaudited) instead of a clean, audited
 * too_many_connections refusal. So the cap in force is lowered to what the
 * limit allows, and compose.ts says so in the log.
 */
import { readFileSync } from 'node:fs';

/** Listeners, dashboard and credentials clients, the token store, the spool, stdio, the trust files. */
export const DESCRIPTOR_RESERVE = 256;
export const DESCRIPTORS_PER_CONNECTION = 2;

/** The soft open-files limit from the text of /proc/self/limits; undefined when unlimited or unreadable. */
export function openFilesLimit(limitsText: string): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limitsText);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Linux only; elsewhere the configured cap stands unchecked. */
export function readOpenFilesLimit(): number | undefined {
  try {
    return openFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

export function connectionCap(configured: number, fdLimit: number | undefined): number {
  if (fdLimit === undefined) return configured;
  return Math.max(1, Math.min(configured, Math.floor((fdLimit - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_CONNECTION)));
}
