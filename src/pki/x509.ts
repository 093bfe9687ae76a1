/**
 * The one place @peculiar/x509 is used. Its job: making and signing
 * certificates and CRLs (over Node's WebCrypto), and reading the structures
 * Node's X509Certificate does not expose (CRLs, CRL distribution points).
 * Reading and checking certificates is certificate.ts's (Node's parser, what
 * TLS sees); PKCS#12 is p12.ts's (node-forge). This module knows DER and
 * algorithms, nothing about clusters or files: ca.ts, issue.ts and the test
 * forger decide what goes into a certificate.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { derInteger } from './der.js';

type CryptoKey = webcrypto.CryptoKey;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const KEY_TYPES = ['ec-p256', 'rsa-3072'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export function isKeyType(s: string): s is KeyType {
  return (KEY_TYPES as readonly string[]).includes(s);
}

export interface KeyPair {
  readonly keyType: KeyType;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

const ALGORITHMS: Record<KeyType, { gen: EcKeyGenParams | RsaHashedKeyGenParams; sign: Algorithm | EcdsaParams }> = {
  'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  'rsa-3072': {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

const subtle = webcrypto.subtle;

export async function generateKeyPair(keyType: KeyType = 'ec-p256'): Promise<KeyPair> {
  const pair = (await subtle.generateKey(ALGORITHMS[keyType].gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return { keyType, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** Unencrypted PKCS#8 PEM; keystore.ts encrypts it before it touches a disk it keeps. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** Imports an unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1) as a signing pair. */
export async function importPrivateKeyPem(pem: string): Promise<KeyPair> {
  const priv = createPrivateKey(pem);
  const keyType = keyTypeOf(priv.asymmetricKeyType, priv.asymmetricKeyDetails);
  const alg = ALGORITHMS[keyType].gen;
  const pkcs8 = priv.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' });
  const privateKey = await subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']);
  const publicKey = await subtle.importKey('spki', spki, alg, true, ['verify']);
  return { keyType, privateKey, publicKey };
}

function keyTypeOf(type: string | undefined, details: { namedCurve?: string; modulusLength?: number } | undefined): KeyType {
  if (type === 'ec' && details?.namedCurve === 'prime256v1') return 'ec-p256';
  if (type === 'rsa' && details?.modulusLength === 3072) return 'rsa-3072';
  throw new Error(`unsupported key: ${type ?? 'unknown'} ${details?.namedCurve ?? details?.modulusLength ?? ''}`.trim());
}

/**
 * A random positive serial: 16 bytes with the top bit cleared (positive in
 * DER) and the next bit set (fixed length, never a leading zero). 126 random
 * bits make a collision across concurrent issuers negligible; the index
 * still checks.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

export const KeyUsage = x509.KeyUsageFlags;

export interface SubjectAltNames {
  uri?: readonly string[];
  dns?: readonly string[];
  ip?: readonly string[];
}

export interface CertificateSpec {
  /** Subject common name. Authorization never reads it; it is for humans. */
  commonName: string;
  /** Extra subject attributes, e.g. { O: 'cluster' }. */
  organization?: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** The key the certificate certifies. */
  publicKey: CryptoKey;
  /** Who signs: absent means self-signed with `selfSigningKey`. */
  issuer?: { certPem: string; privateKey: CryptoKey };
  selfSigningKey?: CryptoKey;
  sans?: SubjectAltNames;
  /** EKU OIDs; undefined or null leaves the extension out. */
  eku?: readonly string[] | null;
  /** basicConstraints: isCA and optional pathLen; undefined leaves the extension out. */
  basicConstraints?: { ca: boolean; pathLen?: number };
  keyUsage?: number;
  /** CRL Distribution Points (non-critical), one URI each; empty or undefined leaves the extension out. */
  crlUrls?: readonly string[];
  extraExtensions?: x509.Extension[];
}

export async function createCertificate(spec: CertificateSpec): Promise<string> {
  const subject = subjectName(spec.commonName, spec.organization);
  const issuerCert = spec.issuer ? new x509.X509Certificate(spec.issuer.certPem) : undefined;
  const signingKey = spec.issuer?.privateKey ?? spec.selfSigningKey;
  if (!signingKey) throw new Error('createCertificate needs an issuer or a self-signing key');
  const exts: x509.Extension[] = [];
  if (spec.basicConstraints) {
    const { ca, pathLen } = spec.basicConstraints;
    exts.push(new x509.BasicConstraintsExtension(ca, ca ? pathLen : undefined, true));
  }
  if (spec.keyUsage !== undefined) exts.push(new x509.KeyUsagesExtension(spec.keyUsage, true));
  if (spec.eku) exts.push(new x509.ExtendedKeyUsageExtension([...spec.eku], false));
  const names = generalNames(spec.sans);
  // A certificate with an empty subject would need a critical SAN; ours always have a CN.
  if (names.length > 0) exts.push(new x509.SubjectAlternativeNameExtension(names, false));
  exts.push(await x509.SubjectKeyIdentifierExtension.create(spec.publicKey));
  const akiSource = issuerCert ? issuerCert.publicKey : spec.publicKey;
  exts.push(await x509.AuthorityKeyIdentifierExtension.create(akiSource));
  if (spec.crlUrls && spec.crlUrls.length > 0) exts.push(new x509.CRLDistributionPointsExtension([...spec.crlUrls], false));
  exts.push(...(spec.extraExtensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: spec.serial,
    subject,
    issuer: issuerCert ? issuerCert.subjectName : subject,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    publicKey: spec.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithm(signingKey),
    extensions: exts,
  });
  return cert.toString('pem') + '\n';
}

