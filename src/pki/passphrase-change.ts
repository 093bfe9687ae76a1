/**
 * `certs passphrase`: every key in the state directory (CA, outgoing CA
 * during a rotation, gateway) re-encrypted under a new passphrase, with
 * today's key derivation, in one commit: a crash leaves all keys under the
 * old passphrase or all under the new one, never a mix. Run again after a
 * crash, it finds the keys already under the new passphrase and says so.
 */
import { existsSync } from 'node:fs';
import { isGatewayError } from '../errors/base.js';
import { pkiError } from './errors.js';
import { decryptPrivateKeyPem, encryptPrivateKeyPem, readPrivateFile } from './keystore.js';
import { assertStrongEnough } from './passphrase.js';
import { readState, requireInitialized } from './records.js';
import { commitFiles, statePath, withLock, type FileChange, type StateFile } from './state-dir.js';

const KEY_FILES: readonly StateFile[] = ['caKey', 'caPreviousKey', 'gatewayKey'];

export interface PassphraseChangeResult {
  /** The keys were already under the new passphrase (a change that completed before): nothing was written. */
  alreadyDone: boolean;
  rewritten: string[];
}

export async function changePassphrase(o: { dir: string; passphrase: string; newPassphrase: string }): Promise<PassphraseChangeResult> {
  const { dir } = o;
  assertStrongEnough(o.newPassphrase);
  requireInitialized(dir);
  const texts = await withLock(dir, () => new Map(KEY_FILES.filter((f) => existsSync(statePath(dir, f))).map((f) => [f, readPrivateFile(statePath(dir, f))] as const)));
  let plain: Map<StateFile, string>;
  try {
    plain = await decryptAll(dir, texts, o.passphrase);
  } catch (e) {
    if (!isGatewayError(e) || e.code !== 'GW_PKI_WRONG_PASSPHRASE') throw e;
    if (await opensWith(dir, texts, o.newPassphrase)) return { alreadyDone: true, rewritten: [] };
    throw e;
  }
  const changes: FileChange[] = [...plain].map(([file, pem]) => ({ file, data: encryptPrivateKeyPem(pem, o.newPassphrase) }));
  return withLock(dir, () => {
    for (const [f, text] of texts) if (readPrivateFile(statePath(dir, f)) !== text) throw pkiError('concurrentChange', { dir });
    // The development default keeps its passphrase beside the keys: it must follow them.
    if (readState(dir).devPassphrase) changes.push({ file: 'devPassphrase', data: o.newPassphrase + '\n' });
    commitFiles(dir, changes);
    return { alreadyDone: false, rewritten: [...plain.keys()].map((f) => statePath(dir, f)) };
  });
}

async function decryptAll(dir: string, texts: ReadonlyMap<StateFile, string>, passphrase: string): Promise<Map<StateFile, string>> {
  const out = new Map<StateFile, string>();
  for (const [f, text] of texts) out.set(f, await decryptPrivateKeyPem(text, passphrase, statePath(dir, f)));
  return out;
}

async function opensWith(dir: string, texts: ReadonlyMap<StateFile, string>, passphrase: string): Promise<boolean> {
  try {
    await decryptAll(dir, texts, passphrase);
    return true;
  } catch {
    return false;
  }
}
