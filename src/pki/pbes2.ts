/**
 * PKCS#8 EncryptedPrivateKeyInfo under PBES2 (RFC 8018), read and written
 * here rather than by OpenSSL's PEM writer, whose PBKDF2 count (2,048) cannot
 * be raised from Node. New keys use scrypt (RFC 7914 parameters, OID
 * 1.3.6.1.4.1.11591.4.11) with AES-256-CBC: `openssl pkey` and Node's
 * createPrivateKey read the result. Keys written before (PBKDF2) still
 * decrypt. Decryption (what the running gateway does) derives on libuv's
 * thread pool, off the event loop; only commands encrypt, synchronously.
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes, scrypt, scryptSync } from 'node:crypto';
import { TAG, decodeDer, derInteger, derOctets, derOid, derSequence, oidToString, type DerNode } from './der.js';

/**
 * scrypt N=2^14, r=8, p=5: OWASP's Password Storage Cheat Sheet lists it as
 * equal in cost to N=2^17, r=8, p=1. OpenSSL refuses to decode PKCS#8 whose
 * scrypt needs more than 32 MiB (N=2^15, r=8 already does), so the cost goes
 * into p: 16 MiB and about 0.2 s per derivation, for us and for every guess.
 */
export const SCRYPT_PARAMS = { N: 16_384, r: 8, p: 5 } as const;
const SALT_BYTES = 16;
const AES_256_KEY_BYTES = 32;
/** Bounds on what a key file may ask for, so a planted file cannot make a load take minutes or gigabytes. */
const MAX_SCRYPT_MEMORY = 64 * 1024 * 1024;
const MAX_PBKDF2_ITERATIONS = 10_000_000;

const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  scrypt: '1.3.6.1.4.1.11591.4.11',
  hmacWithSHA1: '1.2.840.113549.2.7',
  hmacWithSHA224: '1.2.840.113549.2.8',
  hmacWithSHA256: '1.2.840.113549.2.9',
  hmacWithSHA384: '1.2.840.113549.2.10',
  hmacWithSHA512: '1.2.840.113549.2.11',
  aes128cbc: '2.16.840.1.101.3.4.1.2',
  aes192cbc: '2.16.840.1.101.3.4.1.22',
  aes256cbc: '2.16.840.1.101.3.4.1.42',
} as const;

const PRFS: Record<string, string> = { [OID.hmacWithSHA1]: 'sha1', [OID.hmacWithSHA224]: 'sha224', [OID.hmacWithSHA256]: 'sha256', [OID.hmacWithSHA384]: 'sha384', [OID.hmacWithSHA512]: 'sha512' };
const CIPHERS: Record<string, { name: string; keyBytes: number }> = {
  [OID.aes128cbc]: { name: 'aes-128-cbc', keyBytes: 16 },
  [OID.aes192cbc]: { name: 'aes-192-cbc', keyBytes: 24 },
  [OID.aes256cbc]: { name: 'aes-256-cbc', keyBytes: 32 },
};

export type KdfParams =
  | { readonly kdf: 'scrypt'; readonly salt: Buffer; readonly N: number; readonly r: number; readonly p: number }
  | { readonly kdf: 'pbkdf2'; readonly salt: Buffer; readonly iterations: number; readonly prf: string };

export interface EncryptedKeyInfo {
  readonly kdf: KdfParams;
  readonly cipher: string;
  readonly iv: Buffer;
  readonly encrypted: Buffer;
}

/** The structure is not PBES2 as this module reads it (a corrupt file, or a scheme we do not write). */
export class Pbes2FormatError extends Error {}
/** The passphrase did not open the key (or the ciphertext was altered). */
export class Pbes2DecryptError extends Error {}

export function pbes2Encrypt(pkcs8Der: Buffer, passphrase: string): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(16);
  const key = scryptSync(passphrase, salt, AES_256_KEY_BYTES, { ...SCRYPT_PARAMS, maxmem: MAX_SCRYPT_MEMORY * 2 });
  const c = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([c.update(pkcs8Der), c.final()]);
  return encode({ kdf: { kdf: 'scrypt', salt, ...SCRYPT_PARAMS }, cipher: 'aes-256-cbc', iv, encrypted });
}

/** Returns the unencrypted PKCS#8 DER. Throws Pbes2FormatError or Pbes2DecryptError. */
export async function pbes2Decrypt(der: Buffer, passphrase: string): Promise<Buffer> {
  const info = parseEncryptedKeyInfo(der);
  const cipher = Object.values(CIPHERS).find((c) => c.name === info.cipher)!;
  const key = await deriveKey(passphrase, info.kdf, cipher.keyBytes);
  try {
    const d = createDecipheriv(cipher.name, key, info.iv);
    return Buffer.concat([d.update(info.encrypted), d.final()]);
  } catch {
    throw new Pbes2DecryptError('bad decrypt');
  }
}

