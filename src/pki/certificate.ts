/**
 * The one place Node's X509Certificate is used. Its job: reading and checking
 * certificates (parse, issuer and signature, key match, the blocks of a PEM
 * bundle) with the parser TLS itself uses, so what we check is what a
 * handshake sees. Making certificates is x509.ts's (@peculiar/x509); a peer's
 * certificate on a live socket is read by peer-certificate.ts without parsing
 * it again.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';

/** Throws when the PEM holds no certificate Node can parse. */
export function parseCertificatePem(pem: string): X509Certificate {
  return new X509Certificate(pem);
}

/** True when one of the CAs in caPem issued and signed the certificate (DER or PEM); false for anything unparsable. */
export function issuedByAny(cert: Buffer | string, caPem: string): boolean {
  try {
    const leaf = new X509Certificate(cert);
    return splitPemCertificates(caPem).some((pem) => {
      const ca = new X509Certificate(pem);
      return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
    });
  } catch {
    return false;
  }
}

/** Every PEM CERTIFICATE block in a string, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((b) => b + '\n') ?? [];
}

/** True when the private key belongs to the certificate's public key. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  const cert = new X509Certificate(certPem);
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.compare(fromKey, fromCert) === 0;
}
