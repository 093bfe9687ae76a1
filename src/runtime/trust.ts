/**
 * The live TLS material of the gateway (server certificate, key, CA bundle,
 * revoked serials), reloaded on SIGHUP and when a watched file changes.
 * A reload loads and validates everything first, then swaps it in one
 * assignment: listeners call setSecureContext() from onChange, so
 * established connections keep their session. A broken new file keeps the
 * old material, logs why, and counts reloads_total{result="failure"}.
 *
 * Where the material comes from is the loader's business (pki/: managed
 * state directory or bring-your-own PEM files), when to reload is
 * file-watch.ts's; this module validates, swaps and notifies.
 */
import { createSecureContext } from 'node:tls';
import { createHash, type X509Certificate } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from './metrics.js';
import type { TrustMaterial, TrustSource } from './context.js';
import { GatewayError } from '../errors/base.js';
import { issuedByAny, parseCertificatePem, splitPemCertificates } from '../pki/certificate.js';
import { normalizeSerial } from '../pki/peer-certificate.js';
import { FileWatch } from './file-watch.js';
import { TrustState } from './trust-state.js';

export type LoadedTrust = Omit<TrustMaterial, 'version'> & { readonly watchPaths?: readonly string[] };

export interface TrustSourceOptions {
  /** Reads and decrypts everything from disk; throws on any problem. */
  readonly load: () => Promise<LoadedTrust>;
  /** Files whose change triggers a reload (file-watch.ts); default: the loader's watchPaths. */
  readonly watchFiles?: readonly string[];
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly now?: () => Date;
  /** Stat poll behind fs.watch (file-watch.ts); 0 disables. */
  readonly pollMs?: number;
  readonly debounceMs?: number;
}

/** How often the expiry gauge is recomputed between reloads: it counts down. */
const EXPIRY_REFRESH_MS = 60_000;

export class ReloadingTrustSource extends TrustState implements TrustSource {
  readonly #opts: TrustSourceOptions;
  readonly #files: FileWatch;
  readonly #expiryTimer: NodeJS.Timeout;
  #fingerprint: string;
  #expiryLabels = new Set<string>();

  /** Loads once (a failure here stops the start) and starts watching. */
  static async open(opts: TrustSourceOptions): Promise<ReloadingTrustSource> {
    const loaded = await opts.load();
    validate(loaded);
    return new ReloadingTrustSource({ ...opts, watchFiles: opts.watchFiles ?? loaded.watchPaths ?? [] }, material(loaded, 1));
  }

  private constructor(opts: TrustSourceOptions, m: TrustMaterial) {
    super(m);
    this.#opts = opts;
    this.#fingerprint = fingerprint(m);
    this.#recordExpiry();
    this.#expiryTimer = setInterval(() => this.#recordExpiry(), EXPIRY_REFRESH_MS).unref();
    const { log, metrics, pollMs, debounceMs } = opts;
    this.#files = FileWatch.start({ what: 'tls', files: opts.watchFiles ?? [], reload: (reason) => this.#reloadOnce(reason), log, metrics, pollMs, debounceMs });
  }

  /** Serialized with the watcher's reloads (file-watch.ts). Resolves true when the material on disk is live. */
  reload(reason: string): Promise<boolean> {
    return this.#files.reload(reason);
  }

