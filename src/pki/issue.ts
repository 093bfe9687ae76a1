/**
 * `certs issue`: a leaf for one identity, recorded in index.json under the
 * lock. The serial is random (x509.ts randomSerial) and checked against the
 * index inside the lock, so concurrent issuers never share one; names are
 * unique among valid certificates so `revoke --name` means one thing.
 */
import { formatSpiffe, isValidName, NAMED_ROLES, type Role } from './identity.js';
import { pkiError } from './errors.js';
import { buildLeafCertificate, loadCa } from './ca.js';
import { refreshCrl } from './revocation.js';
import { readIndex, requireInitialized, statusOf, writeIndex, type IndexEntry } from './records.js';
import { withLock } from './state-dir.js';
import { daysLeft, DEFAULT_LEAF_DAYS, validityWindow } from './validity.js';
import { generateKeyPair, privateKeyToPem, randomSerial } from './x509.js';
import { normalizeSerial } from './peer-certificate.js';

/** Roles `certs issue` hands out; the gateway's certificate comes from init only. */
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
  const days = opts.days ?? DEFAULT_LEAF_DAYS;
  const state = requireInitialized(dir);
  const ca = await loadCa(dir, opts.passphrase);
  const left = daysLeft(now, ca.notAfter);
  if (days > left) throw pkiError('invalidDays', { days, reason: `the CA expires in ${left} days` });
  const identity = role === 'scheduler' ? { cluster: state.clusterId, role } : { cluster: state.clusterId, role, name };
  const uri = formatSpiffe(identity);
  const keys = await generateKeyPair(state.keyType);
  const window = validityWindow(now, days);

  const issued = await withLock(dir, async () => {
    const index = readIndex(dir);
    const clash = index.certificates.find((e) => e.name === name && statusOf(e, now) === 'valid');
    if (clash) throw pkiError('duplicateName', { name, serial: clash.serial });
    let serial = randomSerial();
    while (index.certificates.some((e) => e.serial === normalizeSerial(serial))) serial = randomSerial();
    const certPem = await buildLeafCertificate(ca, {
      identity, commonName: role === 'scheduler' ? `${state.clusterId} scheduler ${name}` : name,
      publicKey: keys.publicKey, serial, window,
    });
    const entry: IndexEntry = {
      serial: normalizeSerial(serial), role, name, uri, keyType: state.keyType,
      notBefore: window.notBefore.toISOString(), notAfter: window.notAfter.toISOString(), issuedAt: now.toISOString(),
    };
    writeIndex(dir, { ...index, certificates: [...index.certificates, entry] });
    return {
      serial: entry.serial, role, name, uri, clusterId: state.clusterId, certPem,
      keyPem: await privateKeyToPem(keys.privateKey), caPem: ca.certPem,
      notBefore: window.notBefore, notAfter: window.notAfter, gatewayHost: state.hosts[0],
    };
  });
  // Between revocations nothing else would re-sign the CRL before it lapses.
  await refreshCrl(dir, opts.passphrase, { now, ca });
  return issued;
}
