/**
 * What every component of a running gateway shares. Built once by the
 * composition root (gateway/compose.ts) and passed down; no module reaches
 * for globals. Declared below every component, so that no component imports
 * another or the root. Configuration is not here: each component is given
 * its own typed slice (config/keys/*.ts) when it is started.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, MetricsReader } from './metrics.js';
import type { SessionRegistry } from './sessions.js';

/** The TLS material of the cluster as currently loaded; swapped atomically on reload. */
export interface TrustMaterial {
  readonly clusterId: string;
  readonly caPem: string;
  readonly certPem: string;
  /** Decrypted private key, in memory only. */
  readonly keyPem: string;
  readonly revokedSerials: ReadonlySet<string>;
  /** Monotonic version, bumped on every successful reload. */
  readonly version: number;
}

export interface TrustSource {
  current(): TrustMaterial;
  isRevoked(serial: string): boolean;
  /** Called after every successful reload with the serials newly revoked and the serials of CAs no longer trusted. */
  onChange(listener: (m: TrustMaterial, newlyRevoked: string[], removedCas: string[]) => void): () => void;
  reload(reason: string): Promise<boolean>;
}

/** Applies revocations that arrive from outside (control plane) durably, then cuts live sessions. */
export interface RevocationSink {
  revokeSerial(serial: string, reason: string, source: string): Promise<void>;
  revokeToken(idOrName: string, source: string): Promise<void>;
}

export interface GatewayContext {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  /** What /metrics and the control-plane stream read, when it is not `metrics.registry` alone (several processes: metrics-aggregate.ts). */
  readonly metricsReader?: MetricsReader;
  readonly sessions: SessionRegistry;
  readonly trust: TrustSource;
  readonly clusterId: string;
  /** Managed state directory (certs/, tokens.db, spool/); undefined with bring-your-own PEM files. */
  readonly stateDir: string | undefined;
  /** Peer certificates without any EKU extension are accepted on every port (bring-your-own PKI, --allow-missing-eku). */
  readonly allowMissingEku: boolean;
  readonly now: () => Date;
}

/** A started part of the gateway. drain() stops accepting and waits up to the deadline. */
export interface Component {
  readonly name: string;
  /** Re-reads what this component loaded from files (SIGHUP); false when the old state was kept. */
  reload?(reason: string): Promise<boolean>;
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
}