function subjectName(cn: string, o: string | undefined): x509.JsonName {
  const name: x509.JsonName = [{ CN: [cn] }];
  if (o !== undefined) name.push({ O: [o] });
  return name;
}

function generalNames(sans: SubjectAltNames | undefined): x509.JsonGeneralNames {
  if (!sans) return [];
  return [
    ...(sans.uri ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(sans.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(sans.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
}

function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  return key.algorithm.name === 'ECDSA' ? ALGORITHMS['ec-p256'].sign : ALGORITHMS['rsa-3072'].sign;
}

export const CRL_REASONS = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  cACompromise: x509.X509CrlReason.cACompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  certificateHold: x509.X509CrlReason.certificateHold,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
} as const;
export type CrlReason = keyof typeof CRL_REASONS;

export function isCrlReason(s: string): s is CrlReason {
  return Object.prototype.hasOwnProperty.call(CRL_REASONS, s);
}

export interface CrlSpec {
  caCertPem: string;
  caKey: CryptoKey;
  crlNumber: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: ReadonlyArray<{ serial: string; revokedAt: Date; reason: CrlReason }>;
}

const OID_CRL_NUMBER = '2.5.29.20';

export async function createCrl(spec: CrlSpec): Promise<string> {
  const ca = new x509.X509Certificate(spec.caCertPem);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subjectName,
    thisUpdate: spec.thisUpdate,
    nextUpdate: spec.nextUpdate,
    signingKey: spec.caKey,
    signingAlgorithm: signingAlgorithm(spec.caKey),
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(ca.publicKey),
      new x509.Extension(OID_CRL_NUMBER, false, derInteger(spec.crlNumber)),
    ],
    entries: spec.entries.map((e) => ({
      serialNumber: e.serial,
      revocationDate: e.revokedAt,
      // RFC 5280 5.3.1: omit the reason rather than write "unspecified".
      ...(e.reason === 'unspecified' ? {} : { reason: CRL_REASONS[e.reason] }),
    })),
  });
  // OpenSSL and every CRL consumer expect the RFC 7468 label "X509 CRL", not the library's "CRL".
  return pemEncode('X509 CRL', Buffer.from(crl.rawData));
}

/** RFC 7468 text encoding: base64 in 64-character lines between BEGIN/END lines. */
export function pemEncode(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface ParsedCrl {
  crlNumber: number | undefined;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  serials: string[];
}

/** Parses a CRL. Throws on anything malformed. */
export function parseCrl(pem: string): ParsedCrl {
  const crl = new x509.X509Crl(pem);
  const numExt = crl.getExtension(OID_CRL_NUMBER);
  const crlNumber = numExt ? parseInt(Buffer.from(numExt.value).subarray(2).toString('hex') || '0', 16) : undefined;
  return { crlNumber, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, serials: crl.entries.map((e) => e.serialNumber) };
}

/** True when caCertPem's key signed the CRL; false for any other key, algorithm or malformed input. */
export async function crlSignedBy(pem: string, caCertPem: string): Promise<boolean> {
  try {
    return await new x509.X509Crl(pem).verify({ publicKey: new x509.X509Certificate(caCertPem) });
  } catch {
    return false;
  }
}

/** The DNS and IP SANs and CRL Distribution Point URIs of a certificate: what a renewal of a server certificate keeps. */
export function serverNames(pem: string): { dns: string[]; ip: string[]; crlUrls: string[] } {
  const cert = new x509.X509Certificate(pem);
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const points = cert.getExtension(x509.CRLDistributionPointsExtension)?.distributionPoints ?? [];
  return {
    dns: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ip: names.filter((n) => n.type === 'ip').map((n) => n.value),
    crlUrls: points.flatMap((p) => p.distributionPoint?.fullName ?? []).flatMap((g) => (g.uniformResourceIdentifier ? [g.uniformResourceIdentifier] : [])),
  };
}
