/**
 * The TLS protocol policy of every listener the gateway opens (8786, 8787,
 * the credentials port): TLS 1.2+ only, AEAD suites with forward secrecy,
 * server cipher order, no renegotiation, no resumption. One definition so the ports cannot
 * drift apart; graded by testssl.sh and sslscan in test/hardening/.
 */
import { constants } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';

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

export const TLS_POLICY = {
  ciphers: CIPHERS,
  minVersion: 'TLSv1.2',
  honorCipherOrder: true,
  ecdhCurve: 'X25519:P-256:P-384',
  // No resumption: Dask (tornado) never resumes sessions, and stateless tickets cost
  // ~20% of the CPU of a full mTLS handshake and ~9 KiB per connection (bench/FINDINGS.md).
  // TLS 1.3 still sends tickets, for stateful sessions that are never cached: every
  // connection is a full handshake, so its certificate is always checked afresh.
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_CIPHER_SERVER_PREFERENCE | constants.SSL_OP_NO_TICKET,
} as const satisfies SecureContextOptions;

/** The cluster's own certificate, key and CA under the policy: what a reload swaps in. */
export function secureContextOptions(m: { readonly keyPem: string; readonly certPem: string; readonly caPem: string }): SecureContextOptions {
  return { key: m.keyPem, cert: m.certPem, ca: m.caPem, ...TLS_POLICY };
}
