/**
 * Test PKI: a fresh managed cluster per test (the real init/issue/revoke
 * code paths in a temp directory), and a forger for hostile certificates
 * (foreign CA, expired, wrong EKU, CA as leaf, chains too long, ...).
 * Nothing here is used by src/.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { initCluster } from '../../src/pki/init.js';
import { issueCertificate } from '../../src/pki/issue.js';
import { revokeCertificate } from '../../src/pki/revocation.js';
import { loadEncryptedKey } from '../../src/pki/keystore.js';
import { readIndex } from '../../src/pki/records.js';
import { statePath } from '../../src/pki/state-dir.js';
import { EKU, formatSpiffe, type Role } from '../../src/pki/identity.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import {
  createCertificate, generateKeyPair, importPrivateKeyPem, KeyUsage, privateKeyToPem, randomSerial, type KeyType,
} from '../../src/pki/x509.js';

export { EKU };

export interface ForgeIssuer {
  certPem: string;
  /** Unencrypted PEM private key of the issuer. */
  keyPem: string;
  /** Intermediates between the issuer and the root, leaf-first; sent along with the leaf. */
  chainPem?: string;
}

export interface ForgeOptions {
  /** Signer; omit for a self-signed certificate. A ForgedCertificate works here (intermediates). */
  issuer?: ForgeIssuer;
  commonName?: string;
  uris?: string[];
  dns?: string[];
  ips?: string[];
  /** EKU OIDs (see EKU); null omits the extension. Default [clientAuth]. */
  eku?: string[] | null;
  /** basicConstraints CA flag; default false. */
  isCA?: boolean;
  pathLen?: number;
  /** Leave basicConstraints out entirely. */
  omitBasicConstraints?: boolean;
  /** Key usage flags (KeyUsage.*); default digitalSignature (+keyCertSign|cRLSign when isCA). */
  keyUsage?: number;
  /** Default: now - 1 hour. */
  notBefore?: Date;
  /** Default: now + 30 days. */
  notAfter?: Date;
  keyType?: KeyType;
  serial?: string;
  /** Return a private key that does NOT match the certificate. */
  mismatchedKey?: boolean;
  /** Write NAME.pem, NAME-key.pem (0600) and NAME-chain.pem (leaf + intermediates) into this directory. */
  writeTo?: { dir: string; name: string };
}

export interface ForgedCertificate {
  certPem: string;
  keyPem: string;
  /** Leaf followed by the issuer's intermediates (not the root). */
  chainPem: string;
  serial: string;
  /** True when no issuer was given (a root or a self-signed leaf). */
  selfSigned: boolean;
  certPath?: string;
  keyPath?: string;
  chainPath?: string;
}

/** Builds any certificate a hostile or confused peer could present. */
export async function forgeCertificate(opts: ForgeOptions = {}): Promise<ForgedCertificate> {
  const keys = await generateKeyPair(opts.keyType ?? 'ec-p256');
  const issuerKeys = opts.issuer ? await importPrivateKeyPem(opts.issuer.keyPem) : undefined;
  const serial = opts.serial ?? randomSerial();
  const isCA = opts.isCA ?? false;
  const now = Date.now();
  const certPem = await createCertificate({
    commonName: opts.commonName ?? (isCA ? 'forged CA' : 'forged leaf'),
    serial,
    notBefore: opts.notBefore ?? new Date(now - 3_600_000),
    notAfter: opts.notAfter ?? new Date(now + 30 * 86_400_000),
    publicKey: keys.publicKey,
    ...(opts.issuer && issuerKeys
      ? { issuer: { certPem: opts.issuer.certPem, privateKey: issuerKeys.privateKey } }
      : { selfSigningKey: keys.privateKey }),
    sans: { uri: opts.uris ?? [], dns: opts.dns ?? [], ip: opts.ips ?? [] },
    eku: opts.eku === undefined ? [EKU.clientAuth] : opts.eku,
    ...(opts.omitBasicConstraints ? {} : { basicConstraints: { ca: isCA, ...(opts.pathLen !== undefined ? { pathLen: opts.pathLen } : {}) } }),
    keyUsage: opts.keyUsage ?? (isCA ? KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.digitalSignature : KeyUsage.digitalSignature),
  });
  const keyPem = opts.mismatchedKey
    ? await privateKeyToPem((await generateKeyPair(opts.keyType ?? 'ec-p256')).privateKey)
    : await privateKeyToPem(keys.privateKey);
  const chainPem = certPem + (opts.issuer?.chainPem ?? '');
  const out: ForgedCertificate = { certPem, keyPem, chainPem, serial: normalizeSerial(serial), selfSigned: !opts.issuer };
  if (opts.writeTo) {
    const { dir, name } = opts.writeTo;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    out.certPath = join(dir, `${name}.pem`);
    out.keyPath = join(dir, `${name}-key.pem`);
    out.chainPath = join(dir, `${name}-chain.pem`);
    writeFileSync(out.certPath, certPem, { mode: 0o644 });
    writeFileSync(out.keyPath, keyPem, { mode: 0o600 });
    writeFileSync(out.chainPath, chainPem, { mode: 0o644 });
  }
  return out;
}

