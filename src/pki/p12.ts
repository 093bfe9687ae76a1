/**
 * The one place node-forge is used. Its job: PKCS#12 for browsers, built with
 * forge's ASN.1 and PBE primitives (the PKCS#12 key derivation for the MAC is
 * not in Node's crypto). The key files' own DER is der.ts's. forge's own toPkcs12Asn1 only takes RSA keys (it re-encodes the key and
 * parses certificates into its RSA-only model), so the PFX is assembled here
 * from DER: certificates as they are, the key as Node's PKCS#8, shrouded with
 * PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), integrity by the PKCS#12 HMAC-SHA1 MAC
 * every importer understands.
 */
import forge from 'node-forge';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { parseCertificatePem } from './certificate.js';

const { asn1, pki } = forge;
const ITERATIONS = 10_000; // forge encodes the MAC count as a 16-bit-safe INTEGER: stay < 65536

export interface P12Input {
  /** Leaf first, then the CA. */
  certPems: string[];
  keyPem: string;
  password: string;
  friendlyName: string;
}

export function buildPkcs12(input: P12Input): Buffer {
  const certDers = input.certPems.map((p) => parseCertificatePem(p).raw);
  const keyId = createHash('sha1').update(certDers[0]!).digest().toString('binary');
  const attrs = bagAttributes(keyId, input.friendlyName);

  const certBags = certDers.map((der, i) => seq([
    oid(pki.oids.certBag!),
    ctx0([seq([oid(pki.oids.x509Certificate!), ctx0([octets(der.toString('binary'))])])]),
    ...(i === 0 ? [attrs] : []),
  ]));

  const pkcs8Der = createPrivateKey(input.keyPem).export({ type: 'pkcs8', format: 'der' });
  const keyInfo = asn1.fromDer(pkcs8Der.toString('binary'));
  const shrouded = pki.encryptPrivateKeyInfo(keyInfo, input.password, {
    algorithm: 'aes256', count: ITERATIONS, saltSize: 16, prfAlgorithm: 'sha256',
  } as forge.pki.EncryptionOptions);
  const keyBag = seq([oid(pki.oids.pkcs8ShroudedKeyBag!), ctx0([shrouded]), attrs]);

  const safe = seq([dataContent(seq(certBags)), dataContent(seq([keyBag]))]);
  const safeDer = asn1.toDer(safe).getBytes();
  const macSalt = randomBytes(16).toString('binary');
  const macKey = forge.pkcs12.generateKey(input.password, new forge.util.ByteStringBuffer(macSalt), 3, ITERATIONS, 20);
  const hmac = forge.hmac.create();
  hmac.start('sha1', macKey.getBytes());
  hmac.update(safeDer);
  const macData = seq([
    seq([seq([oid(pki.oids.sha1!), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(macSalt),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(ITERATIONS).getBytes()),
  ]);
  const pfx = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(3).getBytes()),
    seq([oid(pki.oids.data!), ctx0([octets(safeDer)])]),
    macData,
  ]);
  return Buffer.from(asn1.toDer(pfx).getBytes(), 'binary');
}

function bagAttributes(localKeyId: string, friendlyName: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
    seq([oid(pki.oids.localKeyId!), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [octets(localKeyId)])]),
    seq([oid(pki.oids.friendlyName!), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, friendlyName) /* forge writes UTF-16BE */,
    ])]),
  ]);
}

function dataContent(contents: forge.asn1.Asn1): forge.asn1.Asn1 {
  return seq([oid(pki.oids.data!), ctx0([octets(asn1.toDer(contents).getBytes())])]);
}

const seq = (v: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, v);
const ctx0 = (v: forge.asn1.Asn1[]) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, v);
const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
const octets = (bytes: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
