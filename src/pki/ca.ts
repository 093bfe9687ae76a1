/**
 * The cluster CA: how its certificate is built (path length 0, so it signs
 * leaves only), how leaves under it are built (exactly one SPIFFE URI SAN,
 * EKU per role, CA:false), and loading it back from the state directory.
 * ca.pem is the trust bundle: one CA, or two during a rotation (the outgoing
 * one's key is then ca-previous-key.pem). A CA is found in the bundle by its
 * key, so no record can point at the wrong certificate.
 */
import { EKU, ekuForRole, formatSpiffe, type Identity } from './identity.js';
import { decryptPrivateKeyPem, keyEncryption, readPrivateFile } from './keystore.js';
import { pkiError } from './errors.js';
import { normalizeSerial } from './peer-certificate.js';
import { readState } from './records.js';
import { statePath, readText, withLock, type StateFile } from './state-dir.js';
import { createCertificate, importPrivateKeyPem, KeyUsage, type KeyPair } from './x509.js';
import { keyMatchesCertificate, parseCertificatePem, splitPemCertificates } from './certificate.js';

const ORGANIZATION = 'dask-scheduler-gateway';

export interface Window {
  notBefore: Date;
  notAfter: Date;
}

/** Generation 1 keeps the historical name; later CAs get distinct subjects so verifiers never confuse two trusted CAs. */
function caCommonName(clusterId: string, generation = 1): string {
  return generation === 1 ? `${clusterId} cluster CA` : `${clusterId} cluster CA ${generation}`;
}

export function buildCaCertificate(keys: KeyPair, clusterId: string, serial: string, window: Window, generation = 1): Promise<string> {
  return createCertificate({
    commonName: caCommonName(clusterId, generation),
    organization: ORGANIZATION,
    serial,
    ...window,
    publicKey: keys.publicKey,
    selfSigningKey: keys.privateKey,
    // pathLen 0: any intermediate this CA signs fails path validation.
    basicConstraints: { ca: true, pathLen: 0 },
    keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.digitalSignature,
  });
}

export interface LoadedCa {
  /** This CA's own certificate. */
  certPem: string;
  keys: KeyPair;
  notAfter: Date;
  serial: string;
}

/** A CA opened from the state directory, with what commands need to rewrite its key file. */
export interface StoredCa extends LoadedCa {
  keyFile: StateFile;
  /** Decrypted PKCS#8 (memory only): re-encrypted by passphrase changes and KDF upgrades. */
  keyPem: string;
  /** The key file uses today's derivation (keystore.ts); false: renew and passphrase rewrite it. */
  keyEncryptionCurrent: boolean;
  /** All of ca.pem: what peers trust and what bundles carry. */
  trustPem: string;
}

/**
 * issuing: signs every new certificate (the new CA from rotate-ca begin on).
 * serving: issued the gateway's certificate and signs the CRL it points at;
 * the outgoing CA from begin until switch, the issuing CA otherwise.
 */
export type CaRole = 'issuing' | 'serving';

export interface LeafSpec {
  identity: Identity;
  /** Subject CN: a label for humans; authorization reads the URI only. */
  commonName: string;
  publicKey: KeyPair['publicKey'];
  serial: string;
  window: Window;
  /** Extra DNS/IP SANs: the gateway's addresses. */
  dns?: string[];
  ip?: string[];
  /** CRL Distribution Point URI (the gateway's own certificate: see gatewayCrlUrl). */
  crlUrl?: string;
}

export function buildLeafCertificate(ca: LoadedCa, spec: LeafSpec): Promise<string> {
  const eku = ekuForRole(spec.identity.role);
  const serverAuth = eku.includes(EKU.serverAuth);
  return createCertificate({
    commonName: spec.commonName,
    organization: ORGANIZATION,
    serial: spec.serial,
    ...spec.window,
    publicKey: spec.publicKey,
    issuer: { certPem: ca.certPem, privateKey: ca.keys.privateKey },
    sans: { uri: [formatSpiffe(spec.identity)], dns: spec.dns ?? [], ip: spec.ip ?? [] },
    eku,
    basicConstraints: { ca: false },
    // RSA server keys may be used for key transport in old TLS; ECDSA only signs.
    keyUsage: KeyUsage.digitalSignature | (serverAuth && spec.publicKey.algorithm.name !== 'ECDSA' ? KeyUsage.keyEncipherment : 0),
    ...(spec.crlUrl !== undefined ? { crlUrls: [spec.crlUrl] } : {}),
  });
}

/** Reads the bundle and the key under the lock (a rotation changes both at once), then decrypts off the lock. */
export async function loadCa(dir: string, passphrase: string, role: CaRole = 'issuing'): Promise<StoredCa> {
  const certFile = statePath(dir, 'caCert');
  const { trustPem, keyFile, keyText } = await withLock(dir, () => {
    const keyFile: StateFile = role === 'serving' && readState(dir).rotation?.phase === 'begun' ? 'caPreviousKey' : 'caKey';
    return { trustPem: readText(certFile), keyFile, keyText: readPrivateFile(statePath(dir, keyFile)) };
  });
  const certs = splitPemCertificates(trustPem);
  if (certs.length === 0) throw pkiError('corruptPem', { file: certFile, what: 'certificate' });
  const keyPath = statePath(dir, keyFile);
  const keyPem = await decryptPrivateKeyPem(keyText, passphrase, keyPath);
  const certPem = certs.find((c) => matches(keyPem, c, certFile));
  if (certPem === undefined) throw pkiError('keyMismatch', { keyFile: keyPath, certFile });
  const cert = parseCertificatePem(certPem);
  return {
    certPem, keys: await importPrivateKeyPem(keyPem), notAfter: new Date(cert.validTo), serial: normalizeSerial(cert.serialNumber),
    keyFile, keyPem, keyEncryptionCurrent: keyEncryption(keyText, keyPath).current, trustPem,
  };
}

function matches(keyPem: string, certPem: string, certFile: string): boolean {
  try {
    return keyMatchesCertificate(keyPem, certPem);
  } catch {
    throw pkiError('corruptPem', { file: certFile, what: 'certificate' });
  }
}

/** Serials (normalized) of the CAs in a trust bundle. */
export function caSerials(trustPem: string): Set<string> {
  return new Set(splitPemCertificates(trustPem).map((c) => normalizeSerial(parseCertificatePem(c).serialNumber)));
}
