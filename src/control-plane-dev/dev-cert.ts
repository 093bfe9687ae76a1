/**
 * A development CA and server certificate for the reference receiver
 * (127.0.0.1, ::1, localhost), kept in a directory beside its database and
 * reused on the next start. Gateways pin the CA with --control-plane-ca.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EKU } from '../pki/identity.js';
import { KeyUsage, createCertificate, generateKeyPair, privateKeyToPem, randomSerial } from '../pki/x509.js';

export interface DevTls {
  readonly caPath: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export async function devTls(dir: string, hosts: { dns: string[]; ip: string[] } = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] }): Promise<DevTls> {
  const caPath = join(dir, 'ca.pem');
  const certPath = join(dir, 'server.pem');
  const keyPath = join(dir, 'server-key.pem');
  if (existsSync(caPath) && existsSync(certPath) && existsSync(keyPath)) {
    return { caPath, certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  const notBefore = new Date(now - 3600_000);
  const notAfter = new Date(now + 365 * 86_400_000);
  const ca = await generateKeyPair();
  const caPem = await createCertificate({
    commonName: 'scheduler-gateway control-plane-dev CA', serial: randomSerial(), notBefore, notAfter,
    publicKey: ca.publicKey, selfSigningKey: ca.privateKey, basicConstraints: { ca: true, pathLen: 0 },
    keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign,
  });
  const leaf = await generateKeyPair();
  const certPem = await createCertificate({
    commonName: 'control-plane-dev', serial: randomSerial(), notBefore, notAfter, publicKey: leaf.publicKey,
    issuer: { certPem: caPem, privateKey: ca.privateKey }, sans: hosts, eku: [EKU.serverAuth],
    basicConstraints: { ca: false }, keyUsage: KeyUsage.digitalSignature,
  });
  const keyPem = await privateKeyToPem(leaf.privateKey);
  writeFileSync(caPath, caPem, { mode: 0o644 });
  writeFileSync(certPath, certPem, { mode: 0o644 });
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  return { caPath, certPem, keyPem };
}
