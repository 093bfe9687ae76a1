/**
 * Decides whether a TLS peer that finished its handshake may reach the
 * scheduler: the chain verdict from OpenSSL first (mapped to a precise
 * reason), then the shared certificate predicate (cluster, role, validity,
 * revocation, EKU). Reads the socket, never writes to it.
 */
import type { TLSSocket } from 'node:tls';
import { checkPeerCertificate, normalizeSerial, parseSubjectAltName, peerLeafCertificate, reasonFromOpenSSL, type PeerVerdict } from '../pki/peer-certificate.js';
import type { Role } from '../pki/identity.js';

/** Roles that may open a connection to the scheduler through 8786 (never scheduler or gateway). */
export const ALLOWED_ROLES: readonly Role[] = ['worker', 'client', 'admin'];

export type Authenticated = Extract<PeerVerdict, { ok: true }> & { uri: string; sanHosts: string[] };
/** A refusal; `uri` only when the chain verified, else the unverified `claimedUri` (forensics, never trusted). */
export type Refused = Extract<PeerVerdict, { ok: false }> & { claimedUri?: string };

export function authenticatePeer(
  socket: TLSSocket,
  opts: { clusterId: string; isRevoked: (serial: string) => boolean; now: Date; allowMissingEku?: boolean },
): Authenticated | Refused {
  const cert = peerLeafCertificate(socket);
  if (!cert) return { ok: false, reason: 'no_certificate' };
  const uri = parseSubjectAltName(cert.subjectAltName).find((e) => e.type === 'URI')?.value;
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'UNKNOWN');
    return { ok: false, reason: reasonFromOpenSSL(code), detail: code, serial: normalizeSerial(cert.serialNumber), ...(uri ? { claimedUri: uri } : {}) };
  }
  const verdict = checkPeerCertificate(cert, { clusterId: opts.clusterId, allowedRoles: ALLOWED_ROLES, isRevoked: opts.isRevoked, now: opts.now, allowMissingEku: opts.allowMissingEku === true });
  if (!verdict.ok) return { ...verdict, ...(verdict.uri ?? uri ? { uri: verdict.uri ?? uri } : {}) };
  const sanHosts = parseSubjectAltName(cert.subjectAltName)
    .filter((e) => e.type === 'DNS' || e.type === 'IP Address')
    .map((e) => e.value);
  return { ...verdict, uri: uri!, sanHosts };
}
