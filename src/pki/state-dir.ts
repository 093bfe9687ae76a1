/**
 * The state directory on disk (certs/README.md is the contract): file names,
 * atomic writes of one file (temp file and rename) and of several at once
 * (commitFiles: a journal makes the set change at one instant), and the lock
 * that serializes every writer (CLI commands and the daemon). A reader of one
 * file needs no lock: it sees the old or the new version, never half of one.
 * A reader of files that must agree (a certificate and its key, the CA
 * bundle and the CA key) reads them under the lock, which also completes a
 * commit that a crash interrupted.
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync,
  unlinkSync, writeSync, chmodSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pkiError } from './errors.js';
import { errnoText } from './keystore.js';
import { crashPoint } from './crash-points.js';

export const FILES = {
  state: 'state.json',
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  /** The outgoing CA's key, from `rotate-ca begin` to `finish`. */
  caPreviousKey: 'ca-previous-key.pem',
  gatewayCert: 'gateway.pem',
  gatewayKey: 'gateway-key.pem',
  index: 'index.json',
  revoked: 'revoked.json',
  crl: 'crl.pem',
  lock: '.lock',
  journal: '.commit.json',
  devPassphrase: '.dev-passphrase',
} as const;

export type StateFile = keyof typeof FILES;

export function statePath(dir: string, file: StateFile): string {
  return join(dir, FILES[file]);
}

/** Throws GW_PKI_MISSING_DIR / GW_PKI_BAD_DIR unless dir is a directory only its owner can write. */
export function assertStateDir(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw pkiError('missingDir', { dir });
    throw pkiError('badDir', { dir, reason: errnoText(e) });
  }
  if (!st.isDirectory()) throw pkiError('badDir', { dir, reason: 'not a directory' });
  if ((st.mode & 0o022) !== 0) throw pkiError('badDir', { dir, reason: `writable by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 700` });
}

/** Creates dir 0700 (or tightens an existing one we own to 0700). */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw pkiError('badDir', { dir, reason: 'not a directory' });
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/**
 * Writes a file atomically: temp file in the same directory, fsync, rename,
 * fsync the directory. A crash leaves the old file or the new one.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, mode); // the umask may have narrowed or the caller widened; be exact
    renameSync(tmp, file);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  fsyncDir(dirname(file));
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw pkiError('unreadable', { file, reason: errnoText(e) });
  }
}

export function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw pkiError('corruptState', { file, reason: (e as Error).message });
  }
}

/** How every JSON state file is laid out (also what commitFiles is given). */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  writeFileAtomic(file, jsonText(value), mode);
}

// ---- the writer lock ------------------------------------------------------

export interface LockOptions {
  /** Give up after this long (GW_PKI_LOCK_TIMEOUT). */
  timeoutMs?: number;
  /** A lock older than this is stale even if its pid looks alive (pid reuse, other host). */
  staleMs?: number;
}

interface LockRecord {
  pid: number;
  host: string;
  createdAt: number;
  nonce: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_STALE_MS = 120_000;

/**
 * Runs fn while holding dir/.lock. The lock is an O_EXCL-created file with
 * our pid; a lock whose pid is gone (same host) or that is older than
 * staleMs is broken. fn should be short: do slow work (key generation)
 * before taking the lock. A commit that a crash interrupted is completed
 * before fn runs, so fn always sees a whole state.
 */
export async function withLock<T>(dir: string, fn: () => Promise<T> | T, opts: LockOptions = {}): Promise<T> {
  const release = await acquireLock(dir, opts);
  try {
    completeInterruptedCommit(dir);
    return await fn();
  } finally {
    release();
  }
}

export async function acquireLock(dir: string, opts: LockOptions = {}): Promise<() => void> {
  const file = statePath(dir, 'lock');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const staleMs = opts.staleMs ?? DEFAULT_STALE_MS;
  const deadline = Date.now() + timeoutMs;
  const mine: LockRecord = { pid: process.pid, host: hostname(), createdAt: Date.now(), nonce: randomBytes(8).toString('hex') };
  let delay = 5;
  for (;;) {
    if (tryCreate(file, mine)) return () => releaseLock(file, mine.nonce);
    const holder = readLock(file);
    if (holder === 'gone') continue;
    if (isStale(holder, staleMs)) {
      breakStaleLock(file, holder);
      continue;
    }
    if (Date.now() >= deadline) throw pkiError('lockTimeout', { ms: timeoutMs, file, pid: holder?.pid ?? 'unknown' });
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 100);
  }
}