/** A forged certificate's issuer form, for signing under it (intermediate chains). */
export function asIssuer(c: ForgedCertificate): ForgeIssuer {
  // Children send the issuer and its intermediates, never a self-signed root (the verifier holds that).
  return { certPem: c.certPem, keyPem: c.keyPem, chainPem: c.selfSigned ? '' : c.chainPem };
}

export interface TestIssued {
  certPem: string;
  keyPem: string;
  serial: string;
  uri: string;
  certPath: string;
  keyPath: string;
  caPath: string;
}

export interface TestCluster {
  /** The state directory (what --dir points at). */
  dir: string;
  /** Root of everything this cluster wrote; removed by cleanup(). */
  root: string;
  passphrase: string;
  clusterId: string;
  caPem: string;
  caPath: string;
  /** The CA's private key, decrypted (tests only: for forging under the real CA). */
  caKeyPem: string;
  gatewayCertPath: string;
  gatewayKeyPath: string;
  /**
   * Issues through the real issueCertificate and writes NAME.pem, NAME-key.pem,
   * ca.pem under root/issued/NAME. Role 'gateway' is forged under the CA
   * (the CLI never issues it) with the gateway URI and serverAuth only.
   */
  issue(role: Role, name: string, opts?: { days?: number }): Promise<TestIssued>;
  /** Revokes by serial if one matches, else by name. */
  revoke(serialOrName: string, reason?: string): Promise<{ serial: string }>;
  /** forgeCertificate with this cluster's CA as issuer unless opts.issuer says otherwise. */
  forge(opts?: ForgeOptions): Promise<ForgedCertificate>;
  cleanup(): void;
}

export async function makeTestCluster(opts: { cluster?: string; hosts?: string[]; keyType?: KeyType } = {}): Promise<TestCluster> {
  const root = mkdtempSync(join(tmpdir(), 'sgw-pki-'));
  const dir = join(root, 'state');
  const passphrase = randomBytes(18).toString('base64url');
  const clusterId = opts.cluster ?? `test-${randomBytes(4).toString('hex')}`;
  const init = await initCluster({
    dir, clusterId, passphrase, hosts: opts.hosts ?? ['localhost', '127.0.0.1', '::1'], ...(opts.keyType ? { keyType: opts.keyType } : {}),
  });
  const caPath = statePath(dir, 'caCert');
  const caKeyPem = await loadEncryptedKey(statePath(dir, 'caKey'), passphrase);
  const caIssuer: ForgeIssuer = { certPem: init.caPem, keyPem: caKeyPem };

  const writeIssued = (name: string, certPem: string, keyPem: string): Omit<TestIssued, 'serial' | 'uri' | 'certPem' | 'keyPem'> => {
    const out = join(root, 'issued', name);
    mkdirSync(out, { recursive: true, mode: 0o700 });
    const certPath = join(out, `${name}.pem`);
    const keyPath = join(out, `${name}-key.pem`);
    const issuedCaPath = join(out, 'ca.pem');
    writeFileSync(certPath, certPem, { mode: 0o644 });
    writeFileSync(keyPath, keyPem, { mode: 0o600 });
    writeFileSync(issuedCaPath, init.caPem, { mode: 0o644 });
    return { certPath, keyPath, caPath: issuedCaPath };
  };

  return {
    dir, root, passphrase, clusterId, caPem: init.caPem, caPath, caKeyPem,
    gatewayCertPath: statePath(dir, 'gatewayCert'),
    gatewayKeyPath: statePath(dir, 'gatewayKey'),
    async issue(role, name, o = {}) {
      if (role === 'gateway') {
        const uri = formatSpiffe({ cluster: clusterId, role: 'gateway' });
        const f = await forgeCertificate({ issuer: caIssuer, commonName: name, uris: [uri], dns: ['localhost'], ips: ['127.0.0.1'], eku: [EKU.serverAuth] });
        return { certPem: f.certPem, keyPem: f.keyPem, serial: f.serial, uri, ...writeIssued(name, f.certPem, f.keyPem) };
      }
      const r = await issueCertificate({ dir, passphrase, role, name, ...(o.days !== undefined ? { days: o.days } : {}) });
      return { certPem: r.certPem, keyPem: r.keyPem, serial: r.serial, uri: r.uri, ...writeIssued(name, r.certPem, r.keyPem) };
    },
    async revoke(serialOrName, reason) {
      const bySerial = readIndex(dir).certificates.some((e) => e.serial === normalizeSerial(serialOrName) && /^[0-9a-fA-F:]+$/.test(serialOrName));
      const r = await revokeCertificate({
        dir, passphrase, ...(bySerial ? { serial: serialOrName } : { name: serialOrName }),
        ...(reason !== undefined ? { reason: reason as never } : {}),
      });
      return { serial: r.serial };
    },
    forge(o = {}) {
      return forgeCertificate({ issuer: caIssuer, ...o });
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
