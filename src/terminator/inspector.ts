/**
 * The seam between the 8786 byte pipe (terminator/) and wire-aware
 * authorization (wire/ + policy/). The terminator knows nothing about Dask
 * framing: it hands every chunk to an inspector and writes what the
 * inspector gives back. The inspector may change the stream: it forwards a
 * canonical framing, drops a refused message whole, and answers a refused
 * request in the scheduler's place; a Denial closes both sides.
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

export interface InspectorHooks {
  /** A request was refused and answered; the connection goes on. Audit and count it. */
  refused(d: Denial): void;
}

export interface StreamInspector {
  /**
   * Parses one chunk from the peer. Appends to `up`, in order, what may go
   * to the scheduler, and to `down` what the gateway answers the peer in the
   * scheduler's place. A Denial closes the connection; nothing of the denied
   * message is in `up`.
   */
  fromPeer(chunk: Buffer, up: Buffer[], down: Buffer[]): Denial | null;
  /** Sees each chunk from the scheduler; appends it to `down`, with any answers that waited for a message boundary. */
  fromScheduler(chunk: Buffer, down: Buffer[]): Denial | null;
  /** Bytes held from the peer while a message awaits its decision. */
  readonly bufferedBytes: number;
}

export type InspectorFactory = (peer: PeerInfo, hooks: InspectorHooks) => StreamInspector;
