import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { decryptPrivateKeyPem, encryptPrivateKeyPem, keyEncryption, loadEncryptedKey, loadPlainKey } from '../../src/pki/keystore.js';
import { SCRYPT_PARAMS } from '../../src/pki/pbes2.js';
import { makeTestCluster } from '../helpers/pki.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgw-keystore-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const plain = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const PASS = 'a good passphrase';

function openssl(args: string[]) {
  return spawnSync('openssl', args, { encoding: 'utf8', timeout: 60_000 });
}

t.test('keys are stored as PKCS#8 PBES2 with scrypt and AES-256-CBC, and come back identical', async (t) => {
  const enc = encryptPrivateKeyPem(plain, PASS);
  t.match(enc, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
  t.notMatch(enc, /BEGIN PRIVATE KEY/);
  const file = join(tmp, 'k1.pem');
  writeFileSync(file, enc, { mode: 0o600 });
  const info = openssl(['asn1parse', '-in', file]).stdout;
  t.match(info, /:PBES2/);
  t.match(info, /:scrypt/);
  t.match(info, /:aes-256-cbc/);
  t.notMatch(info, /PBKDF2/);
  const back = await loadEncryptedKey(file, PASS);
  t.equal(createPrivateKey(back).export({ type: 'pkcs8', format: 'pem' }), plain);
});

t.test('the KDF parameters read back from a key file written by certs init', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  for (const f of ['ca-key.pem', 'gateway-key.pem']) {
    const text = readFileSync(join(c.dir, f), 'utf8');
    const e = keyEncryption(text, f);
    t.same({ kdf: e.kdf, N: e.N, r: e.r, p: e.p, cipher: e.cipher, current: e.current },
      { kdf: 'scrypt', N: 16_384, r: 8, p: 5, cipher: 'aes-256-cbc', current: true }, f);
    // openssl reads the same numbers (salt, N, r, p), independently of our parser.
    const asn = openssl(['asn1parse', '-in', join(c.dir, f)]).stdout;
    const ints = [...asn.matchAll(/prim: INTEGER\s+:([0-9A-F]+)/g)].map((m) => parseInt(m[1]!, 16));
    t.same(ints.slice(0, 3), [SCRYPT_PARAMS.N, SCRYPT_PARAMS.r, SCRYPT_PARAMS.p], `${f}: openssl asn1parse shows N, r, p`);
  }
});

t.test('openssl pkey decrypts a key with the passphrase, and refuses a wrong one', async (t) => {
  const file = join(tmp, 'k-openssl.pem');
  writeFileSync(file, encryptPrivateKeyPem(plain, PASS), { mode: 0o600 });
  const ok = openssl(['pkey', '-in', file, '-passin', `pass:${PASS}`]);
  t.equal(ok.status, 0, ok.stderr);
  t.equal(ok.stdout, plain, 'the same PKCS#8 key comes out');
  const bad = openssl(['pkey', '-in', file, '-passin', 'pass:not the passphrase']);
  t.not(bad.status, 0, 'a wrong passphrase fails in openssl too');
});

t.test('a key written the old way (PBKDF2, 2,048 iterations) still loads and is reported as outdated', async (t) => {
  const legacy = createPrivateKey(plain).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string;
  const e = keyEncryption(legacy, 'legacy.pem');
  t.same({ kdf: e.kdf, iterations: e.iterations, prf: e.prf, current: e.current }, { kdf: 'pbkdf2', iterations: 2048, prf: 'sha256', current: false });
  t.equal(await decryptPrivateKeyPem(legacy, PASS, 'legacy.pem'), plain);
  await t.rejects(decryptPrivateKeyPem(legacy, 'wrong passphrase!', 'legacy.pem'), { code: 'GW_PKI_WRONG_PASSPHRASE' });
  // One written by openssl with an older PRF (HMAC-SHA1, keyLength present) as well.
  const src = join(tmp, 'plain.pem');
  writeFileSync(src, plain, { mode: 0o600 });
  const sha1 = openssl(['pkcs8', '-topk8', '-in', src, '-v2', 'aes-128-cbc', '-v2prf', 'hmacWithSHA1', '-passout', `pass:${PASS}`]);
  t.equal(sha1.status, 0, sha1.stderr);
  t.equal(keyEncryption(sha1.stdout, 'sha1.pem').prf, 'sha1');
  t.equal(await decryptPrivateKeyPem(sha1.stdout, PASS, 'sha1.pem'), plain);
});

