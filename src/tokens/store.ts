/**
 * Dashboard access tokens in <stateDir>/tokens.db (SQLite through
 * better-sqlite3). Several CLI processes and the running daemon open the same
 * file at once: WAL mode lets readers proceed during a write, busy_timeout
 * queues writers, and every write is one IMMEDIATE transaction, so no entry is
 * ever lost or half-written. Only SHA-256 hashes of tokens are stored.
 *
 * Owns: the schema, its version (PRAGMA user_version) and every SQL statement.
 * Must not import: dashboard/ (the daemon reads tokens through TokenCache).
 */
import Database from 'better-sqlite3';
import { closeSync, chmodSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateToken, hashesEqual, isWellFormedToken, tokenHash } from './format.js';
import { tokenError } from './errors.js';
import { GatewayError } from '../errors/base.js';

export const SCHEMA_VERSION = 1;
export const TOKENS_FILE = 'tokens.db';
export type Scope = 'view' | 'admin';
export const SCOPES: readonly Scope[] = ['view', 'admin'];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const BUSY_TIMEOUT_MS = 10_000;

export interface TokenRecord {
  readonly id: string;
  readonly name: string;
  readonly scope: Scope;
  readonly createdAt: Date;
  readonly expiresAt: Date | undefined;
  readonly lastUsedAt: Date | undefined;
  readonly revokedAt: Date | undefined;
}

/** A record plus its hash: what the daemon's cache holds. Never leaves the process. */
export interface TokenRow extends TokenRecord {
  readonly hash: Buffer;
}

interface Row {
  id: string;
  name: string;
  scope: Scope;
  hash: Buffer;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

const MIGRATIONS: readonly string[] = [
  // 0 -> 1
  `CREATE TABLE tokens (
     id           TEXT PRIMARY KEY,
     name         TEXT NOT NULL,
     scope        TEXT NOT NULL CHECK (scope IN ('view', 'admin')),
     hash         BLOB NOT NULL UNIQUE,
     created_at   INTEGER NOT NULL,
     expires_at   INTEGER,
     last_used_at INTEGER,
     revoked_at   INTEGER
   );
   CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;`,
];

export interface OpenOptions {
  /** Open without write access (list, the daemon's cache). Fails if the file does not exist. */
  readonly readonly?: boolean;
  readonly now?: () => Date;
}

export class TokenStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #now: () => Date;

  private constructor(path: string, db: Database.Database, now: () => Date) {
    this.path = path;
    this.#db = db;
    this.#now = now;
  }

