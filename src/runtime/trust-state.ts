/**
 * The TLS material in force and who hears of each new version: the part
 * the loading source (trust.ts, in the primary) and a data-plane process's
 * relayed copy (dataplane/relayed-trust.ts) share.
 */
import type { TrustMaterial } from './context.js';

export type TrustListener = (m: TrustMaterial, newlyRevoked: string[], removedCas: string[]) => void;

export class TrustState {
  readonly #listeners = new Set<TrustListener>();
  #material: TrustMaterial;

  constructor(m: TrustMaterial) {
    this.#material = m;
  }

  current(): TrustMaterial {
    return this.#material;
  }

  isRevoked(serial: string): boolean {
    return this.#material.revokedSerials.has(serial);
  }

  onChange(listener: TrustListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Puts `next` in force, then tells every listener; one that throws goes to `failed` and the others still hear. */
  protected swap(next: TrustMaterial, newlyRevoked: string[], removedCas: string[], failed: (e: unknown) => void): void {
    this.#material = next;
    for (const l of this.#listeners) {
      try {
        l(next, newlyRevoked, removedCas);
      } catch (e) {
        failed(e);
      }
    }
  }
}
