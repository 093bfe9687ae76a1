/**
 * `certs list`: the CAs and every issued certificate, with what the
 * operator should do next: certificates expiring within --warn-days, CAs
 * with less life left than a leaf gets, certificates to renew before
 * rotate-ca finish, keys still on the old key derivation, and a CRL past
 * half its validity or expired (certs crl re-signs it). Read under
 * the lock so a commit in progress is never seen half done.
 */
import { existsSync } from 'node:fs';
import type { CliIo } from './io.js';
import { report, str, table } from './certs-args.js';
import type { Flags } from '../config/load.js';
import { keyEncryption, readPrivateFile, type KeyEncryption } from '../pki/keystore.js';
import { normalizeSerial } from '../pki/peer-certificate.js';
import { readIndex, readState, requireInitialized, statusOf, type IndexEntry, type Rotation } from '../pki/records.js';
import { crlFreshness, readRevokedSerials, type CrlFreshness } from '../pki/revocation.js';
import { stillOnPreviousCa } from '../pki/rotation.js';
import { readText, statePath, withLock, type StateFile } from '../pki/state-dir.js';
import { daysLeft, DEFAULT_LEAF_DAYS, parseDays } from '../pki/validity.js';
import { parseCertificatePem, splitPemCertificates } from '../pki/certificate.js';

const DEFAULT_WARN_DAYS = 30;
const KEY_FILES: readonly StateFile[] = ['caKey', 'caPreviousKey', 'gatewayKey'];

interface CaRow {
  serial: string;
  notAfter: string;
  daysLeft: number;
  issuing: boolean;
  /** Issued the gateway's certificate (and signs the CRL). */
  serving: boolean;
  /** Leaves the trust store at rotate-ca finish. */
  outgoing: boolean;
  /** Less life left than a new leaf would get: time to rotate. */
  rotateSoon: boolean;
}

interface CertRow {
  serial: string;
  role: string;
  name: string;
  uri: string;
  notBefore: string;
  notAfter: string;
  status: string;
  caSerial?: string;
  daysLeft: number;
  expiring: boolean;
  renewedBy?: string;
  renewBeforeFinish: boolean;
  revokedAt?: string;
  reason?: string;
}

export async function listCertificates(flags: Flags, dir: string, io: CliIo): Promise<number> {
  requireInitialized(dir);
  const warnDays = parseDays(str(flags, 'warn-days'), DEFAULT_WARN_DAYS);
  const now = new Date();
  const snap = await withLock(dir, () => ({
    state: readState(dir), index: readIndex(dir), revoked: readRevokedSerials(dir), trustPem: readText(statePath(dir, 'caCert')),
    crl: crlFreshness(dir, now),
    keys: KEY_FILES.filter((f) => existsSync(statePath(dir, f))).map((f) => ({ file: statePath(dir, f), text: readPrivateFile(statePath(dir, f)) })),
  }));
  const rotation = snap.state.rotation;
  const cas = caRows(snap.trustPem, rotation, now);
  const trusted = new Set(cas.map((c) => c.serial));
  const onlyCa = cas.length === 1 ? cas[0]!.serial : undefined;
  const waiting = new Set(rotation ? stillOnPreviousCa(snap.index.certificates, rotation.previousCaSerial, now).map((e) => e.serial) : []);
  const certs = snap.index.certificates.map((e) => certRow(e, { revoked: snap.revoked, trusted, now, warnDays, waiting, ...(onlyCa ? { onlyCa } : {}) }));
  const keys = snap.keys.map((k) => ({ file: k.file, ...keyEncryption(k.text, k.file) }));
  const crl = crlRow(snap.crl, dir);
  report(flags, io, { warnDays, cas, ...(rotation ? { rotation } : {}), crl, certificates: certs, keys },
    caTable(cas) + rotationText(rotation, waiting.size) + '\n' + certTable(certs) + '\n' + crlText(crl) + keysText(keys));
  return 0;
}

function caRows(trustPem: string, rotation: Rotation | undefined, now: Date): CaRow[] {
  return splitPemCertificates(trustPem).map((pem) => {
    const c = parseCertificatePem(pem);
    const serial = normalizeSerial(c.serialNumber);
    const outgoing = rotation?.previousCaSerial === serial;
    const left = daysLeft(now, new Date(c.validTo));
    return {
      serial, notAfter: new Date(c.validTo).toISOString(), daysLeft: left, issuing: !outgoing, outgoing,
      serving: rotation?.phase === 'begun' ? outgoing : !outgoing, rotateSoon: left < DEFAULT_LEAF_DAYS,
    };
  });
}

interface RowContext {
  revoked: ReadonlySet<string>;
  trusted: ReadonlySet<string>;
  now: Date;
  warnDays: number;
  waiting: ReadonlySet<string>;
  /** Entries from before CAs were recorded were issued by the one CA there was. */
  onlyCa?: string;
}

