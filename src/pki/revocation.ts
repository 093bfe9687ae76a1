/**
 * Revocation: revoked.json (what the daemon watches) and crl.pem (the same
 * list as an X.509 CRL signed by the CA, crlNumber increasing). revoked.json
 * is written first: it is what cuts live sessions, so a crash between the
 * writes errs on the side of the revocation having happened.
 */
import { existsSync, readFileSync } from 'node:fs';
import { pkiError } from './errors.js';
import { loadCa, type LoadedCa } from './ca.js';
import { normalizeSerial } from './peer-certificate.js';
import { readIndex, readRevocationList, requireInitialized, writeIndex, writeRevocationList, FORMAT_VERSION, statusOf,
  type IndexEntry, type RevocationList } from './records.js';
import { statePath, writeFileAtomic, withLock } from './state-dir.js';
import { createCrl, isCrlReason, parseCrl, CRL_REASONS, type CrlReason } from './x509.js';

/** How long a CRL claims to be current; init and every revoke write a fresh one, issue re-signs a half-expired one. */
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
  const ca = await loadCa(dir, opts.passphrase); // wrong passphrase fails here, before the lock
  return withLock(dir, async () => {
    const index = readIndex(dir);
    const list = readRevocationList(dir);
    const entry = findTarget(index.certificates, opts, dir, now);
    if (entry.revokedAt !== undefined || list.revoked.some((r) => r.serial === entry.serial)) {
      throw pkiError('alreadyRevoked', { serial: entry.serial });
    }
    const revokedAt = now.toISOString();
    const next: RevocationList = {
      ...list,
      crlNumber: list.crlNumber + 1,
      updatedAt: revokedAt,
      revoked: [...list.revoked, { serial: entry.serial, revokedAt, reason }],
    };
    const crl = await signCrl(ca, next, now);
    writeRevocationList(dir, next);
    writeFileAtomic(statePath(dir, 'crl'), crl, 0o644);
    entry.revokedAt = revokedAt;
    entry.revocationReason = reason;
    writeIndex(dir, index);
    return { serial: entry.serial, name: entry.name, role: entry.role, crlNumber: next.crlNumber };
  });
}

function findTarget(entries: IndexEntry[], opts: RevokeOptions, dir: string, now: Date): IndexEntry {
  if (opts.serial !== undefined) {
    const serial = normalizeSerial(opts.serial);
    const e = entries.find((x) => x.serial === serial);
    if (!e) throw pkiError('unknownSerial', { serial, dir });
    return e;
  }
  // By name: the one certificate that is still valid (names are unique among valid certificates).
  const e = entries.find((x) => x.name === opts.name && statusOf(x, now) === 'valid');
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
  const ca = opts.ca ?? (await loadCa(dir, passphrase));
  return withLock(dir, async () => {
    const list = readRevocationList(dir);
    if (!opts.force && !crlIsStale(dir, now)) return { refreshed: false, crlNumber: list.crlNumber };
    const next: RevocationList = { ...list, crlNumber: list.crlNumber + 1, updatedAt: now.toISOString() };
    const crl = await signCrl(ca, next, now);
    writeRevocationList(dir, next);
    writeFileAtomic(statePath(dir, 'crl'), crl, 0o644);
    return { refreshed: true, crlNumber: next.crlNumber };
  });
}

function crlIsStale(dir: string, now: Date): boolean {
  try {
    const { thisUpdate } = parseCrl(readFileSync(statePath(dir, 'crl'), 'utf8'));
    return now.getTime() - thisUpdate.getTime() > (CRL_VALIDITY_DAYS / 2) * 86_400_000;
  } catch {
    return true; // missing or unreadable: write a good one
  }
}

/** Revoked serials (normalizeSerial form) from revoked.json. Throws if missing or corrupt: fail closed. */
export function readRevokedSerials(dir: string): Set<string> {
  if (!existsSync(statePath(dir, 'revoked'))) throw pkiError('notInitialized', { dir });
  return new Set(readRevocationList(dir).revoked.map((r) => normalizeSerial(r.serial)));
}
