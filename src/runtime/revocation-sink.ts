/**
 * Applies revocations that arrive from outside the host (control-plane
 * commands): persist first (revoked.json + CRL through the PKI library, or
 * the token store), so the revocation survives a restart and reaches every
 * process reading the state directory; then reload trust so new handshakes
 * are refused; then close every live session opened with the credential.
 * Each step is audited. Applying the same revocation twice is not an error:
 * the control plane delivers at least once.
 */
import type { Logger } from '../log/logger.js';
import type { RevocationSink, TrustSource } from './context.js';
import type { SessionRegistry } from './sessions.js';
import { GatewayError, isGatewayError } from '../errors/base.js';
import { normalizeSerial } from '../pki/peer-certificate.js';
import { revokeCertificate } from '../pki/revocation.js';
import { isCrlReason } from '../pki/x509.js';
import { TokenStore } from '../tokens/store.js';
import { resolvePassphrase } from '../pki/passphrase.js';
import type { GatewayContext } from './context.js';
import type { PkiSource } from './material.js';

/** Persists a certificate revocation; resolves when it is on disk. */
export type CertificatePersister = (serial: string, reason: string) => Promise<void>;
/** Persists a token revocation by id or name; resolves to the token's id. */
export type TokenPersister = (ref: string) => Promise<string>;

export interface RevocationSinkOptions {
  readonly sessions: SessionRegistry;
  readonly log: Logger;
  readonly trust?: Pick<TrustSource, 'reload'>;
  /** Undefined when there is no managed state directory: certificate revocations are refused. */
  readonly persistCertificate: CertificatePersister | undefined;
  readonly persistToken: TokenPersister | undefined;
}

export function createRevocationSink(o: RevocationSinkOptions): RevocationSink {
  return {
    async revokeSerial(serial, reason, source) {
      const normalized = normalizeSerial(serial);
      if (!o.persistCertificate) throw sinkError('certificate revocation needs a managed state directory (--dir)');
      await o.persistCertificate(normalized, reason);
      if (o.trust) await o.trust.reload(`revocation from ${source}`).catch((e: unknown) => o.log.error('revocation_trust_reload_failed', { error: e }));
      // Usually zero here: the trust reload above already cut them (gateway/compose.ts). Sessions count their own closes.
      const closed = o.sessions.revokeSerial(normalized);
      o.log.audit('revocation_certificate', { serial: normalized, reason, source, sessions_closed: closed });
    },
    async revokeToken(ref, source) {
      if (!o.persistToken) throw sinkError('token revocation needs the token store of a managed state directory');
      const id = await o.persistToken(ref);
      const closed = o.sessions.revokeToken(id);
      o.log.audit('revocation_token', { token_id: id, source, sessions_closed: closed });
    },
  };
}

/**
 * The sink of a running gateway: with a managed state directory, revocations
 * persist through the PKI library and the token store; with bring-your-own
 * PEM files there is nothing the gateway may write, and commands are refused.
 */
export function revocationSinkFor(ctx: GatewayContext, pki: PkiSource, env: NodeJS.ProcessEnv): RevocationSink {
  let persistCertificate: CertificatePersister | undefined;
  let persistToken: TokenPersister | undefined;
  if (pki.mode === 'dir') {
    // Resolved per revocation: a passphrase file replaced after `certs passphrase` is honoured without a restart.
    const passphrase = () => resolvePassphrase({ env, dir: pki.dir, ...(pki.passphraseFile ? { passphraseFile: pki.passphraseFile } : {}) }).passphrase;
    passphrase(); // fail at start, not at the first revocation
    persistCertificate = pkiCertificatePersister(pki.dir, passphrase);
    persistToken = async (ref) => {
      // Opened per revocation: rare, and the daemon keeps no writer handle on tokens.db.
      const store = TokenStore.open(pki.dir);
      try {
        return await tokenStorePersister(store)(ref);
      } finally {
        store.close();
      }
    };
  }
  return createRevocationSink({ sessions: ctx.sessions, log: ctx.log, trust: ctx.trust, persistCertificate, persistToken });
}

/** Certificate revocations through the PKI library (revoked.json, crl.pem, index.json). */
export function pkiCertificatePersister(dir: string, passphrase: string | (() => string)): CertificatePersister {
  return async (serial, reason) => {
    try {
      await revokeCertificate({ dir, passphrase: typeof passphrase === 'string' ? passphrase : passphrase(), serial, reason: isCrlReason(reason) ? reason : 'unspecified' });
    } catch (e) {
      if (isGatewayError(e) && e.code === 'GW_PKI_ALREADY_REVOKED') return;
      throw e;
    }
  };
}

/** Token revocations through the token store; an already revoked token resolves to its id. */
export function tokenStorePersister(store: Pick<TokenStore, 'revoke' | 'list'>): TokenPersister {
  return async (ref) => {
    try {
      return store.revoke(ref).id;
    } catch (e) {
      if (!isGatewayError(e) || e.code !== 'GW_TOKENS_NOT_FOUND') throw e;
      const done = store.list({ includeRevoked: true }).find((t) => t.revokedAt && (t.id === ref || t.name === ref));
      if (done) return done.id;
      throw e;
    }
  };
}

function sinkError(reason: string): GatewayError {
  return new GatewayError('GW_REVOCATION_UNSUPPORTED', reason);
}