export function parseEncryptedKeyInfo(der: Buffer): EncryptedKeyInfo {
  try {
    const top = decodeDer(der);
    const [alg, data] = children(top, 2);
    const [algOid, params] = children(alg!, 2);
    if (oid(algOid!) !== OID.pbes2) throw new Pbes2FormatError('not PBES2');
    const [kdfAlg, encAlg] = children(params!, 2);
    const [encOid, ivNode] = children(encAlg!, 2);
    const cipher = CIPHERS[oid(encOid!)];
    if (!cipher) throw new Pbes2FormatError('unsupported cipher');
    const iv = octets(ivNode!);
    if (iv.length !== 16) throw new Pbes2FormatError('bad IV');
    return { kdf: parseKdf(kdfAlg!), cipher: cipher.name, iv, encrypted: octets(data!) };
  } catch (e) {
    if (e instanceof Pbes2FormatError) throw e;
    throw new Pbes2FormatError(`malformed: ${(e as Error).message}`);
  }
}

function parseKdf(node: DerNode): KdfParams {
  const [kdfOid, params] = children(node, 2);
  const p = children(params!);
  if (oid(kdfOid!) === OID.scrypt) {
    const [salt, n, r, par] = p;
    if (!salt || !n || !r || !par) throw new Pbes2FormatError('short scrypt parameters');
    const kdf = { kdf: 'scrypt' as const, salt: octets(salt), N: int(n), r: int(r), p: int(par) };
    if (128 * kdf.N * kdf.r + 128 * kdf.r * kdf.p > MAX_SCRYPT_MEMORY || kdf.p > 64 || (kdf.N & (kdf.N - 1)) !== 0 || kdf.N < 2) {
      throw new Pbes2FormatError('scrypt parameters out of bounds');
    }
    return kdf;
  }
  if (oid(kdfOid!) === OID.pbkdf2) {
    const [salt, count, ...rest] = p;
    if (!salt || !count) throw new Pbes2FormatError('short PBKDF2 parameters');
    // keyLength (an INTEGER) may precede the PRF; the PRF defaults to HMAC-SHA1.
    const prfNode = rest.find((x) => x.tag === TAG.SEQUENCE);
    const prf = prfNode ? PRFS[oid(children(prfNode)[0]!)] : 'sha1';
    if (!prf) throw new Pbes2FormatError('unsupported PRF');
    const iterations = int(count);
    if (iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) throw new Pbes2FormatError('PBKDF2 count out of bounds');
    return { kdf: 'pbkdf2', salt: octets(salt), iterations, prf };
  }
  throw new Pbes2FormatError('unsupported key derivation');
}

function deriveKey(passphrase: string, kdf: KdfParams, keyBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (e: Error | null, key: Buffer) => (e ? reject(e) : resolve(key));
    if (kdf.kdf === 'scrypt') scrypt(passphrase, kdf.salt, keyBytes, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: MAX_SCRYPT_MEMORY * 2 }, done);
    else pbkdf2(passphrase, kdf.salt, kdf.iterations, keyBytes, kdf.prf, done);
  });
}

function encode(info: EncryptedKeyInfo): Buffer {
  if (info.kdf.kdf !== 'scrypt') throw new Error('only scrypt is written');
  const { salt, N, r, p } = info.kdf;
  const scryptParams = derSequence([derOctets(salt), derInteger(N), derInteger(r), derInteger(p)]);
  const cipherOid = Object.entries(CIPHERS).find(([, c]) => c.name === info.cipher)![0];
  const pbes2Params = derSequence([derSequence([derOid(OID.scrypt), scryptParams]), derSequence([derOid(cipherOid), derOctets(info.iv)])]);
  return derSequence([derSequence([derOid(OID.pbes2), pbes2Params]), derOctets(info.encrypted)]);
}

function children(node: DerNode, atLeast = 0): readonly DerNode[] {
  if (node.tag !== TAG.SEQUENCE || node.children.length < atLeast) throw new Pbes2FormatError('expected a SEQUENCE');
  return node.children;
}

function oid(node: DerNode): string {
  if (node.tag !== TAG.OID) throw new Pbes2FormatError('expected an OID');
  return oidToString(node.content);
}

function octets(node: DerNode): Buffer {
  if (node.tag !== TAG.OCTET_STRING) throw new Pbes2FormatError('expected an OCTET STRING');
  return Buffer.from(node.content);
}

function int(node: DerNode): number {
  if (node.tag !== TAG.INTEGER || node.content.length > 6) throw new Pbes2FormatError('expected a small INTEGER');
  return node.content.length === 0 ? 0 : node.content.readUIntBE(0, node.content.length);
}
