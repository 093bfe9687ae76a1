/**
 * The seam between the 8786 byte pipe (terminator/) and wire-aware
 * authorization (wire/ + policy/). The terminator knows nothing about Dask
 * framing; it hands every chunk to an inspector before forwarding it and
 * closes both sides when the inspector returns a denial.
 */
import type { Identity } from '../pki/identity.js';

export interface PeerInfo {
  readonly identity: Identity;
  readonly serial: string;
  /** The peer's source address as seen by the gateway (no port). */
  readonly remoteAddress: string;
  /** DNS and IP SANs of the peer certificate: also acceptable worker hosts. */
  readonly sanHosts: readonly string[];
  /** A per-connection id used in audit lines. */
  readonly connectionId: string;
}

export interface Denial {
  /** Stable code, e.g. GW_POLICY_DENIED or GW_WIRE_FRAME_TOO_LARGE. */
  readonly code: string;
  /** Short machine-readable reason for the audit line and the metric label. */
  readonly reason: string;
  readonly op?: string;
  readonly rule?: string;
  readonly detail?: string;
}

export interface StreamInspector {
  /** Sees each chunk from the peer before it goes upstream; a Denial closes the connection and nothing of this chunk is forwarded. */
  fromPeer(chunk: Buffer): Denial | null;
  /** Sees each chunk from the scheduler before it goes to the peer. */
  fromScheduler(chunk: Buffer): Denial | null;
  /** Bytes held between chunks (a partial frame 0): counted in the gateway's memory budget. */
  readonly bufferedBytes?: number;
}

export type InspectorFactory = (peer: PeerInfo) => StreamInspector;
