/**
 * The access-token wire format. Pure: no I/O, no clock.
 *
 *   dgw_<secret: 43 base62 chars><checksum: 6 base62 chars>     (53 characters)
 *
 * - `dgw_` is a fixed prefix so secret scanners (and people) recognize a
 *   leaked dashboard gateway token; register the regex
 *   `\bdgw_[0-9A-Za-z]{49}\b` with your scanner.
 * - The secret is 32 random bytes (256 bits) as a fixed-width base62 number.
 * - The checksum is CRC-32 of the 43 secret characters, base62, 6 chars wide:
 *   a scanner can tell a real token from a random look-alike offline, and a
 *   truncated paste is refused before any lookup.
 *
 * Only SHA-256(token) is stored. A fast hash is enough because the input has
 * 256 bits of entropy: there is nothing to brute-force.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const TOKEN_PREFIX = 'dgw_';
const SECRET_CHARS = 43; // ceil(256 / log2(62))
const CHECK_CHARS = 6; // ceil(32 / log2(62))
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const TOKEN_PATTERN = /^dgw_[0-9A-Za-z]{49}$/;

function base62(n: bigint, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(n % 62n)]! + out;
    n /= 62n;
  }
  return out;
}

function checksum(secret: string): string {
  return base62(BigInt(crc32(secret)), CHECK_CHARS);
}

/** A fresh token. The caller shows it once and stores only tokenHash(token). */
export function generateToken(): string {
  const secret = base62(BigInt('0x' + randomBytes(32).toString('hex')), SECRET_CHARS);
  return TOKEN_PREFIX + secret + checksum(secret);
}

/** Well-formed means: prefix, length, alphabet and checksum all right. Says nothing about validity. */
export function isWellFormedToken(s: string): boolean {
  if (!TOKEN_PATTERN.test(s)) return false;
  const secret = s.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + SECRET_CHARS);
  const given = Buffer.from(s.slice(TOKEN_PREFIX.length + SECRET_CHARS));
  return timingSafeEqual(given, Buffer.from(checksum(secret)));
}

export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Constant-time equality of two hashes (length mismatch is simply false). */
export function hashesEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
