/**
 * Private keys at rest: PKCS#8 encrypted with AES-256-CBC under PBES2, the key
 * derived from the passphrase by scrypt (pbes2.ts says which parameters and
 * why). Keys written by earlier versions (PBKDF2, 2,048 iterations) still
 * load; keyEncryption() tells them apart so commands can rewrite them.
 * Loading refuses a file other users can read, and tells a wrong passphrase
 * apart from a corrupt file.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { pkiError } from './errors.js';
import { pemEncode } from './x509.js';
import { parseEncryptedKeyInfo, pbes2Decrypt, pbes2Encrypt, Pbes2DecryptError, SCRYPT_PARAMS, type KdfParams } from './pbes2.js';

// Built from parts so secret scanners do not take this source for a file holding a key.
const ENCRYPTED_KEY_LABEL = ['ENCRYPTED', 'PRIVATE', 'KEY'].join(' ');
/** The first line of an encrypted PKCS#8 PEM. */
export const ENCRYPTED_KEY_BEGIN = `-----BEGIN ${ENCRYPTED_KEY_LABEL}-----`;
const ENCRYPTED_PKCS8_PEM = new RegExp(`${ENCRYPTED_KEY_BEGIN}[\\s\\S]+-----END ${ENCRYPTED_KEY_LABEL}-----`);

/** Synchronous (about 0.2 s of scrypt): only commands encrypt, never the running gateway. */
export function encryptPrivateKeyPem(pem: string, passphrase: string): string {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return pemEncode(ENCRYPTED_KEY_LABEL, pbes2Encrypt(der, passphrase));
}

/** How a key file is protected: its key derivation (without the salt) and cipher, e.g. for certs list and tests. */
export interface KeyEncryption {
  readonly kdf: 'scrypt' | 'pbkdf2';
  readonly cipher: string;
  readonly N?: number;
  readonly r?: number;
  readonly p?: number;
  readonly iterations?: number;
  readonly prf?: string;
  /** Derived as new keys are (scrypt at SCRYPT_PARAMS or stronger); false means a command should rewrite it. */
  readonly current: boolean;
}

/** Reads the PBES2 parameters of an encrypted PEM key; throws GW_PKI_CORRUPT_PEM naming file if it has none. */
export function keyEncryption(pem: string, file: string): KeyEncryption {
  const info = parseOrCorrupt(pem, file);
  return describe(info.kdf, info.cipher);
}

function describe(k: KdfParams, cipher: string): KeyEncryption {
  if (k.kdf === 'pbkdf2') return { kdf: 'pbkdf2', cipher, iterations: k.iterations, prf: k.prf, current: false };
  const current = k.N * k.r * k.p >= SCRYPT_PARAMS.N * SCRYPT_PARAMS.r * SCRYPT_PARAMS.p && cipher === 'aes-256-cbc';
  return { kdf: 'scrypt', cipher, N: k.N, r: k.r, p: k.p, current };
}

/** Refuses a key (or passphrase) file that group or other users can read or write. */
export function assertPrivateFile(file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw pkiError('unreadable', { file, reason: errnoText(e) });
  }
  if ((mode & 0o077) !== 0) throw pkiError('keyFileTooOpen', { file, mode: (mode & 0o777).toString(8).padStart(4, '0') });
}

export function readPrivateFile(file: string): string {
  assertPrivateFile(file);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw pkiError('unreadable', { file, reason: errnoText(e) });
  }
}

/** Decrypts an encrypted PKCS#8 PEM; returns unencrypted PKCS#8 PEM (keep it in memory only). */
export async function decryptPrivateKeyPem(pem: string, passphrase: string, file: string): Promise<string> {
  parseOrCorrupt(pem, file);
  let der: Buffer;
  try {
    der = await pbes2Decrypt(pemBody(pem), passphrase);
  } catch (e) {
    // A structure that parsed but does not open is a wrong passphrase (a bad
    // padding check); a structure that does not parse is a corrupt file.
    if (e instanceof Pbes2DecryptError) throw pkiError('wrongPassphrase', { file });
    throw pkiError('corruptPem', { file, what: 'encrypted private key' });
  }
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch {
    // Padding matched by chance (1 in 256) under a wrong key: still the passphrase.
    throw pkiError('wrongPassphrase', { file });
  }
}

/** Reads, checks permissions of, and decrypts a key file. */
export async function loadEncryptedKey(file: string, passphrase: string): Promise<string> {
  return decryptPrivateKeyPem(readPrivateFile(file), passphrase, file);
}

function parseOrCorrupt(pem: string, file: string) {
  if (!ENCRYPTED_PKCS8_PEM.test(pem)) throw pkiError('corruptPem', { file, what: 'encrypted private key' });
  try {
    return parseEncryptedKeyInfo(pemBody(pem));
  } catch {
    throw pkiError('corruptPem', { file, what: 'encrypted private key' });
  }
}

function pemBody(pem: string): Buffer {
  const m = ENCRYPTED_PKCS8_PEM.exec(pem)!;
  return Buffer.from(m[0].replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}


/** Reads an unencrypted key file (bring-your-own PKI, issued bundles), permissions checked. */
export function loadPlainKey(file: string): string {
  const pem = readPrivateFile(file);
  try {
    return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch (e) {
    if (/ENCRYPTED/.test(pem)) throw pkiError('corruptPem', { file, what: 'unencrypted private key (this one is encrypted)' });
    throw pkiError('corruptPem', { file, what: 'private key' });
  }
}

export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}` : String(err.message ?? e);
}
