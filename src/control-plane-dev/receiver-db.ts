/**
 * The reference receiver's SQLite database: enrolled clusters and their
 * credentials, received batches deduplicated by UNIQUE (cluster, seq), their
 * samples, and the queue of commands to deliver. WAL mode, so the CLI can
 * enqueue a command while the server runs. A development tool: credentials
 * are stored in clear because the receiver must sign commands with them.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { receiverError } from './errors.js';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS clusters (
    cluster     TEXT PRIMARY KEY,
    credential  TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS batches (
    cluster     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    created     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (cluster, seq)
  );
  CREATE TABLE IF NOT EXISTS samples (
    cluster TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    source  TEXT NOT NULL,
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL,
    value   TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS samples_batch ON samples (cluster, seq);
  CREATE TABLE IF NOT EXISTS commands (
    id         TEXT PRIMARY KEY,
    cluster    TEXT NOT NULL,
    name       TEXT NOT NULL,
    args       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending',
    result     TEXT,
    done_at    INTEGER
  );
`;

export interface StoredSample {
  readonly source: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number | string;
}

export interface PendingCommand {
  readonly id: string;
  readonly cluster: string;
  readonly name: string;
  readonly args: Record<string, string>;
}

export class ReceiverDb {
  readonly #db: Database.Database;

  constructor(path: string) {
    try {
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
      this.#db = new Database(path, { timeout: 5000 });
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(SCHEMA);
    } catch (e) {
      throw receiverError('unusable', { reason: `cannot open database ${path}: ${(e as Error).message}` });
    }
  }

  /** Creates or replaces a cluster's credential; returns the new secret. */
  enroll(cluster: string): string {
    if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(cluster)) throw receiverError('unusable', { reason: `invalid cluster id ${JSON.stringify(cluster)}` });
    const credential = randomBytes(32).toString('base64url');
    this.#db.prepare('INSERT INTO clusters (cluster, credential, enrolled_at) VALUES (?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET credential = excluded.credential, enrolled_at = excluded.enrolled_at')
      .run(cluster, credential, Date.now());
    return credential;
  }

  /** The cluster's credential if `presented` matches it (constant time), else undefined. */
  authenticate(cluster: string, presented: string): string | undefined {
    const row = this.#db.prepare('SELECT credential FROM clusters WHERE cluster = ?').get(cluster) as { credential: string } | undefined;
    const digest = (s: string) => createHash('sha256').update(s).digest();
    const ok = timingSafeEqual(digest(row?.credential ?? randomBytes(32).toString('hex')), digest(presented));
    return ok && row ? row.credential : undefined;
  }

  /** Stores a batch and its samples in one transaction; false when (cluster, seq) is already stored. */
  storeBatch(cluster: string, seq: number, created: string, body: string, samples: readonly StoredSample[]): boolean {
    const insertBatch = this.#db.prepare('INSERT INTO batches (cluster, seq, created, received_at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster, seq) DO NOTHING');
    const insertSample = this.#db.prepare('INSERT INTO samples (cluster, seq, source, name, labels, value) VALUES (?, ?, ?, ?, ?, ?)');
    return this.#db.transaction(() => {
      if (insertBatch.run(cluster, seq, created, Date.now(), body).changes === 0) return false;
      for (const s of samples) insertSample.run(cluster, seq, s.source, s.name, JSON.stringify(s.labels), String(s.value));
      return true;
    })();
  }

  enqueueCommand(cluster: string, name: string, args: Record<string, string>): string {
    const id = randomBytes(12).toString('base64url');
    this.#db.prepare('INSERT INTO commands (id, cluster, name, args, created_at) VALUES (?, ?, ?, ?, ?)').run(id, cluster, name, JSON.stringify(args), Date.now());
    return id;
  }

  pendingCommands(cluster: string): PendingCommand[] {
    const rows = this.#db.prepare("SELECT id, cluster, name, args FROM commands WHERE cluster = ? AND status = 'pending' ORDER BY created_at, id").all(cluster) as { id: string; cluster: string; name: string; args: string }[];
    return rows.map((r) => ({ ...r, args: JSON.parse(r.args) as Record<string, string> }));
  }

  completeCommand(cluster: string, id: string, ok: boolean, result: string): void {
    // A delivered credential push has no reason to stay in the database: keep its shape, drop its values.
    this.#db.prepare("UPDATE commands SET status = ?, result = ?, done_at = ?, args = CASE WHEN name = 'push-credentials' THEN '{}' ELSE args END WHERE id = ? AND cluster = ? AND status = 'pending'").run(ok ? 'applied' : 'failed', result, Date.now(), id, cluster);
  }

  command(id: string): { status: string; result: string | null } | undefined {
    return this.#db.prepare('SELECT status, result FROM commands WHERE id = ?').get(id) as { status: string; result: string | null } | undefined;
  }

  batches(cluster?: string, limit = 1_000_000): { cluster: string; seq: number; body: string }[] {
    const sql = `SELECT cluster, seq, body FROM batches ${cluster ? 'WHERE cluster = ?' : ''} ORDER BY cluster, seq DESC LIMIT ?`;
    return this.#db.prepare(sql).all(...(cluster ? [cluster, limit] : [limit])) as { cluster: string; seq: number; body: string }[];
  }

  sampleCount(cluster: string): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM samples WHERE cluster = ?').get(cluster) as { n: number }).n;
  }

  close(): void {
    this.#db.close();
  }
}
