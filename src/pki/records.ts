/**
 * The JSON records in the state directory (state.json, index.json,
 * revoked.json): their shapes, and readers that reject anything else with an
 * error naming the file. Writers go through state-dir.ts (atomic, locked).
 */
import { ROLES, type Role } from './identity.js';
import { pkiError } from './errors.js';
import { isKeyType, isCrlReason, type KeyType, type CrlReason } from './x509.js';
import { existsSync } from 'node:fs';
import { assertStateDir, readJson, statePath, writeJsonAtomic } from './state-dir.js';

export const FORMAT_VERSION = 1;

export interface ClusterState {
  version: number;
  clusterId: string;
  keyType: KeyType;
  createdAt: string;
  /** DNS names / IPs in the gateway certificate: the address issued bundles point at. */
  hosts: string[];
  /** Only the embedded development default sets this; it makes .dev-passphrase honoured. */
  devPassphrase?: boolean;
  /** How many CAs this cluster has had (absent: 1); names the next CA ("<cluster> cluster CA 2"). */
  caGeneration?: number;
  /** A CA rotation in progress (certs rotate-ca): ca.pem then holds both CAs. */
  rotation?: Rotation;
}

export interface Rotation {
  /** begun: the new CA issues, the gateway still serves the old one's certificate; switched: it serves the new one's. */
  phase: 'begun' | 'switched';
  /** Serial of the outgoing CA, whose key is ca-previous-key.pem until finish. */
  previousCaSerial: string;
  begunAt: string;
  switchedAt?: string;
}

export interface IndexEntry {
  serial: string;
  role: Role;
  name: string;
  uri: string;
  keyType: KeyType;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  revokedAt?: string;
  revocationReason?: CrlReason;
  /** Serial of the CA that signed it (absent in entries written before CA rotation existed: the first CA). */
  caSerial?: string;
  /** Absolute bundle directory it was written to, on the host that ran the command (renew and rotate-ca rewrite it). */
  bundle?: string;
  /** Serial of the certificate that renewed this one: it stays valid until it expires, but is no longer current. */
  renewedBy?: string;
}

export interface CertIndex {
  version: number;
  certificates: IndexEntry[];
}

export interface RevocationEntry {
  serial: string;
  revokedAt: string;
  reason: CrlReason;
}

export interface RevocationList {
  version: number;
  crlNumber: number;
  updatedAt: string;
  revoked: RevocationEntry[];
}

/** untrusted: its CA has left the trust store (rotate-ca finish); peers refuse it like any foreign certificate. */
export type CertStatus = 'valid' | 'expired' | 'revoked' | 'untrusted';

/** trustedCas: serials of the CAs in ca.pem; without it, no entry is judged untrusted. */
export function statusOf(e: IndexEntry, now: Date, trustedCas?: ReadonlySet<string>): CertStatus {
  if (e.revokedAt !== undefined) return 'revoked';
  if (new Date(e.notAfter).getTime() < now.getTime()) return 'expired';
  return e.caSerial !== undefined && trustedCas !== undefined && !trustedCas.has(e.caSerial) ? 'untrusted' : 'valid';
}

/** The certificate a name stands for: valid, and not renewed by another (what renew and revoke --name act on). */
export function currentEntry(entries: readonly IndexEntry[], name: string, now: Date, trustedCas?: ReadonlySet<string>): IndexEntry | undefined {
  const valid = entries.filter((e) => e.name === name && statusOf(e, now, trustedCas) === 'valid');
  return valid.filter((e) => e.renewedBy === undefined).at(-1) ?? valid.at(-1);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isStr = (v: unknown): v is string => typeof v === 'string';
const isDate = (v: unknown): v is string => isStr(v) && !Number.isNaN(Date.parse(v));
const isHex = (v: unknown): v is string => isStr(v) && /^[0-9a-f]+$/.test(v);

function isRotation(v: unknown): v is Rotation {
  return isObj(v) && (v.phase === 'begun' || v.phase === 'switched') && isHex(v.previousCaSerial) && isDate(v.begunAt)
    && (v.switchedAt === undefined || isDate(v.switchedAt));
}

export function readState(dir: string): ClusterState {
  const file = statePath(dir, 'state');
  const v = readJson(file);
  if (!isObj(v) || v.version !== FORMAT_VERSION || !isStr(v.clusterId) || !isStr(v.keyType) || !isKeyType(v.keyType)
    || !isDate(v.createdAt) || !Array.isArray(v.hosts) || !v.hosts.every(isStr)
    || (v.caGeneration !== undefined && !(Number.isSafeInteger(v.caGeneration) && (v.caGeneration as number) >= 1))
    || (v.rotation !== undefined && !isRotation(v.rotation))) {
    throw pkiError('corruptState', { file, reason: 'unexpected shape' });
  }
  return v as unknown as ClusterState;
}

function isIndexEntry(v: unknown): v is IndexEntry {
  return isObj(v) && isHex(v.serial) && isStr(v.role) && (ROLES as readonly string[]).includes(v.role) && isStr(v.name)
    && isStr(v.uri) && isStr(v.keyType) && isDate(v.notBefore) && isDate(v.notAfter) && isDate(v.issuedAt)
    && (v.revokedAt === undefined || isDate(v.revokedAt))
    && (v.revocationReason === undefined || (isStr(v.revocationReason) && isCrlReason(v.revocationReason)))
    && (v.caSerial === undefined || isHex(v.caSerial)) && (v.bundle === undefined || isStr(v.bundle))
    && (v.renewedBy === undefined || isHex(v.renewedBy));
}

export function readIndex(dir: string): CertIndex {
  const file = statePath(dir, 'index');
  const v = readJson(file);
  if (!isObj(v) || v.version !== FORMAT_VERSION || !Array.isArray(v.certificates)) {
    throw pkiError('corruptState', { file, reason: 'unexpected shape' });
  }
  const bad = v.certificates.findIndex((e) => !isIndexEntry(e));
  if (bad >= 0) throw pkiError('corruptState', { file, reason: `entry ${bad} is malformed` });
  return v as unknown as CertIndex;
}

function isRevocationEntry(v: unknown): v is RevocationEntry {
  return isObj(v) && isHex(v.serial) && isDate(v.revokedAt) && isStr(v.reason) && isCrlReason(v.reason);
}

export function readRevocationList(dir: string): RevocationList {
  const file = statePath(dir, 'revoked');
  const v = readJson(file);
  if (!isObj(v) || v.version !== FORMAT_VERSION || typeof v.crlNumber !== 'number' || !Number.isSafeInteger(v.crlNumber)
    || !isDate(v.updatedAt) || !Array.isArray(v.revoked)) {
    throw pkiError('corruptState', { file, reason: 'unexpected shape' });
  }
  const bad = v.revoked.findIndex((e) => !isRevocationEntry(e));
  if (bad >= 0) throw pkiError('corruptState', { file, reason: `entry ${bad} is malformed` });
  return v as unknown as RevocationList;
}

export const writeState = (dir: string, s: ClusterState): void => writeJsonAtomic(statePath(dir, 'state'), s);
export const writeIndex = (dir: string, i: CertIndex): void => writeJsonAtomic(statePath(dir, 'index'), i);
export const writeRevocationList = (dir: string, r: RevocationList): void => writeJsonAtomic(statePath(dir, 'revoked'), r);

/** The directory exists, is private, and holds a cluster: its state. */
export function requireInitialized(dir: string): ClusterState {
  assertStateDir(dir);
  if (!existsSync(statePath(dir, 'state'))) throw pkiError('notInitialized', { dir });
  return readState(dir);
}
