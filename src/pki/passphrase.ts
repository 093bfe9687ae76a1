/**
 * Where the key-store passphrase comes from, in order: --passphrase-file,
 * SCHEDULER_GATEWAY_PASSPHRASE, and, only for a directory whose state.json
 * says devPassphrase: true, the .dev-passphrase file beside the keys.
 */
import { existsSync } from 'node:fs';
import { pkiError } from './errors.js';
import { readPrivateFile } from './keystore.js';
import { readState } from './records.js';
import { statePath } from './state-dir.js';

export const PASSPHRASE_ENV = 'SCHEDULER_GATEWAY_PASSPHRASE';
export const MIN_PASSPHRASE_LENGTH = 8;

export type PassphraseSource = 'file' | 'env' | 'dev';

export interface PassphraseOptions {
  env: NodeJS.ProcessEnv;
  passphraseFile?: string;
  /** The state directory, to look for a development passphrase. */
  dir?: string;
}

export function resolvePassphrase(opts: PassphraseOptions): { passphrase: string; source: PassphraseSource } {
  if (opts.passphraseFile !== undefined) return { passphrase: readPassphraseFile(opts.passphraseFile), source: 'file' };
  const env = opts.env[PASSPHRASE_ENV];
  if (env !== undefined && env !== '') return { passphrase: env, source: 'env' };
  if (opts.dir !== undefined && existsSync(statePath(opts.dir, 'state')) && readState(opts.dir).devPassphrase === true) {
    const file = statePath(opts.dir, 'devPassphrase');
    if (existsSync(file)) return { passphrase: readPassphraseFile(file), source: 'dev' };
  }
  throw pkiError('noPassphrase');
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
