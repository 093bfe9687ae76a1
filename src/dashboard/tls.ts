/**
 * TLS of 8787: the same policy as 8786 (TLS 1.2+, AEAD suites with forward
 * secrecy, no renegotiation). The certificate is the cluster's gateway
 * certificate, or a publicly trusted one from --dashboard-tls-cert/-key so
 * browsers need no extra CA. The cluster CA is always the client-certificate
 * trust anchor.
 */
import { readFileSync, statSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import type { TrustMaterial } from '../runtime/context.js';
import { dashboardError } from './errors.js';
import { TLS_POLICY } from '../pki/tls-policy.js';

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export function certificateFiles(cert: string | undefined, key: string | undefined): CertificateFiles | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw dashboardError('tlsPair');
  return { cert, key };
}

export function dashboardTls(m: TrustMaterial, files: CertificateFiles | undefined): SecureContextOptions {
  const own = files ? { cert: readPem(files.cert, false), key: readPem(files.key, true) } : { cert: m.certPem, key: m.keyPem };
  return {
    ...own,
    ca: m.caPem,
    ...TLS_POLICY,
  };
}

function readPem(file: string, secret: boolean): string {
  try {
    if (secret && (statSync(file).mode & 0o077) !== 0) throw new Error('other users can read it; run chmod 600');
    const pem = readFileSync(file, 'utf8');
    if (!pem.includes('-----BEGIN ')) throw new Error('not a PEM file');
    return pem;
  } catch (e) {
    throw dashboardError('tlsFile', { file, reason: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
  }
}
