/**
 * The daemon's view of the token store: every active token in memory, keyed
 * by hash and by id, refreshed from the database at least every second (and
 * synchronously on lookup if the last refresh is older than that). A token
 * that is revoked in another process, or that expires, is reported through
 * onInvalidated within one refresh so its live sessions can be closed.
 * last_used is written back at most once a minute per token.
 */
import { isWellFormedToken, tokenHash, hashesEqual } from './format.js';
import type { TokenRow, TokenStore } from './store.js';

export type TokenVerdict =
  | { ok: true; token: TokenRow }
  | { ok: false; reason: 'malformed' | 'unknown' | 'revoked' | 'expired' | 'store_unavailable' };

export interface TokenCacheOptions {
  readonly now: () => Date;
  readonly maxAgeMs?: number;
  readonly touchEveryMs?: number;
  readonly onInvalidated?: (tokenId: string, reason: 'revoked' | 'expired') => void;
  readonly onStoreError?: (e: Error) => void;
}

export class TokenCache {
  readonly #store: TokenStore;
  readonly #opts: Required<Omit<TokenCacheOptions, 'onInvalidated' | 'onStoreError'>> & TokenCacheOptions;
  #byHash = new Map<string, TokenRow>();
  #byId = new Map<string, TokenRow>();
  /** Tokens already reported expired, so each is reported once. */
  readonly #expiredReported = new Set<string>();
  readonly #pendingTouch = new Set<string>();
  readonly #lastTouch = new Map<string, number>();
  #loadedAt = -Infinity;
  #dataVersion = -1;
  #timer: NodeJS.Timeout | undefined;
  #healthy = true;

  constructor(store: TokenStore, opts: TokenCacheOptions) {
    this.#store = store;
    this.#opts = { maxAgeMs: 1000, touchEveryMs: 60_000, ...opts };
    this.refresh(true);
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.refresh(), Math.max(50, Math.floor(this.#opts.maxAgeMs / 2)));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#flushTouches();
  }

  /** Reloads when another process committed (data_version) or when forced; reports invalidations. */
  refresh(force = false): void {
    const nowMs = this.#opts.now().getTime();
    try {
      const version = this.#store.dataVersion();
      if (force || version !== this.#dataVersion) {
        const rows = this.#store.rows();
        const byId = new Map(rows.map((r) => [r.id, r]));
        for (const id of this.#byId.keys()) if (!byId.has(id)) this.#opts.onInvalidated?.(id, 'revoked');
        this.#byId = byId;
        this.#byHash = new Map(rows.map((r) => [r.hash.toString('hex'), r]));
        this.#dataVersion = version;
      }
      this.#loadedAt = nowMs;
      this.#healthy = true;
    } catch (e) {
      // Keep serving the last good view; a broken store must not log everyone out or crash.
      if (this.#healthy) this.#opts.onStoreError?.(e as Error);
      this.#healthy = false;
    }
    for (const r of this.#byId.values()) {
      if (r.expiresAt && r.expiresAt.getTime() <= nowMs && !this.#expiredReported.has(r.id)) {
        this.#expiredReported.add(r.id);
        this.#opts.onInvalidated?.(r.id, 'expired');
      }
    }
    if (this.#pendingTouch.size > 0) this.#flushTouches();
  }

  /** Validates a presented token string. */
  verify(presented: string): TokenVerdict {
    if (!isWellFormedToken(presented)) return { ok: false, reason: 'malformed' };
    this.#ensureFresh();
    const hash = tokenHash(presented);
    let row = this.#byHash.get(hash.toString('hex'));
    if (!row) {
      // A token created a moment ago by the CLI: data_version says whether anything changed (one cheap query).
      this.refresh();
      row = this.#byHash.get(hash.toString('hex'));
    }
    if (!row || !hashesEqual(row.hash, hash)) return { ok: false, reason: this.#healthy ? 'unknown' : 'store_unavailable' };
    return this.#judge(row);
  }

  /** Re-checks a token already accepted once (session cookie, open WebSocket). */
  check(tokenId: string): TokenVerdict {
    this.#ensureFresh();
    const row = this.#byId.get(tokenId);
    if (!row) return { ok: false, reason: 'revoked' };
    return this.#judge(row);
  }

  #judge(row: TokenRow): TokenVerdict {
    const nowMs = this.#opts.now().getTime();
    if (row.revokedAt) return { ok: false, reason: 'revoked' };
    if (row.expiresAt && row.expiresAt.getTime() <= nowMs) return { ok: false, reason: 'expired' };
    const last = this.#lastTouch.get(row.id) ?? row.lastUsedAt?.getTime() ?? -Infinity;
    if (nowMs - last >= this.#opts.touchEveryMs) this.#pendingTouch.add(row.id);
    return { ok: true, token: row };
  }

  #ensureFresh(): void {
    if (this.#opts.now().getTime() - this.#loadedAt >= this.#opts.maxAgeMs) this.refresh();
  }

  #flushTouches(): void {
    const ids = [...this.#pendingTouch];
    this.#pendingTouch.clear();
    const at = this.#opts.now();
    for (const id of ids) this.#lastTouch.set(id, at.getTime());
    try {
      this.#store.touch(ids, at);
    } catch (e) {
      // last_used is informational; a read-only or full disk must not refuse logins.
      if (this.#healthy) this.#opts.onStoreError?.(e as Error);
    }
  }
}
