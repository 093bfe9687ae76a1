/**
 * Validity windows and argument checks shared by init and issue: days,
 * hosts, key types. Pure.
 */
import { isIP } from 'node:net';
import { pkiError } from './errors.js';
import { isKeyType, type KeyType } from './x509.js';

export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_LEAF_DAYS = 365;
const MAX_DAYS = 36500;
/** Backdate notBefore a little so a peer whose clock is slightly behind accepts a fresh certificate. */
export const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 86_400_000;

export function parseDays(v: number | string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_DAYS) throw pkiError('invalidDays', { days: v, reason: `a whole number from 1 to ${MAX_DAYS}` });
  return n;
}

export function validityWindow(now: Date, days: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter: new Date(now.getTime() + days * DAY_MS) };
}

/** Whole days from now to the CA's end, for a clear --days error. */
export function daysLeft(now: Date, notAfter: Date): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}

export function parseKeyType(v: string | undefined): KeyType {
  if (v === undefined) return 'ec-p256';
  if (!isKeyType(v)) throw pkiError('invalidKeyType', { keyType: v });
  return v;
}

const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/** Splits --host values into DNS names and IPs, refusing anything that is neither. */
export function classifyHosts(hosts: readonly string[]): { dns: string[]; ip: string[] } {
  const dns: string[] = [];
  const ip: string[] = [];
  for (const raw of hosts) {
    const h = raw.trim();
    const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
    if (isIP(bare)) ip.push(bare);
    else if (h.length <= 253 && h.split('.').every((l) => DNS_LABEL.test(l))) dns.push(h.toLowerCase());
    else throw pkiError('invalidHost', { host: raw });
  }
  return { dns: [...new Set(dns)], ip: [...new Set(ip)] };
}

/** The gateway's names when init is given no --host: enough for a single-host trial. */
export const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'];

/** Where the dashboard port serves the cluster CRL, unauthenticated (src/dashboard/crl.ts). */
export const GATEWAY_CRL_PATH = '/gateway/crl.pem';
/** The dashboard's default port: the CRL URI is fixed at init, before any --dashboard-listen is known. */
export const DASHBOARD_DEFAULT_PORT = 8787;

/**
 * The CRL Distribution Point written into the gateway's certificate:
 * https://<first --host>:8787/gateway/crl.pem. With no --host the first
 * default host, localhost, is used. An IPv6 literal is bracketed.
 */
export function gatewayCrlUrl(hosts: readonly string[]): string {
  const first = (hosts.length > 0 ? hosts[0]! : DEFAULT_HOSTS[0]!).trim();
  const bare = first.startsWith('[') && first.endsWith(']') ? first.slice(1, -1) : first;
  const host = isIP(bare) === 6 ? `[${bare}]` : bare.toLowerCase();
  return `https://${host}:${DASHBOARD_DEFAULT_PORT}${GATEWAY_CRL_PATH}`;
}