function certRow(e: IndexEntry, c: RowContext): CertRow {
  // revoked.json is written with index.json in one commit, but honour it alone too.
  const status = c.revoked.has(e.serial) ? 'revoked' : statusOf(e, c.now, c.trusted);
  const left = daysLeft(c.now, new Date(e.notAfter));
  const caSerial = e.caSerial ?? c.onlyCa;
  return {
    serial: e.serial, role: e.role, name: e.name, uri: e.uri, notBefore: e.notBefore, notAfter: e.notAfter, status,
    ...(caSerial ? { caSerial } : {}), daysLeft: left,
    expiring: status === 'valid' && e.renewedBy === undefined && left <= c.warnDays,
    ...(e.renewedBy ? { renewedBy: e.renewedBy } : {}),
    renewBeforeFinish: c.waiting.has(e.serial),
    ...(e.revokedAt !== undefined ? { revokedAt: e.revokedAt, reason: e.revocationReason ?? 'unspecified' } : {}),
  };
}

function caTable(cas: CaRow[]): string {
  return table(['CA', 'NOT AFTER', 'DAYS LEFT', 'ROLE'], cas.map((c) => [
    c.serial, c.notAfter.replace(/\.\d{3}Z$/, 'Z'), String(c.daysLeft),
    [c.issuing ? 'issuing' : '', c.serving ? 'serving the gateway' : '', c.outgoing ? 'outgoing (leaves at rotate-ca finish)' : '',
      c.rotateSoon ? `ROTATE: less than ${DEFAULT_LEAF_DAYS} days left` : ''].filter(Boolean).join(', '),
  ]));
}

function rotationText(r: Rotation | undefined, waiting: number): string {
  if (!r) return '';
  const next = r.phase === 'begun' ? 'renew what is marked, restart those peers, then certs rotate-ca switch'
    : waiting > 0 ? 'renew what is marked, then certs rotate-ca finish' : 'certs rotate-ca finish';
  return `CA rotation ${r.phase} (begun ${r.begunAt}): ${waiting} certificate(s) to renew before finish; next: ${next}.\n`;
}

interface CrlRow {
  state: CrlFreshness['state'];
  crlNumber?: number;
  thisUpdate?: string;
  nextUpdate?: string;
  /** What to run when the CRL is not fresh. */
  action?: string;
}

function crlRow(f: CrlFreshness, dir: string): CrlRow {
  return {
    state: f.state,
    ...(f.crlNumber !== undefined ? { crlNumber: f.crlNumber } : {}),
    ...(f.thisUpdate ? { thisUpdate: f.thisUpdate.toISOString() } : {}),
    ...(f.nextUpdate ? { nextUpdate: f.nextUpdate.toISOString() } : {}),
    ...(f.state !== 'fresh' ? { action: `scheduler-gateway certs crl --dir ${dir}` } : {}),
  };
}

function crlText(c: CrlRow): string {
  const what = { fresh: 'current', stale: 'PAST HALF its validity', expired: 'EXPIRED', unreadable: '' }[c.state];
  const head = c.state === 'unreadable' ? 'CRL: crl.pem is missing or unreadable' : `CRL number ${c.crlNumber ?? '?'}: ${what} ${c.state === 'expired' ? 'since' : 'until'} ${c.nextUpdate ?? '?'}`;
  return `${head}${c.action ? `; sign it again: ${c.action}` : ''}\n`;
}

function certTable(rows: CertRow[]): string {
  return table(['SERIAL', 'ROLE', 'NAME', 'CA', 'NOT AFTER', 'STATUS', 'NOTE'], rows.map((r) => [
    r.serial, r.role, r.name, r.caSerial?.slice(0, 8) ?? '-', r.notAfter.replace(/\.\d{3}Z$/, 'Z'), r.status, note(r),
  ]));
}

function note(r: CertRow): string {
  return [
    r.renewBeforeFinish ? (r.role === 'gateway' ? 'rotate-ca switch replaces it' : 'renew before finish') : '',
    r.expiring ? `EXPIRES in ${r.daysLeft} days: renew` : '',
    r.renewedBy ? `renewed by ${r.renewedBy.slice(0, 8)}` : '',
  ].filter(Boolean).join('; ');
}

function keysText(keys: Array<{ file: string } & KeyEncryption>): string {
  const old = keys.filter((k) => !k.current);
  if (old.length === 0) return '';
  return `\nKeys on an old key derivation (certs passphrase rewrites all of them, certs renew those it opens):\n`
    + old.map((k) => `  ${k.file}: ${k.kdf}${k.iterations !== undefined ? `, ${k.iterations} iterations` : ''}\n`).join('');
}
