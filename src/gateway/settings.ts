/**
 * From resolved configuration to the typed settings the composition root
 * needs. Cross-flag rules run first, on which keys are present at all, so a
 * user gets "--tls-cert requires --tls-key" rather than a parse error
 * about some later key. Pure.
 */
import { resolve as resolvePath } from 'node:path';
import { GatewayError } from '../errors/base.js';
import type { Endpoint, KeySpec } from '../config/spec.js';
import type { Flags, Resolved } from '../config/load.js';
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

/** Flags named by any source (command line, environment, config file). */
export function presentFlags(specs: readonly KeySpec[], sources: { flags: Flags; env: NodeJS.ProcessEnv; file?: Record<string, unknown> }): Set<string> {
  const out = new Set<string>();
  for (const s of specs) {
    if (sources.flags[s.flag] !== undefined || (sources.env[s.env] ?? '') !== '' || sources.file?.[s.key] !== undefined) out.add(s.flag);
  }
  return out;
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

export function settingsFrom(c: Resolved, cwd: string): GatewaySettings {
  const str = (k: string) => c[k] as string | undefined;
  const num = (k: string) => c[k] as number;
  const pki: PkiSource = str('tls.cert') !== undefined
    ? {
        mode: 'pem',
        caPath: resolvePath(cwd, str('tls.ca')!),
        certPath: resolvePath(cwd, str('tls.cert')!),
        keyPath: resolvePath(cwd, str('tls.key')!),
        ...(str('tls.crl') ? { crlPath: resolvePath(cwd, str('tls.crl')!) } : {}),
        clusterId: str('cluster')!,
      }
    : {
        mode: 'dir',
        dir: resolvePath(cwd, str('dir') ?? 'certs'),
        ...(str('passphrase-file') ? { passphraseFile: resolvePath(cwd, str('passphrase-file')!) } : {}),
      };
  const stateDirFlag = str('state-dir');
  return {
    pki,
    stateDir: pki.mode === 'dir' ? pki.dir : stateDirFlag !== undefined ? resolvePath(cwd, stateDirFlag) : undefined,
    logLevel: (str('log-level') ?? 'info') as GatewaySettings['logLevel'],
    scheduler: c['scheduler'] as Endpoint | undefined,
    listen: c['listen'] as Endpoint,
    handshakeTimeoutMs: num('terminator.handshake-timeout-ms'),
    maxConnections: num('terminator.max-connections'),
    failedHandshakesPerMinute: num('terminator.failed-handshake-rate'),
    upstreamConnectTimeoutMs: num('terminator.upstream-connect-timeout-ms'),
    drainTimeoutMs: num('terminator.drain-timeout-ms'),
    idleTimeoutMs: num('terminator.idle-timeout-ms'),
    shares: {
      maxHandshakes: num('terminator.max-handshakes'),
      maxHandshakesPerAddress: num('terminator.max-handshakes-per-address'),
      maxPerAddress: num('terminator.max-connections-per-address'),
      maxPerIdentity: num('terminator.max-connections-per-identity'),
      reserveWorkersPercent: num('terminator.reserve-workers-percent'),
      reserveClientsPercent: num('terminator.reserve-clients-percent'),
    },
    memoryBudgetBytes: num('terminator.memory-budget-bytes'),
    allowMissingEku: c['tls.allow-missing-eku'] === true,
  };
}
