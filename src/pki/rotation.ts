/**
 * `certs rotate-ca begin|switch|finish`: the cluster CA replaced with an
 * overlap, so nobody is cut off.
 *   begin   a new CA (the next generation) joins ca.pem and issues from now
 *           on (ca-key.pem); the old key moves to ca-previous-key.pem and
 *           still serves: the gateway keeps its old-CA certificate and CRL.
 *   switch  the gateway gets a certificate from the new CA, which also signs
 *           the CRL from now on.
 *   finish  the old CA leaves ca.pem and its key is deleted: certificates it
 *           issued are refused, and a running gateway closes the sessions
 *           that used one.
 * Each step is one commit (state-dir.ts), so a crash leaves the step done or
 * not begun; running a completed begin or switch again reports it done.
 */
import { pkiError } from './errors.js';
import { buildCaCertificate, loadCa, type StoredCa } from './ca.js';
import { leafDays, signEntry } from './issue.js';
import { encryptPrivateKeyPem } from './keystore.js';
import { normalizeSerial } from './peer-certificate.js';
import { currentEntry, readIndex, readRevocationList, readState, requireInitialized, statusOf,
  type ClusterState, type IndexEntry } from './records.js';
import { signCrl } from './revocation.js';
import { commitFiles, jsonText, readText, statePath, withLock } from './state-dir.js';
import { DEFAULT_CA_DAYS, validityWindow } from './validity.js';
import { generateKeyPair, privateKeyToPem, randomSerial, serverNames } from './x509.js';
import { parseCertificatePem, splitPemCertificates } from './certificate.js';

export interface StepOptions {
  dir: string;
  passphrase: string;
  /** begin: the new CA's validity; switch: the gateway certificate's. */
  days?: number;
  now?: Date;
}

export interface CaSummary {
  serial: string;
  notAfter: string;
}

export interface StepResult {
  /** The step had already been completed: nothing changed. */
  alreadyDone: boolean;
  previousCa: CaSummary;
  nextCa: CaSummary;
  /** ca.pem after the step: what bundles carry. */
  trustPem: string;
}

export async function beginRotation(o: StepOptions): Promise<StepResult> {
  const { dir } = o;
  const now = o.now ?? new Date();
  const state = requireInitialized(dir);
  if (state.rotation?.phase === 'begun') return { alreadyDone: true, ...(await describe(dir, o.passphrase)) };
  if (state.rotation) throw pkiError('rotationPhase', { dir, phase: state.rotation.phase, next: 'run certs rotate-ca finish before beginning another' });
  const current = await loadCa(dir, o.passphrase);
  const generation = (state.caGeneration ?? 1) + 1;
  const keys = await generateKeyPair(state.keyType);
  const window = validityWindow(now, o.days ?? DEFAULT_CA_DAYS);
  const serial = randomSerial();
  const nextPem = await buildCaCertificate(keys, state.clusterId, serial, window, generation);
  // Slow derivations before the lock.
  const nextKey = encryptPrivateKeyPem(await privateKeyToPem(keys.privateKey), o.passphrase);
  const previousKey = encryptPrivateKeyPem(current.keyPem, o.passphrase);

  return withLock(dir, async () => {
    const trustPem = readText(statePath(dir, 'caCert'));
    if (readState(dir).rotation || trustPem !== current.trustPem) throw pkiError('concurrentChange', { dir });
    const index = readIndex(dir);
    // Entries from before rotations existed name no CA: they are all the current one's.
    for (const e of index.certificates) e.caSerial ??= current.serial;
    const next: ClusterState = { ...state, caGeneration: generation, rotation: { phase: 'begun', previousCaSerial: current.serial, begunAt: now.toISOString() } };
    const trust = current.certPem + nextPem;
    commitFiles(dir, [
      { file: 'caPreviousKey', data: previousKey },
      { file: 'caKey', data: nextKey },
      { file: 'caCert', data: trust, mode: 0o644 },
      { file: 'index', data: jsonText(index) },
      { file: 'state', data: jsonText(next) },
    ]);
    return { alreadyDone: false, previousCa: summary(current.certPem), nextCa: summary(nextPem), trustPem: trust };
  });
}

