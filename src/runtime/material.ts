/**
 * Opens the TrustSource for the configured PKI: the managed state directory
 * (keys decrypted with the passphrase) or bring-your-own PEM files with an
 * optional CRL. The pki/ loaders read, check and name the files to watch.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from './metrics.js';
import { loadPemMaterial, loadServerMaterial, type ServerMaterial } from '../pki/server-material.js';
import { resolvePassphrase } from '../pki/passphrase.js';
import { ReloadingTrustSource } from './trust.js';

/** Where the cluster's TLS material comes from: a managed state directory, or bring-your-own PEM files. */
export type PkiSource =
  | { readonly mode: 'dir'; readonly dir: string; readonly passphraseFile?: string }
  | { readonly mode: 'pem'; readonly caPath: string; readonly certPath: string; readonly keyPath: string; readonly crlPath?: string; readonly clusterId: string };

export async function openTrust(pki: PkiSource, deps: { env: NodeJS.ProcessEnv; log: Logger; metrics: GatewayMetrics; pollMs?: number }): Promise<ReloadingTrustSource> {
  const common = { log: deps.log, metrics: deps.metrics, ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}) };
  if (pki.mode === 'dir') {
    // Resolved again whenever a new gateway key must be decrypted: after `certs passphrase`,
    // replacing the passphrase file is enough (it is watched); an environment value needs a restart.
    const resolve = () => resolvePassphrase({ env: deps.env, dir: pki.dir, ...(pki.passphraseFile ? { passphraseFile: pki.passphraseFile } : {}) });
    const passphraseFile = resolve().file;
    let last: ServerMaterial | undefined;
    return ReloadingTrustSource.open({
      ...common,
      load: async () => {
        last = await loadServerMaterial(pki.dir, () => resolve().passphrase, last);
        if (last.keyKept) {
          deps.log.warn('gateway_key_kept', { reason: last.keyKept, action: 'serving with the key in memory; give the gateway the new passphrase (replace its passphrase file, or restart it)' });
        }
        return { ...last, watchPaths: [...last.watchPaths, ...(passphraseFile ? [passphraseFile] : [])] };
      },
    });
  }
  const { caPath, certPath, keyPath, crlPath, clusterId } = pki;
  return ReloadingTrustSource.open({ ...common, load: () => loadPemMaterial({ caPath, certPath, keyPath, clusterId, ...(crlPath ? { crlPath } : {}) }) });
}
