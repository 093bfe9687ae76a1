/**
 * `certs init`: a new cluster CA and the gateway's server certificate in a
 * fresh state directory. Everything slow (key generation, signing) happens
 * before anything is written; if a write fails, what was written is removed,
 * so a failed init leaves the directory as it found it.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { isValidClusterId } from './identity.js';
import { pkiError } from './errors.js';
import { buildCaCertificate, type LoadedCa } from './ca.js';
import { signEntry } from './issue.js';
import { encryptPrivateKeyPem } from './keystore.js';
import { assertStrongEnough } from './passphrase.js';
import { FORMAT_VERSION, writeIndex, writeRevocationList, writeState, type ClusterState } from './records.js';
import { emptyRevocationList, signCrl } from './revocation.js';
import { ensurePrivateDir, statePath, withLock, writeFileAtomic, type StateFile } from './state-dir.js';
import { classifyHosts, DEFAULT_CA_DAYS, DEFAULT_HOSTS, DEFAULT_LEAF_DAYS, gatewayCrlUrl, validityWindow } from './validity.js';
import { generateKeyPair, privateKeyToPem, randomSerial, type KeyType } from './x509.js';
import { normalizeSerial } from './peer-certificate.js';

export interface InitOptions {
  dir: string;
  clusterId: string;
  passphrase: string;
  /**
   * DNS names / IPs for the gateway certificate; default localhost, 127.0.0.1, ::1.
   * The first one also names the certificate's CRL Distribution Point
   * (https://<first>:8787/gateway/crl.pem).
   */
  hosts?: readonly string[];
  /** CA validity; the gateway certificate gets min(days, 365). */
  days?: number;
  keyType?: KeyType;
  /** Embedded development default only: keep the passphrase in .dev-passphrase. */
  devPassphrase?: boolean;
  now?: Date;
}

export interface InitResult {
  clusterId: string;
  caPem: string;
  gatewayCertPem: string;
  gatewaySerial: string;
}

export async function initCluster(opts: InitOptions): Promise<InitResult> {
  const { dir, clusterId } = opts;
  if (!isValidClusterId(clusterId)) throw pkiError('invalidClusterId', { cluster: clusterId });
  assertStrongEnough(opts.passphrase);
  const hosts = opts.hosts && opts.hosts.length > 0 ? [...opts.hosts] : DEFAULT_HOSTS;
  const { dns, ip } = classifyHosts(hosts);
  const keyType = opts.keyType ?? 'ec-p256';
  const now = opts.now ?? new Date();
  const caDays = opts.days ?? DEFAULT_CA_DAYS;
  refuseIfInitialized(dir);

  const caKeys = await generateKeyPair(keyType);
  const caSerial = randomSerial();
  const caPem = await buildCaCertificate(caKeys, clusterId, caSerial, validityWindow(now, caDays));
  const ca: LoadedCa = { certPem: caPem, keys: caKeys, notAfter: validityWindow(now, caDays).notAfter, serial: normalizeSerial(caSerial) };
  const state: ClusterState = {
    version: FORMAT_VERSION, clusterId, keyType, createdAt: now.toISOString(), hosts: [...dns, ...ip],
    ...(opts.devPassphrase ? { devPassphrase: true } : {}),
  };
  const gwKeys = await generateKeyPair(keyType);
  const { entry: gatewayEntry, certPem: gatewayCertPem } = await signEntry({
    ca, state, index: { version: FORMAT_VERSION, certificates: [] }, role: 'gateway', name: 'gateway', keys: gwKeys,
    window: validityWindow(now, Math.min(caDays, DEFAULT_LEAF_DAYS)), now, dns, ip,
    // testssl rates a server certificate without CRL or OCSP URI HIGH; the dashboard port serves this CRL without login.
    crlUrl: gatewayCrlUrl(hosts),
  });
  const revoked = emptyRevocationList(now);
  const crl = await signCrl(ca, revoked, now);
  const caKeyEnc = encryptPrivateKeyPem(await privateKeyToPem(caKeys.privateKey), opts.passphrase);
  const gwKeyEnc = encryptPrivateKeyPem(await privateKeyToPem(gwKeys.privateKey), opts.passphrase);

  const dirExisted = existsSync(dir);
  try {
    ensurePrivateDir(dir);
  } catch (e) {
    throw pkiError('badDir', { dir, reason: (e as NodeJS.ErrnoException).code ?? String(e) });
  }
  const written: StateFile[] = [];
  const put = (f: StateFile, write: () => void): void => {
    written.push(f);
    write();
  };
  try {
    await withLock(dir, () => {
      refuseIfInitialized(dir); // someone may have won the race while we generated keys
      put('caKey', () => writeFileAtomic(statePath(dir, 'caKey'), caKeyEnc, 0o600));
      put('caCert', () => writeFileAtomic(statePath(dir, 'caCert'), caPem, 0o644));
      put('gatewayKey', () => writeFileAtomic(statePath(dir, 'gatewayKey'), gwKeyEnc, 0o600));
      put('gatewayCert', () => writeFileAtomic(statePath(dir, 'gatewayCert'), gatewayCertPem, 0o644));
      put('index', () => writeIndex(dir, { version: FORMAT_VERSION, certificates: [gatewayEntry] }));
      put('revoked', () => writeRevocationList(dir, revoked));
      put('crl', () => writeFileAtomic(statePath(dir, 'crl'), crl, 0o644));
      if (opts.devPassphrase) put('devPassphrase', () => writeFileAtomic(statePath(dir, 'devPassphrase'), opts.passphrase + '\n', 0o600));
      // state.json last: its presence is what "initialized" means.
      put('state', () => writeState(dir, state));
    });
  } catch (e) {
    rollback(dir, written, dirExisted);
    throw e;
  }
  return { clusterId, caPem, gatewayCertPem, gatewaySerial: gatewayEntry.serial };
}

function refuseIfInitialized(dir: string): void {
  if (existsSync(statePath(dir, 'state'))) {
    let cluster = 'unknown';
    try {
      cluster = (JSON.parse(readFileSync(statePath(dir, 'state'), 'utf8')) as { clusterId?: string }).clusterId ?? cluster;
    } catch { /* corrupt state is still state */ }
    throw pkiError('alreadyInitialized', { dir, cluster });
  }
  // A CA key without state.json is a half-finished init or someone's files: never overwrite a key.
  if (existsSync(statePath(dir, 'caKey'))) throw pkiError('alreadyInitialized', { dir, cluster: 'unknown (ca-key.pem exists)' });
}

function rollback(dir: string, written: StateFile[], dirExisted: boolean): void {
  for (const f of written) {
    try { unlinkSync(statePath(dir, f)); } catch { /* not written */ }
  }
  if (!dirExisted) {
    try {
      if (readdirSync(dir).length === 0) rmdirSync(dir);
    } catch { /* leave it */ }
  }
}
