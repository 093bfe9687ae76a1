/**
 * A data-plane process's view of the TLS material: the primary loads,
 * validates and watches the files (runtime/trust.ts) and sends each new
 * version here; listeners (the terminator's secure context, live-session
 * revocation) run as they do in the primary.
 */
import type { TrustMaterial, TrustSource } from '../runtime/context.js';
import { TrustState } from '../runtime/trust-state.js';

export class RelayedTrust extends TrustState implements TrustSource {
  /** The primary reloads; a data-plane process has nothing of its own to read. */
  reload(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** A listener that throws here would leave the process half-updated: the primary restarts a process whose update fails. */
  apply(m: TrustMaterial, newlyRevoked: string[], removedCas: string[]): void {
    if (m.version <= this.current().version) return; // an older version arriving late
    this.swap(m, newlyRevoked, removedCas, (e) => { throw e; });
  }
}
