/**
 * The TLS policy of port 8786 in one place: TLS 1.2+ only, AEAD suites with
 * forward secrecy, server cipher order, no renegotiation, client certificate
 * requested. Verification failures are not fatal inside OpenSSL
 * (rejectUnauthorized false) so the terminator can audit the precise reason
 * before it destroys the socket; nothing is forwarded before that check.
 */
import { constants } from 'node:crypto';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { TrustMaterial } from '../gateway/context.js';

const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
export const CIPHERS = [...TLS13_SUITES, ...TLS12_SUITES].join(':');

/** The protocol policy alone, for every TLS listener of the gateway to spread into its options. */
export const TLS_POLICY = {
  ciphers: CIPHERS,
  minVersion: 'TLSv1.2',
  honorCipherOrder: true,
  ecdhCurve: 'X25519:P-256:P-384',
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_CIPHER_SERVER_PREFERENCE,
} as const satisfies SecureContextOptions;

/** What changes on reload: swapped with server.setSecureContext(), never per connection. */
export function secureContextOptions(m: TrustMaterial): SecureContextOptions {
  return { key: m.keyPem, cert: m.certPem, ca: m.caPem, ...TLS_POLICY };
}

export function serverOptions(m: TrustMaterial): TlsOptions {
  return {
    ...secureContextOptions(m),
    requestCert: true,
    rejectUnauthorized: false,
    // The handshake deadline is ours (terminator.ts); Node's is a fallback.
    handshakeTimeout: 120_000,
  };
}