export async function switchRotation(o: StepOptions): Promise<StepResult> {
  const { dir } = o;
  const now = o.now ?? new Date();
  const state = requireInitialized(dir);
  if (!state.rotation) throw pkiError('noRotation', { dir });
  if (state.rotation.phase === 'switched') return { alreadyDone: true, ...(await describe(dir, o.passphrase)) };
  const ca = await loadCa(dir, o.passphrase, 'issuing');
  const keys = await generateKeyPair(state.keyType);
  const window = validityWindow(now, leafDays(o.days, ca, now));
  const gatewayKey = encryptPrivateKeyPem(await privateKeyToPem(keys.privateKey), o.passphrase);

  return withLock(dir, async () => {
    const latest = readState(dir);
    if (latest.rotation?.phase !== 'begun' || readText(statePath(dir, 'caCert')) !== ca.trustPem) throw pkiError('concurrentChange', { dir });
    const index = readIndex(dir);
    const previous = currentEntry(index.certificates, 'gateway', now);
    const names = serverNames(readText(statePath(dir, 'gatewayCert')));
    const { entry, certPem } = await signEntry({
      ca, state: latest, index, role: 'gateway', name: 'gateway', keys, window, now,
      dns: names.dns, ip: names.ip, ...(names.crlUrls[0] ? { crlUrl: names.crlUrls[0] } : {}),
    });
    if (previous) previous.renewedBy = entry.serial;
    index.certificates.push(entry);
    const list = readRevocationList(dir);
    const revoked = { ...list, crlNumber: list.crlNumber + 1, updatedAt: now.toISOString() };
    const next: ClusterState = { ...latest, rotation: { ...latest.rotation, phase: 'switched', switchedAt: now.toISOString() } };
    commitFiles(dir, [
      { file: 'gatewayCert', data: certPem, mode: 0o644 },
      { file: 'gatewayKey', data: gatewayKey },
      { file: 'revoked', data: jsonText(revoked) },
      { file: 'crl', data: await signCrl(ca, revoked, now), mode: 0o644 },
      { file: 'index', data: jsonText(index) },
      { file: 'state', data: jsonText(next) },
    ]);
    return { alreadyDone: false, ...pair(ca.trustPem, latest.rotation.previousCaSerial), trustPem: ca.trustPem };
  });
}

export interface FinishOptions extends StepOptions {
  /** Finish even though certificates of the outgoing CA are still current (they are cut off). */
  force?: boolean;
}

export interface FinishResult extends StepResult {
  /** Current certificates of the outgoing CA that finish cut off (only with force). */
  cutOff: IndexEntry[];
}

export async function finishRotation(o: FinishOptions): Promise<FinishResult> {
  const { dir } = o;
  const now = o.now ?? new Date();
  const state = requireInitialized(dir);
  if (!state.rotation) throw pkiError('noRotation', { dir });
  if (state.rotation.phase !== 'switched') throw pkiError('rotationPhase', { dir, phase: state.rotation.phase, next: 'run certs rotate-ca switch first' });
  // Proves the new CA opens before the old key is deleted.
  const ca: StoredCa = await loadCa(dir, o.passphrase, 'issuing');
  const previousSerial = state.rotation.previousCaSerial;
  const waiting = stillOnPreviousCa(readIndex(dir).certificates, previousSerial, now);
  if (waiting.length > 0 && !o.force) {
    throw pkiError('rotationPending', { count: waiting.length, names: waiting.slice(0, 10).map((e) => `${e.role}/${e.name}`).join(', ') + (waiting.length > 10 ? ', ...' : '') });
  }

  return withLock(dir, () => {
    const latest = readState(dir);
    if (latest.rotation?.phase !== 'switched' || readText(statePath(dir, 'caCert')) !== ca.trustPem) throw pkiError('concurrentChange', { dir });
    const { rotation: _finished, ...next } = latest;
    commitFiles(dir, [
      { file: 'caCert', data: ca.certPem, mode: 0o644 },
      { file: 'caPreviousKey' },
      { file: 'state', data: jsonText(next) },
    ]);
    return { alreadyDone: false, ...pair(ca.trustPem, previousSerial), trustPem: ca.certPem, cutOff: waiting };
  });
}

/** Current certificates (valid, not renewed) that the outgoing CA issued: what must be renewed before finish. */
export function stillOnPreviousCa(entries: readonly IndexEntry[], previousCaSerial: string, now: Date): IndexEntry[] {
  return entries.filter((e) => (e.caSerial ?? previousCaSerial) === previousCaSerial && e.renewedBy === undefined && statusOf(e, now) === 'valid');
}

/** The two CAs of a rotation as they stand: for a step run again after it completed. */
async function describe(dir: string, passphrase: string): Promise<Omit<StepResult, 'alreadyDone'>> {
  const ca = await loadCa(dir, passphrase, 'issuing');
  return { ...pair(ca.trustPem, readState(dir).rotation!.previousCaSerial), trustPem: ca.trustPem };
}

function pair(trustPem: string, previousSerial: string): Pick<StepResult, 'previousCa' | 'nextCa'> {
  const certs = splitPemCertificates(trustPem).map(summary);
  return { previousCa: certs.find((c) => c.serial === previousSerial)!, nextCa: certs.find((c) => c.serial !== previousSerial)! };
}

function summary(certPem: string): CaSummary {
  const c = parseCertificatePem(certPem);
  return { serial: normalizeSerial(c.serialNumber), notAfter: new Date(c.validTo).toISOString() };
}
