/**
 * The PKI's public API. pki/ owns identities, certificates, keys at rest and
 * the state directory; it never opens a socket. Other areas import from here.
 */
export * from './identity.js';
export { checkPeerCertificate, reasonFromOpenSSL, normalizeSerial, parseSubjectAltName,
  type PeerVerdict, type PeerCheckOptions, type RefusalReason } from './peer-certificate.js';
export { pkiError } from './errors.js';
export { initCluster, type InitOptions, type InitResult } from './init.js';
export { issueCertificate, parseIssuableRole, ISSUABLE_ROLES, type IssueOptions, type IssuedCertificate, type IssuableRole } from './issue.js';
export { revokeCertificate, readRevokedSerials, refreshCrl, parseReason, CRL_VALIDITY_DAYS, type RevokeOptions, type RevokeResult } from './revocation.js';
export { loadServerMaterial, loadPemMaterial, readCrlSerials, type ServerMaterial, type PemMaterialOptions } from './server-material.js';
export { resolvePassphrase, PASSPHRASE_ENV, type PassphraseSource } from './passphrase.js';
export { readState, readIndex, readRevocationList, requireInitialized, statusOf,
  type ClusterState, type IndexEntry, type CertIndex, type RevocationList, type RevocationEntry, type CertStatus } from './records.js';
export { FILES, statePath, withLock, writeFileAtomic, writeJsonAtomic, ensurePrivateDir, type StateFile } from './state-dir.js';
export { assertPrivateFile, loadEncryptedKey, loadPlainKey } from './keystore.js';
export { KEY_TYPES, isKeyType, type KeyType, type CrlReason, CRL_REASONS } from './x509.js';
export { writeBundle, checkOutDir, bundlePaths, daskYaml, securitySnippet, commandLine, GATEWAY_PORT, type BundleFiles } from './bundle.js';
export { buildPkcs12, type P12Input } from './p12.js';
