/**
 * One descriptor budget for every listener. A forwarded 8786 connection holds
 * two descriptors (peer and scheduler), a dashboard connection two (browser
 * and the scheduler's dashboard), a credentials connection one. Caps that the
 * process's open-files limit cannot back turn the excess into EMFILE at
 * accept or at an upstream dial (libuv then closes connections unaudited),
 * and a flood on one port would starve the others. So gateway/compose.ts splits the
 * limit: a fixed reserve for everything else, then, when the configured caps
 * do not all fit, the dashboard and credentials ports are held to a small
 * share and 8786 (whose worker reserve fair-shares.ts protects) keeps the
 * rest. Every cap lowered is logged with its key.
 */
import { readFileSync } from 'node:fs';

/** Listeners, upstream scrapes, the token store, the spool, stdio, the trust files, the scheduler child's pipes. */
export const DESCRIPTOR_RESERVE = 256;

export type Listener = 'terminator' | 'dashboard' | 'credentials';

export const DESCRIPTORS_PER_CONNECTION: Readonly<Record<Listener, number>> = { terminator: 2, dashboard: 2, credentials: 1 };

/** Most of the budget the side ports may take when the configured caps do not all fit. */
const SIDE_SHARE: Readonly<Record<Exclude<Listener, 'terminator'>, number>> = { dashboard: 0.15, credentials: 0.05 };

/** Connection caps per listener; 0 for a listener that is off. */
export type ConnectionCaps = Readonly<Record<Listener, number>>;

/** The soft open-files limit from the text of /proc/self/limits; undefined when unlimited or unreadable. */
export function openFilesLimit(limitsText: string): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limitsText);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Linux only; elsewhere the configured caps stand unchecked. */
export function readOpenFilesLimit(): number | undefined {
  try {
    return openFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

function descriptorsFor(caps: ConnectionCaps): number {
  return (Object.keys(caps) as Listener[]).reduce((n, l) => n + caps[l] * DESCRIPTORS_PER_CONNECTION[l], 0);
}

/** The caps in force: the configured ones when the limit backs them all, else the side ports first held to their share. */
export function planConnectionCaps(configured: ConnectionCaps, fdLimit: number | undefined): ConnectionCaps {
  if (fdLimit === undefined) return configured;
  const available = Math.max(0, fdLimit - DESCRIPTOR_RESERVE);
  if (descriptorsFor(configured) <= available) return configured;
  const side = (l: Exclude<Listener, 'terminator'>) =>
    configured[l] === 0 ? 0 : Math.max(1, Math.min(configured[l], Math.floor((available * SIDE_SHARE[l]) / DESCRIPTORS_PER_CONNECTION[l])));
  const dashboard = side('dashboard');
  const credentials = side('credentials');
  const rest = available - dashboard * DESCRIPTORS_PER_CONNECTION.dashboard - credentials * DESCRIPTORS_PER_CONNECTION.credentials;
  const terminator = Math.max(1, Math.min(configured.terminator, Math.floor(rest / DESCRIPTORS_PER_CONNECTION.terminator)));
  return { terminator, dashboard, credentials };
}
