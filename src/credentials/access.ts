/**
 * Who may read credentials: a TLS peer whose certificate chains to the
 * cluster CA and names a worker or admin of this cluster, not revoked, not
 * expired. Decided on every request (not once per connection), so a
 * revocation or a certificate expiry stops a keep-alive connection at its
 * next request even before the session registry closes it.
 */
import type { TLSSocket } from 'node:tls';
import { checkPeerCertificate, reasonFromOpenSSL, normalizeSerial, parseSubjectAltName, peerLeafCertificate, type RefusalReason } from '../pki/peer-certificate.js';
import { formatSpiffe, type Role } from '../pki/identity.js';

export const ALLOWED_ROLES: readonly Role[] = ['worker', 'admin'];

export type Access =
  | { readonly ok: true; readonly identity: string; readonly role: Role; readonly serial: string }
  | { readonly ok: false; readonly reason: RefusalReason; readonly status: 401 | 403; readonly serial?: string; readonly identity?: string };

/** Authenticated but not entitled (403) versus not authenticated at all (401). */
const FORBIDDEN: ReadonlySet<RefusalReason> = new Set(['wrong_role', 'revoked', 'wrong_cluster', 'wrong_eku']);

export function checkAccess(socket: TLSSocket, o: { clusterId: string; isRevoked: (serial: string) => boolean; now: Date; allowMissingEku?: boolean }): Access {
  const cert = peerLeafCertificate(socket);
  if (!cert) return { ok: false, reason: 'no_certificate', status: 401 };
  if (!socket.authorized) {
    const reason = reasonFromOpenSSL(String(socket.authorizationError ?? ''));
    return { ok: false, reason, status: FORBIDDEN.has(reason) ? 403 : 401, serial: normalizeSerial(cert.serialNumber) };
  }
  const v = checkPeerCertificate(cert, { clusterId: o.clusterId, allowedRoles: ALLOWED_ROLES, isRevoked: o.isRevoked, now: o.now, allowMissingEku: o.allowMissingEku === true });
  if (!v.ok) {
    // The chain is verified here, so the URI SAN is the CA's word: name it in the audit line even when checkPeerCertificate stopped before reading it (revoked, expired).
    const uris = parseSubjectAltName(cert.subjectAltName).filter((e) => e.type === 'URI');
    const identity = v.uri ?? (uris.length === 1 ? uris[0]!.value : undefined);
    return { ok: false, reason: v.reason, status: FORBIDDEN.has(v.reason) ? 403 : 401, ...(v.serial ? { serial: v.serial } : {}), ...(identity ? { identity } : {}) };
  }
  return { ok: true, identity: formatSpiffe(v.identity), role: v.identity.role, serial: v.serial };
}
