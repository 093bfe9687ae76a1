/**
 * Brings the CA file of every bundle this host wrote up to date with the
 * cluster's trust after rotate-ca begin and finish. A Dask process reads its
 * CA file once, at start; one started after this (or running the
 * tls-reload preload, dask-preload.ts) trusts the new CA, which is what keeps
 * a running scheduler able to dial workers that hold new-CA certificates.
 * Only bundles of current certificates are touched, and only while the
 * directory still holds the certificate the index recorded there; bundles
 * copied to other hosts are the operator's to redistribute (the result
 * names what was and was not updated).
 * NAME.p12 is left as it is: its password is shown once and never stored,
 * and it needs no new CA, because the CA certificates in it only complete
 * its own leaf's chain (a browser does not take them as trust anchors). A
 * certificate the outgoing CA issued is renewed before finish, and renew
 * writes a new .p12.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { caSerials } from './ca.js';
import { normalizeSerial } from './peer-certificate.js';
import { readIndex, statusOf } from './records.js';
import { writeFileAtomic } from './state-dir.js';
import { errnoText } from './keystore.js';
import { parseCertificatePem } from './certificate.js';

export interface BundleTrustResult {
  updated: string[];
  skipped: Array<{ bundle: string; name: string; reason: string }>;
}

export function refreshBundleTrust(dir: string, trustPem: string, now = new Date()): BundleTrustResult {
  const trusted = caSerials(trustPem);
  const result: BundleTrustResult = { updated: [], skipped: [] };
  for (const e of readIndex(dir).certificates) {
    if (e.bundle === undefined || e.renewedBy !== undefined || statusOf(e, now, trusted) !== 'valid') continue;
    const reason = stillHolds(e.bundle, e.name, e.serial);
    if (reason !== undefined) {
      result.skipped.push({ bundle: e.bundle, name: e.name, reason });
      continue;
    }
    try {
      writeFileAtomic(join(e.bundle, 'ca.pem'), trustPem, 0o644);
      result.updated.push(e.bundle);
    } catch (err) {
      result.skipped.push({ bundle: e.bundle, name: e.name, reason: `cannot write ca.pem: ${errnoText(err)}` });
    }
  }
  return result;
}

/** Undefined when bundle/NAME.pem is the certificate with this serial; else why not. */
function stillHolds(bundle: string, name: string, serial: string): string | undefined {
  const file = join(bundle, `${name}.pem`);
  if (!existsSync(file)) return 'not on this host (or removed)';
  try {
    return normalizeSerial(parseCertificatePem(readFileSync(file, 'utf8')).serialNumber) === serial ? undefined : 'holds another certificate';
  } catch (err) {
    return `unreadable certificate: ${errnoText(err)}`;
  }
}
