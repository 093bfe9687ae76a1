/**
 * `certs renew`: a new key and certificate, with a new serial, for the
 * identity a name stands for (role, name, cluster). A leaf comes from the
 * issuing CA (the new one during a rotation); the caller writes its bundle as
 * issue does. The gateway's certificate keeps the CA that serves it
 * (rotate-ca switch is what moves it), its names and its CRL Distribution
 * Point, and replaces gateway.pem and gateway-key.pem in one commit, which a
 * running gateway reloads without dropping a connection. The previous
 * certificate stays valid until it expires unless revokePrevious (reason
 * superseded). CA keys opened on the way that still use an old key
 * derivation are rewritten in the same commit.
 */
import { pkiError } from './errors.js';
import { caSerials, loadCa, type StoredCa } from './ca.js';
import { issuedFrom, leafDays, signEntry, type IssuedCertificate } from './issue.js';
import { encryptPrivateKeyPem } from './keystore.js';
import { currentEntry, readIndex, readRevocationList, requireInitialized, type IndexEntry } from './records.js';
import { revocationFiles, withRevocation } from './revocation.js';
import { commitFiles, jsonText, readText, statePath, withLock, type FileChange } from './state-dir.js';
import { validityWindow } from './validity.js';
import { generateKeyPair, privateKeyToPem, serverNames } from './x509.js';

export interface RenewOptions {
  dir: string;
  passphrase: string;
  name: string;
  days?: number;
  revokePrevious?: boolean;
  /** Leaves: the absolute bundle directory to record (default: the previous certificate's). */
  bundle?: string;
  now?: Date;
}

export interface RenewResult {
  previous: IndexEntry;
  entry: IndexEntry;
  /** The new certificate, its key and the trust bundle; for the gateway they are already in the state directory. */
  issued: IssuedCertificate;
  /** CRL number of the revocation of the previous certificate, when revokePrevious. */
  crlNumber?: number;
  /** Key files rewritten with today's key derivation. */
  rewrittenKeys: string[];
}

/** The certificate renew acts on: the current, valid certificate of that name. */
export function renewable(dir: string, name: string, now = new Date()): IndexEntry {
  const e = currentEntry(readIndex(dir).certificates, name, now, caSerials(readText(statePath(dir, 'caCert'))));
  if (!e) throw pkiError('unknownName', { name, dir });
  return e;
}

export async function renewCertificate(o: RenewOptions): Promise<RenewResult> {
  const { dir, name } = o;
  const now = o.now ?? new Date();
  const state = requireInitialized(dir);
  const before = renewable(dir, name, now);
  const isGateway = before.role === 'gateway';
  const signer = await loadCa(dir, o.passphrase, isGateway ? 'serving' : 'issuing');
  // Outside a rotation one CA both issues and serves: open its key once.
  const crlSigner = !o.revokePrevious ? undefined : isGateway || !state.rotation ? signer : await loadCa(dir, o.passphrase, 'serving');
  const window = validityWindow(now, leafDays(o.days, signer, now));
  const keys = await generateKeyPair(state.keyType);
  const keyPem = await privateKeyToPem(keys.privateKey);
  // Key derivation is slow: done before the lock.
  const gatewayKey = isGateway ? encryptPrivateKeyPem(keyPem, o.passphrase) : undefined;
  const upgrades = keyUpgrades([signer, ...(crlSigner && crlSigner !== signer ? [crlSigner] : [])], o.passphrase);

  return withLock(dir, async () => {
    const index = readIndex(dir);
    if (readText(statePath(dir, 'caCert')) !== signer.trustPem) throw pkiError('concurrentChange', { dir });
    const previous = currentEntry(index.certificates, name, now, caSerials(signer.trustPem));
    if (previous?.serial !== before.serial) throw pkiError('concurrentChange', { dir });
    const names = isGateway ? serverNames(readText(statePath(dir, 'gatewayCert'))) : undefined;
    const bundle = o.bundle ?? previous.bundle;
    const { entry, certPem } = await signEntry({
      ca: signer, state, index, role: previous.role, name, keys, window, now, ...(bundle && !isGateway ? { bundle } : {}),
      ...(names ? { dns: names.dns, ip: names.ip, ...(names.crlUrls[0] ? { crlUrl: names.crlUrls[0] } : {}) } : {}),
    });
    previous.renewedBy = entry.serial;
    index.certificates.push(entry);
    const files: FileChange[] = isGateway
      ? [{ file: 'gatewayCert', data: certPem, mode: 0o644 }, { file: 'gatewayKey', data: gatewayKey! }]
      : [];
    let crlNumber: number | undefined;
    if (crlSigner && previous.revokedAt === undefined) {
      const list = withRevocation(readRevocationList(dir), previous, 'superseded', now);
      files.push(...(await revocationFiles(crlSigner, list, index, now)));
      crlNumber = list.crlNumber;
    } else {
      files.push({ file: 'index', data: jsonText(index) });
    }
    files.push(...upgrades);
    commitFiles(dir, files);
    return {
      previous, entry, issued: issuedFrom(entry, certPem, keyPem, signer.trustPem, state),
      ...(crlNumber !== undefined ? { crlNumber } : {}),
      rewrittenKeys: upgrades.map((u) => statePath(dir, u.file)),
    };
  });
}

/** Re-encryptions, under the same passphrase, of the CA keys still on an old key derivation. */
function keyUpgrades(cas: readonly StoredCa[], passphrase: string): FileChange[] {
  return cas.filter((ca) => !ca.keyEncryptionCurrent).map((ca) => ({ file: ca.keyFile, data: encryptPrivateKeyPem(ca.keyPem, passphrase) }));
}
