/**
 * Revocation: revoked.json (what the daemon watches) and crl.pem (the same
 * list as an X.509 CRL, crlNumber increasing, signed by the CA that issued
 * the gateway's certificate, whose CRL Distribution Point names it).
 * revoked.json, crl.pem and index.json change in one commit (state-dir.ts):
 * a crash leaves the revocation wholly done or not at all.
 */
import { existsSync, readFileSync } from 'node:fs';
import { pkiError } from './errors.js';
import { caSerials, loadCa, type LoadedCa } from './ca.js';
import { normalizeSerial } from './peer-certificate.js';
import { currentEntry, readIndex, readRevocationList, requireInitialized, FORMAT_VERSION,
  type CertIndex, type IndexEntry, type RevocationList } from './records.js';
import { commitFiles, jsonText, statePath, withLock, type FileChange } from './state-dir.js';
import { createCrl, isCrlReason, parseCrl, CRL_REASONS, type CrlReason } from './x509.js';

/** How long a CRL claims to be current; init, every revoke and `certs crl` write a fresh one, issue re-signs a half-expired one. */
export const CRL_VALIDITY_DAYS = 30;

export function parseReason(v: string | undefined): CrlReason {
  if (v === undefined) return 'unspecified';
  if (!isCrlReason(v)) throw pkiError('invalidReason', { reason: v, allowed: Object.keys(CRL_REASONS).join(', ') });
  return v;
}

export function emptyRevocationList(now: Date): RevocationList {
  return { version: FORMAT_VERSION, crlNumber: 1, updatedAt: now.toISOString(), revoked: [] };
}

export function signCrl(ca: LoadedCa, list: RevocationList, now: Date): Promise<string> {
  return createCrl({
    caCertPem: ca.certPem,
    caKey: ca.keys.privateKey,
    crlNumber: list.crlNumber,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + CRL_VALIDITY_DAYS * 86_400_000),
    entries: list.revoked.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt), reason: r.reason })),
  });
}

export interface RevokeOptions {
  dir: string;
  passphrase: string;
  /** Exactly one of serial (hex, any case, colons allowed) or name. */
  serial?: string;
  name?: string;
  reason?: CrlReason;
  now?: Date;
}

export interface RevokeResult {
  serial: string;
  name: string;
  role: string;
  crlNumber: number;
}

export async function revokeCertificate(opts: RevokeOptions): Promise<RevokeResult> {
  const { dir } = opts;
  const now = opts.now ?? new Date();
  requireInitialized(dir);
  if ((opts.serial === undefined) === (opts.name === undefined)) {
    throw pkiError('usage', { message: 'give exactly one of --name or --serial' });
  }
  if (opts.serial !== undefined && !/^[0-9a-fA-F:]+$/.test(opts.serial)) throw pkiError('invalidSerial', { serial: opts.serial });
  const reason = opts.reason ?? 'unspecified';
  const ca = await loadCa(dir, opts.passphrase, 'serving'); // wrong passphrase fails here, before the lock
  return withLock(dir, async () => {
    const index = readIndex(dir);
    const list = readRevocationList(dir);
    const entry = findTarget(index.certificates, opts, dir, now, caSerials(ca.trustPem));
    if (entry.revokedAt !== undefined || list.revoked.some((r) => r.serial === entry.serial)) {
      throw pkiError('alreadyRevoked', { serial: entry.serial });
    }
    const next = withRevocation(list, entry, reason, now);
    commitFiles(dir, await revocationFiles(ca, next, index, now));
    return { serial: entry.serial, name: entry.name, role: entry.role, crlNumber: next.crlNumber };
  });
}

/** The list with entry revoked (entry, an element of the index read under the lock, is marked too). */
export function withRevocation(list: RevocationList, entry: IndexEntry, reason: CrlReason, now: Date): RevocationList {
  const revokedAt = now.toISOString();
  entry.revokedAt = revokedAt;
  entry.revocationReason = reason;
  return { ...list, crlNumber: list.crlNumber + 1, updatedAt: revokedAt, revoked: [...list.revoked, { serial: entry.serial, revokedAt, reason }] };
}

