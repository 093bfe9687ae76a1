/**
 * Decides whether a verified TLS peer certificate may act on this gateway.
 * One predicate shared by 8786, 8787 (client-certificate login) and the
 * credentials endpoint so the call sites cannot drift. Pure: the caller
 * supplies the clock and the revocation set.
 */
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { EKU, parseSpiffe, type Identity, type Role } from './identity.js';

export type RefusalReason =
  | 'no_certificate'
  | 'unknown_ca'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'chain_too_long'
  | 'self_signed'
  | 'bad_certificate'
  | 'ca_as_leaf'
  | 'missing_uri_san'
  | 'multiple_uri_sans'
  | 'malformed_identity'
  | 'wrong_cluster'
  | 'wrong_role'
  | 'wrong_eku';

/** What checkPeerCertificate reads of a certificate: an X509Certificate has it, and so has peerLeafCertificate()'s answer. */
export type CertificateFacts = Pick<X509Certificate, 'serialNumber' | 'ca' | 'validFrom' | 'validTo' | 'subjectAltName' | 'keyUsage'>;

/**
 * The facts of the peer's leaf certificate, from the object Node builds for
 * getPeerCertificate() (~10 µs). Not TLSSocket#getPeerX509Certificate(): on
 * Node 20.20 every call keeps a reference to the peer's X509 that is never
 * released (about 4.6 KiB per connection: RSS grew by that much per handshake
 * under churn with it, and stayed flat without it; bench/FINDINGS.md). And not
 * `new X509Certificate(raw)`: parsing the DER again costs ~100 µs, a tenth of
 * a full handshake. Both objects carry the same strings (Node formats them
 * with the same code), including the quoting of odd SAN entries.
 */
export function peerLeafCertificate(socket: TLSSocket): CertificateFacts | undefined {
  const c = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
  if (!c?.raw?.length) return undefined;
  // @types/node declares keyUsage string[]; at run time both objects leave it undefined without an EKU extension.
  return { serialNumber: c.serialNumber, ca: c.ca, validFrom: c.valid_from, validTo: c.valid_to, subjectAltName: c.subjectaltname, keyUsage: c.ext_key_usage as string[] };
}

/**
 * The peer's leaf certificate as DER, for re-checking a live session when a
 * CA leaves the trust store (runtime/sessions.ts): read then, never per
 * connection. Undefined for a socket without a peer certificate.
 */
export function peerCertificateDer(socket: object): Buffer | undefined {
  const raw = 'getPeerCertificate' in socket && typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false)?.raw : undefined;
  return raw?.length ? raw : undefined;
}

export type PeerVerdict =
  | { ok: true; identity: Identity; serial: string; notAfter: Date }
  | { ok: false; reason: RefusalReason; detail?: string; serial?: string; uri?: string };

/**
 * Maps OpenSSL's verification error (tls.TLSSocket#authorizationError) to
 * our refusal reasons. Anything unlisted is a bad certificate.
 */
export function reasonFromOpenSSL(code: string): RefusalReason {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'CERT_REVOKED':
      return 'revoked';
    case 'CERT_CHAIN_TOO_LONG':
    // An intermediate under the path-length-0 cluster CA: the chain is longer than the CA allows.
    case 'PATH_LENGTH_EXCEEDED':
      return 'chain_too_long';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'self_signed';
    case 'INVALID_PURPOSE':
      return 'wrong_eku';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'CERT_SIGNATURE_FAILURE':
      return 'unknown_ca';
    default:
      return 'bad_certificate';
  }
}

/** Normalized serial: lower-case hex without leading zeros ("0" for zero). */
export function normalizeSerial(hex: string): string {
  const s = hex.replace(/[^0-9a-fA-F]/g, '').toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/**
 * Splits Node's X509Certificate#subjectAltName ("DNS:a, URI:spiffe://x, ...").
 * Node quotes entries containing separators as JSON strings; honour that so a
 * comma inside a URI cannot smuggle a second entry.
 */
export function parseSubjectAltName(san: string | undefined): Array<{ type: string; value: string }> {
  if (!san) return [];
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(j, k + 1)) as string;
      } catch {
        value = san.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = san.indexOf(', ', j);
      const end = comma < 0 ? san.length : comma;
      value = san.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    const next = san.indexOf(', ', j);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

export interface PeerCheckOptions {
  clusterId: string;
  allowedRoles: readonly Role[];
  isRevoked: (serial: string) => boolean;
  now: Date;
  /** EKU the peer must hold on this port: clientAuth for every inbound listener. */
  requiredEku?: string;
  /**
   * Accept a certificate with no EKU extension at all (RFC 5280 reads that as
   * "any purpose"): only for a bring-your-own PKI that omits EKUs
   * (--allow-missing-eku). A certificate that lists EKUs must list the one required.
   */
  allowMissingEku?: boolean;
}

/**
 * Checks a certificate that OpenSSL already chained to the cluster CA.
 * Order matters for audit quality: structural problems first, then identity.
 */
export function checkPeerCertificate(cert: CertificateFacts, opts: PeerCheckOptions): PeerVerdict {
  const serial = normalizeSerial(cert.serialNumber);
  if (cert.ca) return { ok: false, reason: 'ca_as_leaf', serial };
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (opts.now < notBefore) return { ok: false, reason: 'not_yet_valid', serial };
  if (opts.now > notAfter) return { ok: false, reason: 'expired', serial };
  if (opts.isRevoked(serial)) return { ok: false, reason: 'revoked', serial };
  const uris = parseSubjectAltName(cert.subjectAltName).filter((e) => e.type === 'URI');
  if (uris.length === 0) return { ok: false, reason: 'missing_uri_san', serial };
  if (uris.length > 1) return { ok: false, reason: 'multiple_uri_sans', serial };
  const uri = uris[0]!.value;
  const identity = parseSpiffe(uri);
  if (!identity) return { ok: false, reason: 'malformed_identity', serial, uri };
  if (identity.cluster !== opts.clusterId) return { ok: false, reason: 'wrong_cluster', serial, uri };
  if (!opts.allowedRoles.includes(identity.role)) return { ok: false, reason: 'wrong_role', serial, uri };
  const eku = opts.requiredEku ?? EKU.clientAuth;
  const usages = cert.keyUsage; // Node names the EKU list keyUsage; undefined: no EKU extension.
  if (usages === undefined && !opts.allowMissingEku) return { ok: false, reason: 'wrong_eku', detail: 'the certificate has no extended key usage; clientAuth is required (--allow-missing-eku relaxes this)', serial, uri };
  if (usages !== undefined && !usages.includes(eku)) return { ok: false, reason: 'wrong_eku', detail: `extended key usage lacks clientAuth (${eku})`, serial, uri };
  return { ok: true, identity, serial, notAfter };
}
