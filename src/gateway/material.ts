/**
 * Opens the TrustSource for the configured PKI: the managed state directory
 * (keys decrypted with the passphrase) or bring-your-own PEM files with an
 * optional CRL. The pki/ loaders read, check and name the files to watch.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { loadPemMaterial, loadServerMaterial } from '../pki/server-material.js';
import { resolvePassphrase } from '../pki/passphrase.js';
import { ReloadingTrustSource } from './trust.js';
import type { PkiSource } from './settings.js';

export async function openTrust(pki: PkiSource, deps: { env: NodeJS.ProcessEnv; log: Logger; metrics: GatewayMetrics; pollMs?: number }): Promise<ReloadingTrustSource> {
  const common = { log: deps.log, metrics: deps.metrics, ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}) };
  if (pki.mode === 'dir') {
    // Resolved once at start: the passphrase does not change while running.
    const { passphrase } = resolvePassphrase({ env: deps.env, dir: pki.dir, ...(pki.passphraseFile ? { passphraseFile: pki.passphraseFile } : {}) });
    return ReloadingTrustSource.open({ ...common, load: () => loadServerMaterial(pki.dir, passphrase) });
  }
  const { caPath, certPath, keyPath, crlPath, clusterId } = pki;
  return ReloadingTrustSource.open({ ...common, load: () => loadPemMaterial({ caPath, certPath, keyPath, clusterId, ...(crlPath ? { crlPath } : {}) }) });
}