  close(): void {
    this.#files.close();
    clearInterval(this.#expiryTimer);
  }

  async #reloadOnce(reason: string): Promise<boolean> {
    const { log, metrics } = this.#opts;
    let loaded: LoadedTrust;
    try {
      loaded = await this.#opts.load();
      validate(loaded);
      if (loaded.clusterId !== this.current().clusterId) {
        throw new GatewayError('GW_TRUST_CLUSTER_CHANGED', `the cluster id changed from ${this.current().clusterId} to ${loaded.clusterId}; restart the gateway to serve another cluster`);
      }
    } catch (e) {
      metrics.reloadsTotal.inc({ what: 'tls', result: 'failure' });
      log.error('trust_reload_failed', { reason, kept_version: this.current().version, error: errorText(e), code: (e as { code?: string }).code });
      return false;
    }
    const fp = fingerprint(loaded);
    if (fp === this.#fingerprint) {
      log.debug('trust_reload_unchanged', { reason });
      return true;
    }
    const before = this.current();
    const next = material(loaded, before.version + 1);
    const newlyRevoked = [...next.revokedSerials].filter((s) => !before.revokedSerials.has(s));
    const kept = new Set(caSerialsOf(next.caPem));
    const removedCas = caSerialsOf(before.caPem).filter((s) => !kept.has(s));
    this.#fingerprint = fp;
    metrics.reloadsTotal.inc({ what: 'tls', result: 'success' });
    log.info('trust_reloaded', {
      reason,
      version: next.version,
      certificate_changed: before.certPem !== next.certPem,
      ca_changed: before.caPem !== next.caPem,
      revoked: next.revokedSerials.size,
      newly_revoked: newlyRevoked,
      removed_cas: removedCas,
    });
    this.swap(next, newlyRevoked, removedCas, (e) => log.error('trust_listener_failed', { error: errorText(e) }));
    this.#recordExpiry();
    return true;
  }

  /**
   * Seconds left on the serving certificate ('gateway'), on every trusted CA
   * ('ca:<serial>'), and on the soonest of them ('ca', what a single alert
   * watches). Labels of CAs no longer trusted are removed.
   */
  #recordExpiry(): void {
    const m = this.current();
    const now = (this.#opts.now ?? (() => new Date()))().getTime();
    const left = (c: X509Certificate) => (new Date(c.validTo).getTime() - now) / 1000;
    const cas = splitPemCertificates(m.caPem).map(parseCertificatePem);
    const values = new Map<string, number>([['gateway', left(parseCertificatePem(m.certPem))], ['ca', Math.min(...cas.map(left))]]);
    for (const ca of cas) values.set(`ca:${normalizeSerial(ca.serialNumber)}`, left(ca));
    const g = this.#opts.metrics.certificateExpirySeconds;
    for (const label of this.#expiryLabels) if (!values.has(label)) g.remove({ certificate: label });
    for (const [label, v] of values) g.set({ certificate: label }, v);
    this.#expiryLabels = new Set(values.keys());
  }
}

function material(l: LoadedTrust, version: number): TrustMaterial {
  return { clusterId: l.clusterId, caPem: l.caPem, certPem: l.certPem, keyPem: l.keyPem, revokedSerials: l.revokedSerials, version };
}

/** Throws unless the key matches the certificate and OpenSSL accepts the set as a context. */
function validate(m: LoadedTrust): void {
  let cert: X509Certificate;
  try {
    cert = parseCertificatePem(m.certPem);
    parseCertificatePem(m.caPem);
  } catch (e) {
    throw new GatewayError('GW_TRUST_INVALID', `a certificate does not parse: ${errorText(e)}`);
  }
  try {
    createSecureContext({ key: m.keyPem, cert: m.certPem, ca: m.caPem });
  } catch (e) {
    throw new GatewayError('GW_TRUST_INVALID', `the key does not match the certificate or OpenSSL refuses it: ${errorText(e)}`);
  }
  if (!issuedByAny(cert.raw, m.caPem)) {
    // A server certificate from another CA would make every worker refuse the gateway.
    throw new GatewayError('GW_TRUST_INVALID', 'the server certificate is not issued by the configured CA');
  }
}

function fingerprint(m: LoadedTrust): string {
  const h = createHash('sha256');
  h.update(m.clusterId).update('\0').update(m.caPem).update('\0').update(m.certPem).update('\0').update(m.keyPem).update('\0');
  h.update([...m.revokedSerials].sort().join(','));
  return h.digest('hex');
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function caSerialsOf(caPem: string): string[] {
  return splitPemCertificates(caPem).map((pem) => normalizeSerial(parseCertificatePem(pem).serialNumber));
}
