/**
 * What every `certs` subcommand shares: its declaration shape, the common
 * flags and their help lines, where the state directory and the passphrase
 * come from, and how a result is printed (a table or text for people, one
 * JSON document with --json).
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { CliIo } from './io.js';
import type { FlagDecl } from './args.js';
import { resolveKey, type Flags } from '../config/load.js';
import { commonKeys } from '../config/keys/common.js';
import { pkiError } from '../pki/errors.js';
import { readPassphraseFile, resolvePassphrase, PASSPHRASE_ENV } from '../pki/passphrase.js';

export interface Sub {
  flags: FlagDecl[];
  usage: string;
  run(flags: Flags, dir: string, io: CliIo): Promise<number>;
}

export const DIR_HELP = `  --dir DIR                 state directory (default: ${commonKeys.dir.default}/ in the working directory, or $${commonKeys.dir.env})`;
export const PASS_HELP = `  --passphrase-file FILE    file holding the key-store passphrase (mode 0600); default: $${commonKeys.passphraseFile.env}, then $${PASSPHRASE_ENV}`;
export const JSON_HELP = `  --json                    one JSON document for machines`;
export const common: FlagDecl[] = [{ flag: 'dir' }, { flag: 'help', boolean: true }];

/**
 * The `dir` key of `run` (--dir, then $SCHEDULER_GATEWAY_DIR, relative to the
 * working directory); its default is taken from the root of the repository
 * holding cwd (cwd itself outside one), so any subdirectory reaches the same PKI.
 */
export function stateDir(flags: Flags, io: CliIo): string {
  return resolveKey(commonKeys.dir, { flags, env: io.env, cwd: io.cwd });
}


export function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw pkiError('usage', { message: `--${name} needs a value` });
  return v;
}

export function required(flags: Flags, name: string, sub: string): string {
  const v = str(flags, name);
  if (v === undefined || v === '') throw pkiError('usage', { message: `certs ${sub} needs --${name} (see certs ${sub} --help)` });
  return v;
}

/** The same sources, in the same order, as `run`: the passphrase-file key (flag, then environment), then pki/passphrase.ts. */
export function passphrase(flags: Flags, io: CliIo, dir?: string): string {
  const file = resolveKey(commonKeys.passphraseFile, { flags, env: io.env, cwd: io.cwd });
  return resolvePassphrase({ env: io.env, cwd: io.cwd, ...(file !== undefined ? { passphraseFile: file } : {}), ...(dir ? { dir } : {}) }).passphrase;
}

export const P12_FILE_HELP = `  --p12-password-file FILE  take the PKCS#12 password from FILE instead of generating one`;

/** A bundle's NAME.p12 password: from --p12-password-file, else generated (and shown once); undefined when no .p12 is written. */
export interface P12Password {
  password: string;
  generated: boolean;
}

export function p12Password(flags: Flags, io: CliIo, wanted: boolean): P12Password | undefined {
  const file = str(flags, 'p12-password-file');
  if (file !== undefined) return { password: readPassphraseFile(resolve(io.cwd, file)), generated: false };
  return wanted ? { password: randomBytes(15).toString('base64url'), generated: true } : undefined;
}

/** The line that shows a generated PKCS#12 password, the only time it is ever shown. */
export function p12PasswordText(p12: P12Password | undefined): string {
  return p12?.generated ? `PKCS#12 password (shown only now): ${p12.password}\n` : '';
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  return line(head) + rows.map(line).join('');
}

/** Prints the JSON document with --json, else the text. */
export function report(flags: Flags, io: CliIo, json: unknown, text: string): void {
  io.stdout.write(flags.json === true ? JSON.stringify(json, null, 2) + '\n' : text);
}