  static open(stateDir: string, opts: OpenOptions = {}): TokenStore {
    const path = join(stateDir, TOKENS_FILE);
    const now = opts.now ?? (() => new Date());
    return guard(path, () => {
      if (!opts.readonly) {
        // Create the file 0600 ourselves: SQLite would use the umask, and it
        // gives the -wal and -shm files the database file's mode.
        closeSync(openSync(path, 'a', 0o600));
        chmodSync(path, 0o600);
      }
      const db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false, timeout: BUSY_TIMEOUT_MS });
      try {
        db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
        if (!opts.readonly) {
          db.pragma('journal_mode = WAL');
          db.pragma('synchronous = FULL');
          migrate(db, path);
        } else {
          checkVersion(db, path);
        }
      } catch (e) {
        db.close();
        throw e;
      }
      return new TokenStore(path, db, now);
    });
  }

  /** Creates a token; the returned secret exists nowhere else. */
  create(input: { name: string; scope?: Scope; expiresDays?: number }): { token: string; record: TokenRecord } {
    const scope = input.scope ?? 'view';
    if (!NAME_RE.test(input.name)) throw tokenError('badName', { name: JSON.stringify(input.name) });
    if (!SCOPES.includes(scope)) throw tokenError('badScope', { value: JSON.stringify(scope) });
    if (input.expiresDays !== undefined && (!Number.isInteger(input.expiresDays) || input.expiresDays < 1 || input.expiresDays > 3650)) {
      throw tokenError('badExpiry', { value: String(input.expiresDays) });
    }
    const token = generateToken();
    const created = this.#now().getTime();
    const row: Row = {
      id: 'tok_' + randomBytes(8).toString('hex'),
      name: input.name,
      scope,
      hash: tokenHash(token),
      created_at: created,
      expires_at: input.expiresDays === undefined ? null : created + input.expiresDays * 86_400_000,
      last_used_at: null,
      revoked_at: null,
    };
    this.#write(() => {
      const taken = this.#db.prepare('SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL').get(row.name);
      if (taken) throw tokenError('nameTaken', { name: row.name });
      this.#db
        .prepare('INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, last_used_at, revoked_at) VALUES (@id, @name, @scope, @hash, @created_at, @expires_at, @last_used_at, @revoked_at)')
        .run(row);
    });
    return { token, record: toRecord(row) };
  }

  /** Every token, newest first; revoked ones only when asked. */
  list(opts: { includeRevoked?: boolean } = {}): TokenRecord[] {
    return this.rows(opts).map(({ hash: _hash, ...record }) => record);
  }

  /** Rows including hashes, for the daemon's in-memory cache. */
  rows(opts: { includeRevoked?: boolean } = {}): TokenRow[] {
    return this.#read(() => {
      const sql = `SELECT * FROM tokens ${opts.includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY created_at DESC, id`;
      return (this.#db.prepare(sql).all() as Row[]).map((r) => ({ ...toRecord(r), hash: r.hash }));
    });
  }

  /** Revokes the active token with this id or name; returns it. Ids win over names. */
  revoke(ref: string): TokenRecord {
    return this.#write(() => {
      const row = (this.#db.prepare('SELECT * FROM tokens WHERE id = ? AND revoked_at IS NULL').get(ref) ??
        this.#db.prepare('SELECT * FROM tokens WHERE name = ? AND revoked_at IS NULL').get(ref)) as Row | undefined;
      if (!row) throw tokenError('notFound', { ref });
      const at = this.#now().getTime();
      this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ?').run(at, row.id);
      return toRecord({ ...row, revoked_at: at });
    });
  }

  /** Looks a presented token up by its hash (constant-time confirm). Malformed input never reaches SQL. */
  findByToken(token: string): TokenRecord | undefined {
    if (!isWellFormedToken(token)) return undefined;
    const hash = tokenHash(token);
    const row = this.#read(() => this.#db.prepare('SELECT * FROM tokens WHERE hash = ?').get(hash) as Row | undefined);
    return row && hashesEqual(row.hash, hash) ? toRecord(row) : undefined;
  }

  /** Records use; callers rate-limit this (a write per request would be wasteful). */
  touch(ids: readonly string[], at: Date): void {
    if (ids.length === 0) return;
    this.#write(() => {
      const stmt = this.#db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?');
      for (const id of ids) stmt.run(at.getTime(), id);
    });
  }

  /** Bumps whenever another connection commits: a cheap "did anything change?". */
  dataVersion(): number {
    return this.#read(() => this.#db.pragma('data_version', { simple: true }) as number);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #read<T>(fn: () => T): T {
    return guard(this.path, fn);
  }

  #write<T>(fn: () => T): T {
    return guard(this.path, () => this.#db.transaction(fn).immediate());
  }
}

function toRecord(r: Row): TokenRecord {
  const d = (n: number | null) => (n === null ? undefined : new Date(n));
  return { id: r.id, name: r.name, scope: r.scope, createdAt: new Date(r.created_at), expiresAt: d(r.expires_at), lastUsedAt: d(r.last_used_at), revokedAt: d(r.revoked_at) };
}

function migrate(db: Database.Database, path: string): void {
  db.transaction(() => {
    const version = checkVersion(db, path);
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    if (version !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function checkVersion(db: Database.Database, path: string): number {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) throw tokenError('newerSchema', { path, found: version, known: SCHEMA_VERSION });
  return version;
}

/** Turns SQLite and file-system failures into GatewayErrors that say what to do. */
export function guard<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    throw mapStoreError(path, e as { code?: string; message?: string });
  }
}

export function mapStoreError(path: string, e: { code?: string; message?: string }): GatewayError {
  const code = e.code ?? '';
  const reason = e.message ?? code;
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return tokenError('readOnly', { path, reason });
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'SQLITE_IOERR_WRITE') return tokenError('full', { path });
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return tokenError('busy', { path });
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return tokenError('corrupt', { path, reason });
  return tokenError('unavailable', { path, reason });
}