function tryCreate(file: string, rec: LockRecord): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw pkiError('missingDir', { dir: dirname(file) });
    throw pkiError('badDir', { dir: dirname(file), reason: `cannot create lock: ${errnoText(e)}` });
  }
  try {
    writeSync(fd, JSON.stringify(rec));
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The holder's record; undefined if unreadable or half-written; 'gone' if released meanwhile. */
function readLock(file: string): LockRecord | undefined | 'gone' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : undefined;
  }
  try {
    const r = JSON.parse(text) as LockRecord;
    return typeof r.pid === 'number' && typeof r.nonce === 'string' ? r : undefined;
  } catch {
    return undefined; // the creator is between open and write
  }
}

function isStale(holder: LockRecord | undefined, staleMs: number): boolean {
  if (holder === undefined) return false; // unreadable: wait, the deadline bounds it
  if (Date.now() - holder.createdAt > staleMs) return true;
  if (holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return false; // ourselves in another call: a real wait
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Two waiters may both decide the same lock is stale. Moving it aside to a
 * unique name first means only one of them gets the stale file; if what we
 * moved turns out to be a fresh lock (someone broke the stale one and took
 * the lock between our read and our rename), we put it back with link(),
 * which cannot overwrite.
 */
function breakStaleLock(file: string, holder: LockRecord | undefined): void {
  const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // someone else moved it; retry from the top
  }
  const moved = readLock(aside);
  if (moved !== 'gone' && moved !== undefined && holder !== undefined && moved.nonce !== holder.nonce) {
    try { linkSync(aside, file); } catch { /* a new holder exists already; theirs stands */ }
  }
  try { unlinkSync(aside); } catch { /* gone */ }
}

function releaseLock(file: string, nonce: string): void {
  const cur = readLock(file);
  // Only remove our own lock: if it was broken as stale and re-taken, it is not ours.
  if (cur !== 'gone' && cur?.nonce === nonce) {
    try { unlinkSync(file); } catch { /* gone */ }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- several files at one instant ------------------------------------------

/** One file of a commit: new content, or removal when data is undefined. */
export interface FileChange {
  readonly file: StateFile;
  readonly data?: string | Uint8Array;
  readonly mode?: number;
}

interface Journal {
  version: 1;
  id: string;
  files: Array<{ name: string; pending?: string }>;
}

const PENDING = /^\..+\.[0-9a-f]{12}\.pending$/;

/**
 * Replaces several state files so that every reader under the lock sees
 * either all old or all new versions. Call it holding the lock. Each new
 * version is first written beside its file (.NAME.<id>.pending); writing the
 * journal that lists them is the instant of the change; then each is renamed
 * into place and the journal removed. A crash before the journal leaves the
 * old state (the pending files are swept by the next commit); a crash after
 * it is rolled forward by the next withLock.
 */
export function commitFiles(dir: string, changes: readonly FileChange[]): void {
  sweepPending(dir);
  const id = randomBytes(6).toString('hex');
  const journal: Journal = { version: 1, id, files: [] };
  for (const c of changes) {
    const name = FILES[c.file];
    if (c.data === undefined) {
      journal.files.push({ name });
      continue;
    }
    const pending = `.${name}.${id}.pending`;
    writeFileAtomic(join(dir, pending), c.data, c.mode ?? 0o600);
    journal.files.push({ name, pending });
  }
  crashPoint('commit:staged');
  writeJsonAtomic(statePath(dir, 'journal'), journal);
  crashPoint('commit:journaled');
  applyJournal(dir, journal);
}

/** Rolls an interrupted commit forward; idempotent. Returns whether there was one. */
export function completeInterruptedCommit(dir: string): boolean {
  const file = statePath(dir, 'journal');
  if (!existsSync(file)) return false;
  const j = readJson(file) as Partial<Journal>;
  if (j.version !== 1 || !Array.isArray(j.files) || !j.files.every((f) => typeof f?.name === 'string' && Object.values(FILES).includes(f.name as never))) {
    throw pkiError('corruptState', { file, reason: 'not a commit journal' });
  }
  applyJournal(dir, j as Journal);
  return true;
}

function applyJournal(dir: string, j: Journal): void {
  for (const f of j.files) {
    try {
      if (f.pending !== undefined) renameSync(join(dir, f.pending), join(dir, f.name));
      else unlinkSync(join(dir, f.name));
    } catch (e) {
      // Already applied before a crash: the pending file was renamed, or the file removed.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    crashPoint(`commit:applied:${f.name}`);
  }
  fsyncDir(dir);
  try { unlinkSync(statePath(dir, 'journal')); } catch { /* removed by a previous attempt */ }
  fsyncDir(dir);
}

/** Pending files no journal names: left by a commit that crashed before its journal. */
function sweepPending(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (PENDING.test(name)) {
      try { unlinkSync(join(dir, name)); } catch { /* gone */ }
    }
  }
}
