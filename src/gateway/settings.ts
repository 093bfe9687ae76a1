/**
 * From the typed configuration to the settings the composition root needs:
 * which PKI, which state directory, the 8786 options. Cross-flag rules run
 * first, on which keys are present at all, so a user gets "--tls-cert
 * requires --tls-key" rather than a parse error about some later key. Pure.
 */
import { GatewayError } from '../errors/base.js';
import type { Endpoint } from '../config/spec.js';
import type { RunConfig } from '../config/keys/index.js';
import type { ShareLimits } from '../terminator/fair-shares.js';
import type { PkiSource } from '../runtime/material.js';

export interface GatewaySettings {
  readonly pki: PkiSource;
  /** Where tokens.db and the telemetry spool live: --dir, or --state-dir with bring-your-own PEM files. */
  readonly stateDir: string | undefined;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Undefined: start the embedded development scheduler. */
  readonly scheduler: Endpoint | undefined;
  readonly listen: Endpoint;
  readonly handshakeTimeoutMs: number;
  readonly maxConnections: number;
  readonly failedHandshakesPerMinute: number;
  readonly upstreamConnectTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** 8786 fair shares; the connection cap comes from the descriptor budget (limits/descriptor-budget.ts). */
  readonly shares: Omit<ShareLimits, 'maxConnections'>;
  readonly memoryBudgetBytes: number;
  /** Accept peer certificates without any EKU extension (bring-your-own PKI). */
  readonly allowMissingEku: boolean;
}

const TLS_FLAGS = ['tls-ca', 'tls-cert', 'tls-key', 'tls-crl'] as const;

function usage(message: string, flags: string[]): GatewayError {
  return new GatewayError('GW_USAGE', message, { flags });
}

export function checkCrossFlagRules(present: ReadonlySet<string>): void {
  const tls = TLS_FLAGS.filter((f) => present.has(f));
  if (tls.length > 0 && present.has('dir')) {
    throw usage(`--dir excludes ${tls.map((f) => `--${f}`).join(', ')}: use a state directory or your own PEM files, not both`, ['dir', ...tls]);
  }
  if (tls.length > 0) {
    const missing = (['tls-cert', 'tls-key', 'tls-ca'] as const).filter((f) => !present.has(f));
    if (missing.length > 0) {
      throw usage(`--${tls[0]} requires ${missing.map((f) => `--${f}`).join(' and ')} (bring-your-own PKI needs the CA, the certificate and its key)`, [...tls, ...missing]);
    }
    if (!present.has('cluster')) throw usage('--tls-cert requires --cluster: the cluster id that peer SPIFFE URIs must name', ['tls-cert', 'cluster']);
    if (present.has('passphrase-file')) throw usage('--passphrase-file applies to --dir only: --tls-key must be an unencrypted key file (mode 0600)', ['passphrase-file', 'tls-key']);
  }
  if (present.has('state-dir') && tls.length === 0) throw usage('--state-dir goes with --tls-* only: with --dir, the state directory is --dir', ['state-dir']);
}

export function settingsFrom(c: RunConfig): GatewaySettings {
  const { common, terminator: t } = c;
  const pki: PkiSource = common.tlsCert !== undefined
    ? {
        mode: 'pem',
        caPath: required(common.tlsCa, 'tls-ca'),
        certPath: common.tlsCert,
        keyPath: required(common.tlsKey, 'tls-key'),
        ...(common.tlsCrl !== undefined ? { crlPath: common.tlsCrl } : {}),
        clusterId: required(common.cluster, 'cluster'),
      }
    : { mode: 'dir', dir: common.dir, ...(common.passphraseFile !== undefined ? { passphraseFile: common.passphraseFile } : {}) };
  return {
    pki,
    stateDir: pki.mode === 'dir' ? pki.dir : common.stateDir,
    logLevel: common.logLevel,
    scheduler: t.scheduler,
    listen: t.listen,
    handshakeTimeoutMs: t.handshakeTimeoutMs,
    maxConnections: t.maxConnections,
    failedHandshakesPerMinute: t.failedHandshakeRate,
    upstreamConnectTimeoutMs: t.upstreamConnectTimeoutMs,
    drainTimeoutMs: t.drainTimeoutMs,
    idleTimeoutMs: t.idleTimeoutMs,
    shares: {
      maxHandshakes: t.maxHandshakes,
      maxHandshakesPerAddress: t.maxHandshakesPerAddress,
      maxPerAddress: t.maxConnectionsPerAddress,
      maxPerIdentity: t.maxConnectionsPerIdentity,
      reserveWorkersPercent: t.reserveWorkersPercent,
      reserveClientsPercent: t.reserveClientsPercent,
    },
    memoryBudgetBytes: t.memoryBudgetBytes,
    allowMissingEku: common.allowMissingEku,
  };
}

/** checkCrossFlagRules has made sure of it for `run`; a caller that skipped it gets the same usage error. */
function required(value: string | undefined, flag: string): string {
  if (value === undefined) throw usage(`--tls-cert requires --${flag}`, ['tls-cert', flag]);
  return value;
}
