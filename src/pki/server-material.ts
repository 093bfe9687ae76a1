/**
 * What the running gateway needs from the PKI, loaded and checked in one
 * call: the CA bundle, its own certificate and decrypted key (memory only),
 * the revoked serials, and the files to watch for hot reload. Two sources:
 * the managed state directory, or plain PEM files from an enterprise CA
 * (bring-your-own PKI). Every check happens here, at load, so a bad reload
 * fails before anything is swapped (ghostunnel's certloader rule).
 */
import { existsSync } from 'node:fs';
import { isValidClusterId } from './identity.js';
import { isGatewayError } from '../errors/base.js';
import { pkiError } from './errors.js';
import { loadPlainKey, decryptPrivateKeyPem, readPrivateFile, ENCRYPTED_KEY_BEGIN } from './keystore.js';
import { normalizeSerial } from './peer-certificate.js';
import { requireInitialized } from './records.js';
import { readRevokedSerials } from './revocation.js';
import { readText, statePath, withLock } from './state-dir.js';
import { parseCrl, crlSignedBy } from './x509.js';
import { keyMatchesCertificate, parseCertificatePem, splitPemCertificates } from './certificate.js';

export interface ServerMaterial {
  clusterId: string;
  /** One or more CA certificates (PEM) that peers must chain to. */
  caPem: string;
  /** The gateway's certificate, followed by any intermediates. */
  certPem: string;
  /** Unencrypted PKCS#8 PEM. Never write it anywhere. */
  keyPem: string;
  /** normalizeSerial form. */
  revokedSerials: Set<string>;
  /** Files whose change should trigger a reload. */
  watchPaths: string[];
  /** The gateway certificate's serial and expiry, for logs and metrics. */
  serial: string;
  notAfter: Date;
  /** The key file as read (encrypted in a state directory), to tell next time whether it changed. */
  keyText?: string;
  /** Why the key file was not used and the key already in memory was kept (see loadServerMaterial). */
  keyKept?: string;
}

/** A passphrase, or how to get it when it is needed (re-read each time, so a changed passphrase file is honoured). */
export type PassphraseInput = string | (() => string);

/**
 * Reads the files under the lock (a renewal or rotation replaces the
 * certificate and its key in one commit), then decrypts the key, unless it
 * is the file `previous` was loaded from: a reload for a revocation then
 * costs no key derivation. When the certificate is unchanged but its key
 * file no longer opens with the passphrase (certs passphrase re-encrypted it
 * and the gateway's passphrase source is not updated yet), the key in memory
 * is kept, so revocations keep applying; keyKept says so. Any other problem
 * with the key file fails the load.
 */
export async function loadServerMaterial(dir: string, passphrase: PassphraseInput, previous?: Pick<ServerMaterial, 'certPem' | 'keyPem' | 'keyText'>): Promise<ServerMaterial> {
  const state = requireInitialized(dir);
  const caFile = statePath(dir, 'caCert');
  const certFile = statePath(dir, 'gatewayCert');
  const keyFile = statePath(dir, 'gatewayKey');
  const { caPem, certPem, keyText, revokedSerials } = await withLock(dir, () => ({
    caPem: readCertificates(caFile), certPem: readCertificates(certFile), keyText: readPrivateFile(keyFile), revokedSerials: readRevokedSerials(dir),
  }));
  const sameCert = previous !== undefined && previous.certPem === certPem;
  let keyPem: string;
  let keyKept: string | undefined;
  if (sameCert && previous.keyText === keyText) {
    keyPem = previous.keyPem;
  } else {
    try {
      keyPem = await decryptPrivateKeyPem(keyText, typeof passphrase === 'string' ? passphrase : passphrase(), keyFile);
    } catch (e) {
      if (!sameCert || !isGatewayError(e) || e.code !== 'GW_PKI_WRONG_PASSPHRASE') throw e;
      keyPem = previous.keyPem;
      keyKept = e.message;
    }
  }
  const leaf = checkPair(certPem, certFile, keyPem, keyFile);
  return {
    clusterId: state.clusterId,
    caPem,
    certPem,
    keyPem,
    revokedSerials,
    watchPaths: [statePath(dir, 'state'), caFile, certFile, keyFile, statePath(dir, 'revoked'), statePath(dir, 'crl')],
    serial: normalizeSerial(leaf.serialNumber),
    notAfter: new Date(leaf.validTo),
    keyText,
    ...(keyKept ? { keyKept } : {}),
  };
}