t.test('a key file asking for an absurd scrypt cost is refused as corrupt, not derived', async (t) => {
  // N=2^20, r=8 wants 1 GiB per guess: openssl itself will not write that under its default limit, so build it.
  for (const [N, p] of [[1 << 20, 1], [16_384, 1000], [12_345, 1]] as const) {
    const started = Date.now();
    await t.rejects(decryptPrivateKeyPem(scryptKeyFile(N, 8, p), PASS, 'hostile.pem'), { code: 'GW_PKI_CORRUPT_PEM' }, `N=${N} p=${p}`);
    t.ok(Date.now() - started < 2_000, 'refused without deriving');
  }
});

/** An EncryptedPrivateKeyInfo with the given scrypt parameters around random bytes. */
function scryptKeyFile(N: number, r: number, p: number): string {
  const { asn1 } = forge;
  const seq = (v: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, v);
  const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
  const oct = (n: number) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, randomBytes(n).toString('binary'));
  const int = (n: number) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
  const der = seq([
    seq([oid('1.2.840.113549.1.5.13'), seq([
      seq([oid('1.3.6.1.4.1.11591.4.11'), seq([oct(16), int(N), int(r), int(p)])]),
      seq([oid('2.16.840.1.101.3.4.1.42'), oct(16)]),
    ])]),
    oct(144),
  ]);
  const b64 = Buffer.from(asn1.toDer(der).getBytes(), 'binary').toString('base64');
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${b64}\n-----END ENCRYPTED PRIVATE KEY-----\n`;
}

t.test('a wrong passphrase is reported as such, naming the file', async (t) => {
  const file = join(tmp, 'k2.pem');
  writeFileSync(file, encryptPrivateKeyPem(plain, 'right-passphrase'), { mode: 0o600 });
  await t.rejects(loadEncryptedKey(file, 'wrong-passphrase'), { code: 'GW_PKI_WRONG_PASSPHRASE', message: new RegExp(`wrong passphrase for ${file}`) });
});

t.test('a key file readable by group or others is refused, naming the file and mode', async (t) => {
  const file = join(tmp, 'k3.pem');
  writeFileSync(file, encryptPrivateKeyPem(plain, 'right-passphrase'), { mode: 0o600 });
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    chmodSync(file, mode);
    await t.rejects(loadEncryptedKey(file, 'right-passphrase'), { code: 'GW_PKI_KEY_FILE_TOO_OPEN', message: new RegExp(`${file} is readable by other users \\(mode 0${mode.toString(8)}\\)`) });
  }
  chmodSync(file, 0o400);
  t.ok(await loadEncryptedKey(file, 'right-passphrase'), 'owner read-only is fine');
});

t.test('a corrupt or truncated key is a corrupt-PEM error, not a passphrase error', async (t) => {
  const enc = encryptPrivateKeyPem(plain, 'right-passphrase');
  const lines = enc.split('\n');
  const variants = {
    truncated: lines.slice(0, 2).join('\n') + '\n-----END ENCRYPTED PRIVATE KEY-----\n',
    garbage: 'hello world\n',
    empty: '',
    wrongType: plain,
  };
  for (const [what, text] of Object.entries(variants)) {
    await t.rejects(decryptPrivateKeyPem(text, 'right-passphrase', `/x/${what}`), { code: 'GW_PKI_CORRUPT_PEM' }, what);
  }
  const file = join(tmp, 'k4.pem');
  writeFileSync(file, 'not a key', { mode: 0o600 });
  t.throws(() => loadPlainKey(file), { code: 'GW_PKI_CORRUPT_PEM', message: new RegExp(file) });
});

t.test('a missing key file is an unreadable error naming it', async (t) => {
  await t.rejects(loadEncryptedKey(join(tmp, 'nope.pem'), 'x'), { code: 'GW_PKI_UNREADABLE', message: /nope\.pem: ENOENT/ });
});
