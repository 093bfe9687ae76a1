/**
 * The TLS server options of port 8786: the shared protocol policy
 * (pki/tls-policy.ts) plus a client certificate requested. Verification failures are not fatal inside OpenSSL
 * (rejectUnauthorized false) so the terminator can audit the precise reason
 * before it destroys the socket; nothing is forwarded before that check.
 */
import type { TlsOptions } from 'node:tls';
import type { TrustMaterial } from '../runtime/context.js';
import { secureContextOptions } from '../pki/tls-policy.js';

export { secureContextOptions };

export function serverOptions(m: TrustMaterial): TlsOptions {
  return {
    ...secureContextOptions(m),
    requestCert: true,
    rejectUnauthorized: false,
    // The handshake deadline is ours (terminator.ts); Node's is a fallback.
    handshakeTimeout: 120_000,
  };
}
