import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { decryptPrivateKeyPem, encryptPrivateKeyPem, loadEncryptedKey, loadPlainKey } from '../../src/pki/keystore.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgw-keystore-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const plain = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

t.test('keys are stored as AES-256 PBES2 PKCS#8 and come back identical', async (t) => {
  const enc = encryptPrivateKeyPem(plain, 'a good passphrase');
  t.match(enc, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  t.notMatch(enc, /BEGIN PRIVATE KEY/);
  const file = join(tmp, 'k1.pem');
  writeFileSync(file, enc, { mode: 0o600 });
  const { spawnSync } = await import('node:child_process');
  const info = spawnSync('openssl', ['asn1parse', '-in', file], { encoding: 'utf8' }).stdout;
  t.match(info, /PBES2/);
  t.match(info, /aes-256-cbc/);
  const back = loadEncryptedKey(file, 'a good passphrase');
  t.equal(createPrivateKey(back).export({ type: 'pkcs8', format: 'pem' }), plain);
});

t.test('a wrong passphrase is reported as such, naming the file', async (t) => {
  const file = join(tmp, 'k2.pem');
  writeFileSync(file, encryptPrivateKeyPem(plain, 'right-passphrase'), { mode: 0o600 });
  t.throws(() => loadEncryptedKey(file, 'wrong-passphrase'), { code: 'GW_PKI_WRONG_PASSPHRASE', message: new RegExp(`wrong passphrase for ${file}`) });
});

t.test('a key file readable by group or others is refused, naming the file and mode', async (t) => {
  const file = join(tmp, 'k3.pem');
  writeFileSync(file, encryptPrivateKeyPem(plain, 'right-passphrase'), { mode: 0o600 });
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    chmodSync(file, mode);
    t.throws(() => loadEncryptedKey(file, 'right-passphrase'), { code: 'GW_PKI_KEY_FILE_TOO_OPEN', message: new RegExp(`${file} is readable by other users \\(mode 0${mode.toString(8)}\\)`) });
  }
  chmodSync(file, 0o400);
  t.ok(loadEncryptedKey(file, 'right-passphrase'), 'owner read-only is fine');
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
    t.throws(() => decryptPrivateKeyPem(text, 'right-passphrase', `/x/${what}`), { code: 'GW_PKI_CORRUPT_PEM' }, what);
  }
  const file = join(tmp, 'k4.pem');
  writeFileSync(file, 'not a key', { mode: 0o600 });
  t.throws(() => loadPlainKey(file), { code: 'GW_PKI_CORRUPT_PEM', message: new RegExp(file) });
});

t.test('a missing key file is an unreadable error naming it', async (t) => {
  t.throws(() => loadEncryptedKey(join(tmp, 'nope.pem'), 'x'), { code: 'GW_PKI_UNREADABLE', message: /nope\.pem: ENOENT/ });
});
