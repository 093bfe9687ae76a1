/**
 * The development PKI of `run --dev`: created in the state directory if there
 * is none (passphrase generated and kept beside the keys, state.json says
 * devPassphrase: true: never for production), then the bundles the quick
 * start needs under issued/, with unencrypted keys: the scheduler's (so it
 * can dial tls:// workers), one worker's and one client's. Existing bundles
 * are reused, so a restart does not issue new certificates. A directory
 * whose CA was made by `certs init` (a production CA) is refused before
 * anything is minted or written. The passphrase is always the one beside the
 * keys: a SCHEDULER_GATEWAY_PASSPHRASE left in an operator's shell for a
 * production directory must not be tried on (or, worse, be taken as) the
 * development one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { initCluster } from '../pki/init.js';
import { issueCertificate } from '../pki/issue.js';
import { bundlePaths, writeBundle, type BundleFiles } from '../pki/bundle.js';
import { PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, readPassphraseFile } from '../pki/passphrase.js';
import { readIndex, readState } from '../pki/records.js';
import { statePath } from '../pki/state-dir.js';
import type { Logger } from '../log/logger.js';
import { GatewayError } from '../errors/base.js';

export interface DevBundles {
  readonly clusterId: string;
  readonly created: boolean;
  readonly scheduler: BundleFiles;
  readonly worker: BundleFiles;
  readonly client: BundleFiles;
  /** The development passphrase's file: the gateway opens the PKI with it. */
  readonly passphraseFile: string;
}

export const DEV_NAMES = { scheduler: 'scheduler', worker: 'worker-1', client: 'client-1' } as const;

export async function ensureDevelopmentPki(dir: string, env: NodeJS.ProcessEnv, log: Logger): Promise<DevBundles> {
  let created = false;
  if (existsSync(statePath(dir, 'state')) && readState(dir).devPassphrase !== true) {
    throw new GatewayError('GW_SUPERVISOR_PRODUCTION_DIR', `--dev refuses ${dir}: it holds a production CA (made by certs init); development certificates and unencrypted keys are never written there. Give --dev its own --dir`, { dir });
  }
  if (!existsSync(statePath(dir, 'state'))) {
    const clusterId = 'dev';
    await initCluster({ dir, clusterId, passphrase: randomBytes(24).toString('base64url'), devPassphrase: true });
    created = true;
    log.warn('development_pki_created', { dir, cluster: clusterId, note: 'the passphrase is stored beside the keys (.dev-passphrase): development only' });
  }
  const passphraseFile = statePath(dir, 'devPassphrase');
  const passphrase = readPassphraseFile(passphraseFile);
  const ignored = [PASSPHRASE_ENV, PASSPHRASE_FILE_ENV].filter((v) => env[v] !== undefined && env[v] !== '');
  if (ignored.length > 0) log.warn('passphrase_environment_ignored', { variables: ignored, why: '--dev uses the development passphrase beside its keys' });
  const issuedDir = join(dir, 'issued');
  const bundle = async (role: 'scheduler' | 'worker' | 'client', name: string): Promise<BundleFiles> => {
    const out = join(issuedDir, name);
    const files = bundlePaths(out, name, false, role);
    if (existsSync(files.certPath) && existsSync(files.keyPath) && stillValid(dir, name)) return files;
    const issued = await issueCertificate({ dir, passphrase, role, name });
    log.info('development_bundle_issued', { role, name, serial: issued.serial, dir: out });
    return writeBundle(out, issued);
  };
  return {
    clusterId: readState(dir).clusterId,
    created,
    passphraseFile,
    scheduler: await bundle('scheduler', DEV_NAMES.scheduler),
    worker: await bundle('worker', DEV_NAMES.worker),
    client: await bundle('client', DEV_NAMES.client),
  };
}

/** The newest certificate issued under this name is neither revoked nor expired. */
function stillValid(dir: string, name: string): boolean {
  const entries = readIndex(dir).certificates.filter((e) => e.name === name);
  const last = entries[entries.length - 1];
  return last !== undefined && last.revokedAt === undefined && Date.parse(last.notAfter) > Date.now() + 86_400_000;
}
