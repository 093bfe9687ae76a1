/**
 * Live sessions by the credential that opened them, so that a revocation
 * (certificate serial or access token) can close every one of them at once,
 * and a CA leaving the trust store can close those whose certificate no
 * longer chains to a trusted CA. 8786 connections, dashboard sessions and
 * WebSockets all register here.
 */
import { issuedByAny } from '../pki/certificate.js';

export interface LiveSession {
  readonly kind: 'dask' | 'dashboard-ws' | 'dashboard-http' | 'credentials';
  readonly serial?: string;
  readonly tokenId?: string;
  /** The peer's certificate (DER), read only when the trusted CAs shrink; a session without it is closed then. */
  readonly peerCertificate?: () => Buffer | undefined;
  close(reason: 'revoked' | 'expired' | 'drain'): void;
}

export class SessionRegistry {
  readonly #bySerial = new Map<string, Set<LiveSession>>();
  readonly #byToken = new Map<string, Set<LiveSession>>();

  add(s: LiveSession): () => void {
    if (s.serial) addTo(this.#bySerial, s.serial, s);
    if (s.tokenId) addTo(this.#byToken, s.tokenId, s);
    return () => {
      if (s.serial) removeFrom(this.#bySerial, s.serial, s);
      if (s.tokenId) removeFrom(this.#byToken, s.tokenId, s);
    };
  }

  /** Closes every session opened with this serial; returns how many. */
  revokeSerial(serial: string, reason: 'revoked' | 'expired' = 'revoked'): number {
    return closeAll(this.#bySerial, serial, reason);
  }

  revokeToken(tokenId: string, reason: 'revoked' | 'expired' = 'revoked'): number {
    return closeAll(this.#byToken, tokenId, reason);
  }

  /**
   * Closes, as a revocation does, every certificate session whose peer
   * certificate `trusted` rejects, or that cannot show one (fail closed).
   * One check per serial: a serial names one certificate.
   */
  closeUntrusted(trusted: (der: Buffer) => boolean): { sessions: number; serials: string[] } {
    const closed: string[] = [];
    let sessions = 0;
    for (const [serial, set] of [...this.#bySerial]) {
      let verdict: boolean | undefined;
      for (const s of [...set]) {
        const der = s.peerCertificate?.();
        if (der !== undefined) verdict ??= trusted(der);
        if (der !== undefined && verdict) continue;
        removeFrom(this.#bySerial, serial, s);
        if (s.tokenId) removeFrom(this.#byToken, s.tokenId, s);
        s.close('revoked');
        sessions++;
        if (!closed.includes(serial)) closed.push(serial);
      }
    }
    return { sessions, serials: closed };
  }

  serials(): string[] {
    return [...this.#bySerial.keys()];
  }

  tokenIds(): string[] {
    return [...this.#byToken.keys()];
  }

  get size(): number {
    let n = 0;
    for (const set of this.#bySerial.values()) n += set.size;
    for (const set of this.#byToken.values()) for (const s of set) if (!s.serial) n++;
    return n;
  }
}

function addTo(map: Map<string, Set<LiveSession>>, key: string, s: LiveSession): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(s);
}

function removeFrom(map: Map<string, Set<LiveSession>>, key: string, s: LiveSession): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(s);
  if (set.size === 0) map.delete(key);
}

function closeAll(map: Map<string, Set<LiveSession>>, key: string, reason: 'revoked' | 'expired'): number {
  const set = map.get(key);
  if (!set) return 0;
  const list = [...set];
  map.delete(key);
  for (const s of list) s.close(reason);
  return list.length;
}

/** What one process closed for one trust change: sessions per newly revoked serial, and those a removed CA left unchained. */
export interface SessionsClosed {
  readonly revoked: Readonly<Record<string, number>>;
  readonly untrusted: { readonly sessions: number; readonly serials: readonly string[] };
}

/** The closes a trust change causes (`caPem`: the CAs trusted now), in whichever process holds the sessions (the primary, each data-plane process). */
export function closeForTrustChange(sessions: SessionRegistry, caPem: string, newlyRevoked: readonly string[], removedCas: readonly string[]): SessionsClosed {
  const revoked: Record<string, number> = {};
  for (const serial of newlyRevoked) revoked[serial] = sessions.revokeSerial(serial);
  const untrusted = removedCas.length > 0 ? sessions.closeUntrusted((der) => issuedByAny(der, caPem)) : { sessions: 0, serials: [] };
  return { revoked, untrusted };
}
