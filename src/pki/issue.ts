/**
 * `certs issue`: a leaf for one identity, recorded in index.json under the
 * lock. The serial is random (x509.ts randomSerial) and checked against the
 * index inside the lock, so concurrent issuers never share one; names are
 * unique among valid certificates so `revoke --name` means one thing.
 * signEntry is the one way a leaf is signed and recorded: issue, renew and
 * the CA rotation all go through it.
 */
import { formatSpiffe, isValidName, NAMED_ROLES, roleTakesName, type Role } from './identity.js';
import { pkiError } from './errors.js';
import { buildLeafCertificate, caSerials, loadCa, type LoadedCa } from './ca.js';
import { refreshCrl } from './revocation.js';
import { readIndex, requireInitialized, statusOf, writeIndex, type CertIndex, type ClusterState, type IndexEntry } from './records.js';
import { withLock } from './state-dir.js';
import { daysLeft, DEFAULT_LEAF_DAYS, validityWindow } from './validity.js';
import { generateKeyPair, privateKeyToPem, randomSerial, type KeyPair } from './x509.js';
import { normalizeSerial } from './peer-certificate.js';

/** Roles `certs issue` hands out; the gateway's certificate comes from init, renew and rotate-ca only. */
export const ISSUABLE_ROLES = [...NAMED_ROLES, 'scheduler'] as const;
export type IssuableRole = (typeof ISSUABLE_ROLES)[number];

export function parseIssuableRole(s: string): IssuableRole {
  if (!(ISSUABLE_ROLES as readonly string[]).includes(s)) throw pkiError('unknownRole', { role: s, allowed: ISSUABLE_ROLES.join(', ') });
  return s as IssuableRole;
}

export interface IssueOptions {
  dir: string;
  passphrase: string;
  role: IssuableRole | string;
  name: string;
  days?: number;
  /** Absolute bundle directory, recorded so renew and rotate-ca can rewrite it. */
  bundle?: string;
  now?: Date;
}

export interface IssuedCertificate {
  serial: string;
  role: Role;
  name: string;
  uri: string;
  clusterId: string;
  certPem: string;
  /** Unencrypted PKCS#8: the caller writes it 0600 or keeps it in memory. */
  keyPem: string;
  /** The trust bundle (ca.pem): one CA, or both during a rotation. */
  caPem: string;
  notBefore: Date;
  notAfter: Date;
  /** The gateway's first DNS name or IP, for the address in generated Dask config. */
  gatewayHost: string | undefined;
}

export async function issueCertificate(opts: IssueOptions): Promise<IssuedCertificate> {
  const { dir, name } = opts;
  const role = parseIssuableRole(opts.role);
  if (!isValidName(name)) throw pkiError('invalidName', { name });
  const now = opts.now ?? new Date();
  const state = requireInitialized(dir);
  const ca = await loadCa(dir, opts.passphrase);
  const days = leafDays(opts.days, ca, now);
  const keys = await generateKeyPair(state.keyType);

  const issued = await withLock(dir, async () => {
    const index = readIndex(dir);
    const trusted = caSerials(ca.trustPem);
    const clash = index.certificates.find((e) => e.name === name && statusOf(e, now, trusted) === 'valid');
    if (clash) throw pkiError('duplicateName', { name, serial: clash.serial });
    const { entry, certPem } = await signEntry({ ca, state, index, role, name, keys, window: validityWindow(now, days), now, ...(opts.bundle ? { bundle: opts.bundle } : {}) });
    writeIndex(dir, { ...index, certificates: [...index.certificates, entry] });
    return issuedFrom(entry, certPem, await privateKeyToPem(keys.privateKey), ca.trustPem, state);
  });
  // Between revocations nothing else would re-sign the CRL before it lapses.
  await refreshCrl(dir, opts.passphrase, { now });
  return issued;
}

/** --days, or the default capped at the CA's remaining life; more than the CA has left is an error. */
export function leafDays(requested: number | undefined, ca: LoadedCa, now: Date): number {
  const left = daysLeft(now, ca.notAfter);
  if (requested === undefined) return Math.max(1, Math.min(DEFAULT_LEAF_DAYS, left));
  if (requested > left) throw pkiError('invalidDays', { days: requested, reason: `the CA expires in ${left} days` });
  return requested;
}

export interface SignSpec {
  ca: LoadedCa;
  state: ClusterState;
  /** The index as just read under the lock: the new serial must not be in it. */
  index: CertIndex;
  role: Role;
  /** Index name ('gateway' for the gateway). */
  name: string;
  keys: KeyPair;
  window: { notBefore: Date; notAfter: Date };
  now: Date;
  bundle?: string;
  /** The gateway's names and CRL Distribution Point. */
  dns?: string[];
  ip?: string[];
  crlUrl?: string;
}

/** Signs a leaf and builds its index entry; the caller writes the index (inside the lock). */
export async function signEntry(s: SignSpec): Promise<{ entry: IndexEntry; certPem: string }> {
  const cluster = s.state.clusterId;
  const identity = roleTakesName(s.role) ? { cluster, role: s.role, name: s.name } : { cluster, role: s.role };
  let serial = randomSerial();
  while (s.index.certificates.some((e) => e.serial === normalizeSerial(serial))) serial = randomSerial();
  const certPem = await buildLeafCertificate(s.ca, {
    identity, commonName: commonNameFor(s.role, cluster, s.name), publicKey: s.keys.publicKey, serial, window: s.window,
    ...(s.dns ? { dns: s.dns } : {}), ...(s.ip ? { ip: s.ip } : {}), ...(s.crlUrl ? { crlUrl: s.crlUrl } : {}),
  });
  const entry: IndexEntry = {
    serial: normalizeSerial(serial), role: s.role, name: s.name, uri: formatSpiffe(identity), keyType: s.state.keyType,
    notBefore: s.window.notBefore.toISOString(), notAfter: s.window.notAfter.toISOString(), issuedAt: s.now.toISOString(),
    caSerial: s.ca.serial, ...(s.bundle ? { bundle: s.bundle } : {}),
  };
  return { entry, certPem };
}

function commonNameFor(role: Role, cluster: string, name: string): string {
  if (role === 'gateway') return `${cluster} gateway`;
  return role === 'scheduler' ? `${cluster} scheduler ${name}` : name;
}

export function issuedFrom(entry: IndexEntry, certPem: string, keyPem: string, trustPem: string, state: ClusterState): IssuedCertificate {
  return {
    serial: entry.serial, role: entry.role, name: entry.name, uri: entry.uri, clusterId: state.clusterId, certPem, keyPem, caPem: trustPem,
    notBefore: new Date(entry.notBefore), notAfter: new Date(entry.notAfter), gatewayHost: state.hosts[0],
  };
}
