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

export type CertStatus = 'valid' | 'expired' | 'revoked';

export function statusOf(e: IndexEntry, now: Date): CertStatus {
  if (e.revokedAt !== undefined) return 'revoked';
  return new Date(e.notAfter).getTime() < now.getTime() ? 'expired' : 'valid';
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isStr = (v: unknown): v is string => typeof v === 'string';
const isDate = (v: unknown): v is string => isStr(v) && !Number.isNaN(Date.parse(v));
const isHex = (v: unknown): v is string => isStr(v) && /^[0-9a-f]+$/.test(v);

export function readState(dir: string): ClusterState {
  const file = statePath(dir, 'state');
  const v = readJson(file);
  if (!isObj(v) || v.version !== FORMAT_VERSION || !isStr(v.clusterId) || !isStr(v.keyType) || !isKeyType(v.keyType)
    || !isDate(v.createdAt) || !Array.isArray(v.hosts) || !v.hosts.every(isStr)) {
    throw pkiError('corruptState', { file, reason: 'unexpected shape' });
  }
  return v as unknown as ClusterState;
}

function isIndexEntry(v: unknown): v is IndexEntry {
  return isObj(v) && isHex(v.serial) && isStr(v.role) && (ROLES as readonly string[]).includes(v.role) && isStr(v.name)
    && isStr(v.uri) && isStr(v.keyType) && isDate(v.notBefore) && isDate(v.notAfter) && isDate(v.issuedAt)
    && (v.revokedAt === undefined || isDate(v.revokedAt))
    && (v.revocationReason === undefined || (isStr(v.revocationReason) && isCrlReason(v.revocationReason)));
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