/** revoked.json, a CRL signed by ca for it, and the index: the files of one revocation commit. */
export async function revocationFiles(ca: LoadedCa, list: RevocationList, index: CertIndex, now: Date): Promise<FileChange[]> {
  return [
    { file: 'revoked', data: jsonText(list) },
    { file: 'crl', data: await signCrl(ca, list, now), mode: 0o644 },
    { file: 'index', data: jsonText(index) },
  ];
}

function findTarget(entries: IndexEntry[], opts: RevokeOptions, dir: string, now: Date, trusted: ReadonlySet<string>): IndexEntry {
  if (opts.serial !== undefined) {
    const serial = normalizeSerial(opts.serial);
    const e = entries.find((x) => x.serial === serial);
    if (!e) throw pkiError('unknownSerial', { serial, dir });
    return e;
  }
  // By name: the current certificate (a renewed one stays valid but is revoked by --serial).
  const e = currentEntry(entries, opts.name!, now, trusted);
  if (!e) throw pkiError('unknownName', { name: opts.name, dir });
  return e;
}

/**
 * Re-signs the CRL when it is past half its validity (or when forced) so
 * relying parties that check CRL freshness keep accepting it between
 * revocations. Every writer command calls it; so can the daemon, periodically.
 * Returns the CRL number now current.
 */
export async function refreshCrl(dir: string, passphrase: string, opts: { force?: boolean; now?: Date; ca?: LoadedCa } = {}): Promise<{ refreshed: boolean; crlNumber: number }> {
  const now = opts.now ?? new Date();
  requireInitialized(dir);
  if (!opts.force && !crlIsStale(dir, now)) return { refreshed: false, crlNumber: readRevocationList(dir).crlNumber };
  const ca = opts.ca ?? (await loadCa(dir, passphrase, 'serving'));
  return withLock(dir, async () => {
    const list = readRevocationList(dir);
    if (!opts.force && !crlIsStale(dir, now)) return { refreshed: false, crlNumber: list.crlNumber };
    const next: RevocationList = { ...list, crlNumber: list.crlNumber + 1, updatedAt: now.toISOString() };
    commitFiles(dir, [{ file: 'revoked', data: jsonText(next) }, { file: 'crl', data: await signCrl(ca, next, now), mode: 0o644 }]);
    return { refreshed: true, crlNumber: next.crlNumber };
  });
}

function crlIsStale(dir: string, now: Date): boolean {
  return crlFreshness(dir, now).state !== 'fresh'; // missing or unreadable: write a good one
}

/** How current crl.pem is: fresh, past half its validity (stale: re-sign it), past nextUpdate (expired), or unreadable. */
export interface CrlFreshness {
  state: 'fresh' | 'stale' | 'expired' | 'unreadable';
  crlNumber?: number;
  thisUpdate?: Date;
  nextUpdate?: Date;
}

export function crlFreshness(dir: string, now: Date): CrlFreshness {
  let crl: ReturnType<typeof parseCrl>;
  try {
    crl = parseCrl(readFileSync(statePath(dir, 'crl'), 'utf8'));
  } catch {
    return { state: 'unreadable' };
  }
  const { thisUpdate, nextUpdate } = crl;
  const at = now.getTime();
  const state = nextUpdate !== undefined && at >= nextUpdate.getTime() ? 'expired'
    : at - thisUpdate.getTime() > (CRL_VALIDITY_DAYS / 2) * 86_400_000 ? 'stale' : 'fresh';
  return { state, thisUpdate, ...(nextUpdate !== undefined ? { nextUpdate } : {}), ...(crl.crlNumber !== undefined ? { crlNumber: crl.crlNumber } : {}) };
}

/** Revoked serials (normalizeSerial form) from revoked.json. Throws if missing or corrupt: fail closed. */
export function readRevokedSerials(dir: string): Set<string> {
  if (!existsSync(statePath(dir, 'revoked'))) throw pkiError('notInitialized', { dir });
  return new Set(readRevocationList(dir).revoked.map((r) => normalizeSerial(r.serial)));
}