export interface PemMaterialOptions {
  caPath: string;
  certPath: string;
  keyPath: string;
  /** An X.509 CRL signed by one of the CAs in caPath; its serials become revokedSerials. */
  crlPath?: string;
  clusterId: string;
  /** Only if the key file is encrypted PKCS#8. */
  passphrase?: string;
}

export async function loadPemMaterial(opts: PemMaterialOptions): Promise<ServerMaterial> {
  if (!isValidClusterId(opts.clusterId)) throw pkiError('invalidClusterId', { cluster: opts.clusterId });
  const caPem = readCertificates(opts.caPath);
  const certPem = readCertificates(opts.certPath);
  const keyPem = await readKey(opts.keyPath, opts.passphrase);
  const leaf = checkPair(certPem, opts.certPath, keyPem, opts.keyPath);
  const revokedSerials = opts.crlPath !== undefined ? await readCrlSerials(opts.crlPath, caPem) : new Set<string>();
  return {
    clusterId: opts.clusterId,
    caPem,
    certPem,
    keyPem,
    revokedSerials,
    watchPaths: [opts.caPath, opts.certPath, opts.keyPath, ...(opts.crlPath !== undefined ? [opts.crlPath] : [])],
    serial: normalizeSerial(leaf.serialNumber),
    notAfter: new Date(leaf.validTo),
  };
}

async function readKey(file: string, passphrase: string | undefined): Promise<string> {
  if (!existsSync(file)) throw pkiError('unreadable', { file, reason: 'ENOENT' });
  const text = readPrivateFile(file);
  if (text.includes(ENCRYPTED_KEY_BEGIN)) {
    if (passphrase === undefined) throw pkiError('noPassphrase');
    return decryptPrivateKeyPem(text, passphrase, file);
  }
  return loadPlainKey(file);
}

/** Reads a PEM file that must hold at least one certificate, every one of which parses. */
function readCertificates(file: string): string {
  const text = readText(file);
  const blocks = splitPemCertificates(text);
  if (blocks.length === 0) throw pkiError('corruptPem', { file, what: 'certificate' });
  for (const b of blocks) {
    try {
      // A certificate whose public key does not decode is as corrupt as one that does not parse.
      void parseCertificatePem(b).publicKey;
    } catch {
      throw pkiError('corruptPem', { file, what: 'certificate' });
    }
  }
  return blocks.join('');
}

function checkPair(certPem: string, certFile: string, keyPem: string, keyFile: string) {
  const leafPem = splitPemCertificates(certPem)[0]!;
  if (!keyMatchesCertificate(keyPem, leafPem)) throw pkiError('keyMismatch', { keyFile, certFile });
  const leaf = parseCertificatePem(leafPem);
  if (leaf.ca) throw pkiError('certificateInvalid', { file: certFile, reason: 'the server certificate is a CA certificate' });
  return leaf;
}

/** Serials listed in a CRL that one of the given CAs signed; anything else is refused. */
export async function readCrlSerials(crlPath: string, caPem: string): Promise<Set<string>> {
  const text = readText(crlPath);
  let parsed;
  try {
    parsed = parseCrl(text);
  } catch {
    throw pkiError('corruptPem', { file: crlPath, what: 'CRL' });
  }
  for (const ca of splitPemCertificates(caPem)) {
    if (await crlSignedBy(text, ca)) return new Set(parsed.serials.map(normalizeSerial));
  }
  throw pkiError('certificateInvalid', { file: crlPath, reason: 'CRL is not signed by any CA in the CA file' });
}
