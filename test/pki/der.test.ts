import t from 'tap';
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';
import { DerError, TAG, decodeDer, derInteger, derOctets, derOid, derSequence, oidToString, type DerNode } from '../../src/pki/der.js';
import { pbes2Encrypt, parseEncryptedKeyInfo, Pbes2FormatError } from '../../src/pki/pbes2.js';

// node-forge stays in the tests as an independent DER implementation to check against.
const forgeParse = (b: Buffer) => forge.asn1.fromDer(b.toString('binary'), true);

t.test('what the writer makes, forge reads as the same values', async (t) => {
  const oids = ['1.2.840.113549.1.5.13', '1.3.6.1.4.1.11591.4.11', '2.16.840.1.101.3.4.1.42', '2.5.29.20', '2.999.3'];
  for (const o of oids) {
    const node = forgeParse(derOid(o));
    t.equal(forge.asn1.derToOid(node.value as string), o, `OID ${o}`);
    t.equal(oidToString(decodeDer(derOid(o)).content), o, `and back: ${o}`);
  }
  for (const n of [0, 1, 127, 128, 255, 256, 16_384, 65_535, 2 ** 31 - 1]) {
    const der = derInteger(n);
    t.equal(der.toString('hex'), Buffer.from(forge.asn1.toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false, forge.asn1.integerToDer(n).getBytes())).getBytes(), 'binary').toString('hex'), `INTEGER ${n} as forge writes it`);
  }
  for (const len of [0, 1, 127, 128, 255, 256, 70_000]) {
    const content = randomBytes(len);
    const der = derSequence([derOctets(content), derInteger(len)]);
    const f = forgeParse(der);
    t.equal(Buffer.from((f.value as forge.asn1.Asn1[])[0]!.value as string, 'binary').compare(content), 0, `OCTET STRING of ${len} bytes`);
    const d = decodeDer(der);
    t.equal(d.tag, TAG.SEQUENCE);
    t.equal(d.children[0]!.content.compare(content), 0);
  }
});

t.test('a key file the writer made parses the same with both readers', async (t) => {
  const der = pbes2Encrypt(randomBytes(100), 'a passphrase of some length');
  const walk = (n: DerNode): unknown => (n.children.length ? n.children.map(walk) : n.content.toString('hex'));
  const walkForge = (n: forge.asn1.Asn1): unknown => (Array.isArray(n.value) ? n.value.map(walkForge) : Buffer.from(n.value as string, 'binary').toString('hex'));
  t.strictSame(walk(decodeDer(der)), walkForge(forgeParse(der)));
  t.equal(parseEncryptedKeyInfo(der).kdf.kdf, 'scrypt');
});

t.test('hostile DER is refused with a DerError, never read past its end', async (t) => {
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['a lone tag', Buffer.from([0x30])],
    ['length beyond the data', Buffer.from([0x04, 0x05, 1, 2])],
    ['indefinite length', Buffer.from([0x30, 0x80, 0, 0])],
    ['a length of 5 bytes', Buffer.from([0x04, 0x85, 0, 0, 0, 0, 1, 0])],
    ['a long length cut short', Buffer.from([0x04, 0x82, 0x01])],
    ['high tag number', Buffer.from([0x1f, 0x81, 0x01, 0x00])],
    ['trailing bytes', Buffer.from([0x05, 0x00, 0x00])],
    ['a child longer than its parent', Buffer.from([0x30, 0x03, 0x04, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05])],
    ['nesting 64 deep', Buffer.concat([...Array.from({ length: 64 }, (_, i) => Buffer.from([0x30, 2 * (63 - i)])), Buffer.alloc(0)])],
  ];
  for (const [what, der] of cases) t.throws(() => decodeDer(der), DerError, what);
  t.throws(() => oidToString(Buffer.from([0x2a, 0x86])), DerError, 'a truncated OID');
  t.throws(() => oidToString(Buffer.from([0x2a, 0x80, 0x01])), DerError, 'a non-minimal OID arc');
  t.throws(() => oidToString(Buffer.from([0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), DerError, 'an OID arc beyond 2^53');
});

t.test('every mutation of a key file is either read or refused as a format error', async (t) => {
  const good = pbes2Encrypt(randomBytes(64), 'a passphrase of some length');
  const deadline = Date.now() + 5_000;
  let refused = 0;
  let n = 0;
  for (; n < 20_000 && Date.now() < deadline; n++) {
    const b = Buffer.from(good);
    const edits = 1 + (n % 4);
    for (let i = 0; i < edits; i++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
    const cut = n % 5 === 0 ? b.subarray(0, Math.floor(Math.random() * b.length)) : b;
    try {
      parseEncryptedKeyInfo(cut);
    } catch (e) {
      if (!(e instanceof Pbes2FormatError)) throw e;
      refused++;
    }
  }
  t.ok(n >= 1000, `${n} mutations tried`);
  t.ok(refused > 0, `${refused} refused`);
});
