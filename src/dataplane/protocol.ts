/**
 * What the primary and the data-plane processes say to each other, by
 * operation name. Everything here crosses the IPC pipe as JSON: no Sets,
 * no functions, no Errors.
 */
import type { TrustMaterial } from '../runtime/context.js';
import type { SessionsClosed } from '../runtime/sessions.js';
import type { TerminatorOptions } from '../terminator/terminator.js';
import type { PolicyConfig } from '../config/keys/policy.js';
import type { ShareLimits, ShareRefusal } from '../terminator/fair-shares.js';
import type { AdmissionRefusal, ReclaimDetail } from '../terminator/admission.js';
import type { Role } from '../pki/identity.js';

export const OP = {
  // primary -> data plane
  init: 'init',
  trust: 'trust',
  policy: 'policy',
  workerRegistered: 'worker-registered',
  candidates: 'candidates',
  cut: 'cut',
  drain: 'drain',
  close: 'close',
  metrics: 'metrics',
  // data plane -> primary
  ready: 'ready',
  admit: 'admit',
  promote: 'promote',
  release: 'release',
  failed: 'failed',
  log: 'log',
} as const;

export type WireTrust = Omit<TrustMaterial, 'revokedSerials'> & { readonly revokedSerials: readonly string[] };

export function toWireTrust(m: TrustMaterial): WireTrust {
  return { ...m, revokedSerials: [...m.revokedSerials] };
}

export function fromWireTrust(w: WireTrust): TrustMaterial {
  return { ...w, revokedSerials: new Set(w.revokedSerials) };
}

export interface PolicyText {
  /** The policy file's text as the primary validated it; undefined: the built-in default. */
  readonly text: string | undefined;
  readonly source: string;
}

export interface WorkerInit {
  readonly index: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly allowMissingEku: boolean;
  readonly trust: WireTrust;
  /** The limits are the ones the primary enforces (a process's share of descriptors is enforced there too). */
  readonly terminator: Pick<TerminatorOptions, 'listen' | 'scheduler' | 'handshakeTimeoutMs' | 'failedHandshakesPerMinute' | 'upstreamConnectTimeoutMs' | 'idleTimeoutMs'> & { readonly shares: ShareLimits };
  /** This process's share of --memory-budget-bytes. */
  readonly memoryBudgetBytes: number;
  /** Undefined: inspection off. */
  readonly policy: { readonly config: PolicyConfig; readonly current: PolicyText } | undefined;
  /** Worker addresses already registered through any process (policy/worker-directory.ts). */
  readonly workers: ReadonlyArray<readonly [address: string, owner: string]>;
}

export interface Listening {
  readonly address: { address: string; family: string; port: number };
}

export interface TrustUpdate {
  readonly material: WireTrust;
  readonly newlyRevoked: readonly string[];
  readonly removedCas: readonly string[];
}

/** Sessions one process closed for a trust change. */
export type TrustApplied = SessionsClosed;

export type AdmitAnswer = { readonly key: number } | { readonly refusal: AdmissionRefusal };

export interface PromoteAsk {
  readonly key: number;
  readonly identity: string;
  readonly role: Role;
}

export type PromoteAnswer = ShareRefusal | null;

export interface WireCandidate {
  readonly key: number;
  readonly identity: string;
  readonly cls: 'client' | 'cluster';
  readonly reclaimable: boolean;
  readonly idleMs: number;
}

export interface CutOrder {
  readonly key: number;
  readonly detail: ReclaimDetail;
}

