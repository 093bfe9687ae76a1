/**
 * The cluster CA: how its certificate is built (path length 0, so it signs
 * leaves only), how leaves under it are built (exactly one SPIFFE URI SAN,
 * EKU per role, CA:false), and loading it back from the state directory.
 */
import { EKU, ekuForRole, formatSpiffe, type Identity } from './identity.js';
import { loadEncryptedKey } from './keystore.js';
import { pkiError } from './errors.js';
import { statePath, readText } from './state-dir.js';
import { createCertificate, importPrivateKeyPem, keyMatchesCertificate, KeyUsage, parseCertificatePem, type KeyPair } from './x509.js';

const ORGANIZATION = 'dask-scheduler-gateway';

export interface Window {
  notBefore: Date;
  notAfter: Date;
}

export function buildCaCertificate(keys: KeyPair, clusterId: string, serial: string, window: Window): Promise<string> {
  return createCertificate({
    commonName: `${clusterId} cluster CA`,
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
  certPem: string;
  keys: KeyPair;
  notAfter: Date;
}

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

/** Reads ca.pem and decrypts ca-key.pem; checks that they belong together. */
export async function loadCa(dir: string, passphrase: string): Promise<LoadedCa> {
  const certFile = statePath(dir, 'caCert');
  const keyFile = statePath(dir, 'caKey');
  const certPem = readText(certFile);
  let notAfter: Date;
  try {
    notAfter = new Date(parseCertificatePem(certPem).validTo);
  } catch {
    throw pkiError('corruptPem', { file: certFile, what: 'certificate' });
  }
  const keyPem = await loadEncryptedKey(keyFile, passphrase);
  const keys = await importPrivateKeyPem(keyPem);
  if (!keyMatchesCertificate(keyPem, certPem)) throw pkiError('keyMismatch', { keyFile, certFile });
  return { certPem, keys, notAfter };
}
