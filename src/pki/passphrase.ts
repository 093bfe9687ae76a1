/**
 * Where the key-store passphrase comes from, in order: --passphrase-file,
 * SCHEDULER_GATEWAY_PASSPHRASE_FILE, SCHEDULER_GATEWAY_PASSPHRASE, and, only
 * for a directory whose state.json says devPassphrase: true, the
 * .dev-passphrase file beside the keys. `run` and every `certs` command go
 * through here, so they agree on which passphrase wins.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pkiError } from './errors.js';
import { readPrivateFile } from './keystore.js';
import { readState } from './records.js';
import { statePath } from './state-dir.js';

export const PASSPHRASE_ENV = 'SCHEDULER_GATEWAY_PASSPHRASE';
export const PASSPHRASE_FILE_ENV = 'SCHEDULER_GATEWAY_PASSPHRASE_FILE';
/** certs passphrase: where the new one comes from, by the same rule. */
export const NEW_PASSPHRASE_ENV = 'SCHEDULER_GATEWAY_NEW_PASSPHRASE';
export const NEW_PASSPHRASE_FILE_ENV = 'SCHEDULER_GATEWAY_NEW_PASSPHRASE_FILE';
/** New passphrases only (init, certs passphrase); existing directories with shorter ones keep loading. */
export const MIN_PASSPHRASE_LENGTH = 12;

export type PassphraseSource = 'file' | 'env' | 'dev';

export interface PassphraseOptions {
  env: NodeJS.ProcessEnv;
  passphraseFile?: string;
  /** The state directory, to look for a development passphrase. */
  dir?: string;
  /** Resolves a relative SCHEDULER_GATEWAY_PASSPHRASE_FILE (default: the process's cwd). */
  cwd?: string;
}

type Resolved = { passphrase: string; source: PassphraseSource; file?: string };

export function resolvePassphrase(opts: PassphraseOptions): Resolved {
  const found = fromSources(opts, PASSPHRASE_FILE_ENV, PASSPHRASE_ENV);
  if (found) return found;
  if (opts.dir !== undefined && existsSync(statePath(opts.dir, 'state')) && readState(opts.dir).devPassphrase === true) {
    const dev = statePath(opts.dir, 'devPassphrase');
    if (existsSync(dev)) return { passphrase: readPassphraseFile(dev), source: 'dev', file: dev };
  }
  throw pkiError('noPassphrase');
}

/** The new passphrase of certs passphrase: --new-passphrase-file, then the two NEW_ variables. */
export function resolveNewPassphrase(opts: PassphraseOptions): string {
  const found = fromSources(opts, NEW_PASSPHRASE_FILE_ENV, NEW_PASSPHRASE_ENV);
  if (!found) throw pkiError('usage', { message: `certs passphrase needs the new passphrase: --new-passphrase-file FILE, $${NEW_PASSPHRASE_FILE_ENV} or $${NEW_PASSPHRASE_ENV}` });
  return found.passphrase;
}

function fromSources(opts: PassphraseOptions, fileVar: string, valueVar: string): Resolved | undefined {
  const envFile = opts.env[fileVar];
  const file = opts.passphraseFile ?? (envFile ? resolve(opts.cwd ?? process.cwd(), envFile) : undefined);
  if (file !== undefined) return { passphrase: readPassphraseFile(file), source: 'file', file };
  const value = opts.env[valueVar];
  return value !== undefined && value !== '' ? { passphrase: value, source: 'env' } : undefined;
}

/** A passphrase file is a secret like a key: same permission rule. One trailing newline is not part of it. */
export function readPassphraseFile(file: string): string {
  const text = readPrivateFile(file).replace(/\r?\n$/, '');
  if (text === '') throw pkiError('noPassphrase');
  return text;
}

export function assertStrongEnough(passphrase: string): void {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) throw pkiError('weakPassphrase', { min: MIN_PASSPHRASE_LENGTH });
}
