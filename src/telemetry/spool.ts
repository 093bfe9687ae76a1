/**
 * The durable telemetry spool: every batch is on disk, fsynced, before the
 * stream may send it, and leaves the disk only when the control plane has
 * acknowledged it (or a cap drops it, with a log line and a metric).
 *
 * Layout: one file per batch, `<seq, 20 digits>.batch`, written to a `.tmp`
 * name, fsynced, renamed, and the directory fsynced. A crash therefore leaves
 * either a complete file or a stray `.tmp`; an acknowledgement is one unlink,
 * dropping the oldest is one unlink, and acks may arrive in any order. Each
 * file still carries a 32-byte header with a magic, the payload length and a
 * CRC32, so a file damaged after the fact (a filesystem that lost data, a
 * truncation, an operator's editor) is detected at startup or before sending,
 * removed with a log line and counted, never sent.
 *
 * The sequence counter lives in `seq` beside the batches; together with the
 * batch files themselves (the newest file name is a floor) it never goes
 * backwards after a crash, and a number is never skipped (see append()). A missing counter starts at the current Unix time
 * in milliseconds: batches are far fewer than milliseconds, so even a lost
 * spool directory restarts above every number used before.
 *
 * All I/O goes through fs/promises (the libuv pool), one operation at a time,
 * so a slow disk never stalls the event loop that carries Dask traffic.
 */
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { telemetryError } from './errors.js';

const MAGIC = Buffer.from('DGSB');
const VERSION = 1;
const HEADER_BYTES = 32;
const NAME = /^(\d{20})\.batch$/;
export const FLAG_GZIP = 1;

export interface SpoolEntry {
  readonly seq: number;
  /** File size on disk, header included. */
  readonly bytes: number;
  readonly createdMs: number;
  readonly flags: number;
}

export interface SpoolOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'spoolBatches' | 'spoolBytes' | 'spoolOldestAgeSeconds' | 'spoolDroppedTotal' | 'spoolRecoveredTotal'>;
  readonly now: () => Date;
}

export interface SpoolRecord {
  readonly entry: SpoolEntry;
  readonly payload: Buffer;
}

export class Spool {
  readonly #o: SpoolOptions;
  /** Oldest first: seqs are appended in increasing order and sorted at open. */
  readonly #entries = new Map<number, SpoolEntry>();
  #bytes = 0;
  #nextSeq = 0;
  #newest: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(o: SpoolOptions) {
    this.#o = o;
  }

  static async open(o: SpoolOptions): Promise<Spool> {
    const s = new Spool(o);
    await s.#recover();
    return s;
  }

  get dir(): string {
    return this.#o.dir;
  }

  /** Entries oldest first. */
  entries(): SpoolEntry[] {
    return [...this.#entries.values()];
  }

  /** The n oldest entries, without copying the whole index. */
  oldest(n: number): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    for (const e of this.#entries.values()) {
      if (out.length >= n) break;
      out.push(e);
    }
    return out;
  }

  newest(): SpoolEntry | undefined {
    const cached = this.#newest !== undefined ? this.#entries.get(this.#newest) : undefined;
    if (cached || this.#entries.size === 0) return cached;
    // The newest was acknowledged or dropped: only then walk the (by now short) index again.
    let last: SpoolEntry | undefined;
    for (const e of this.#entries.values()) last = e;
    this.#newest = last?.seq;
    return last;
  }

  get(seq: number): SpoolEntry | undefined {
    return this.#entries.get(seq);
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The number the next append() will use (preview). */
  peekSeq(): number {
    return this.#nextSeq;
  }

  /**
   * Numbers and writes one batch durably, first dropping the oldest if the caps
   * demand it; resolves to its seq, or undefined if it alone exceeds the cap.
   * The batch file is the durable record that its number is used: it is
   * renamed into place before the counter file moves on, so a crash between
   * the two is repaired at open (counter = newest file + 1), and a crash
   * before it leaves the number unused, not skipped: the receiver sees no gap.
   */
  append(createdMs: number, encode: (seq: number) => Buffer, flags = 0): Promise<number | undefined> {
    return this.#serial(async () => {
      const seq = this.#nextSeq;
      const payload = encode(seq);
      const bytes = HEADER_BYTES + payload.length;
      if (bytes > this.#o.maxBytes) {
        this.#drop([{ seq, bytes, createdMs, flags }], 'too_large', false);
        return undefined;
      }
      await this.#enforceCaps(bytes);
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header, 0);
      header.writeUInt8(VERSION, 4);
      header.writeUInt8(flags, 5);
      header.writeBigUInt64BE(BigInt(seq), 8);
      header.writeBigUInt64BE(BigInt(createdMs), 16);
      header.writeUInt32BE(payload.length, 24);
      header.writeUInt32BE(crc32(payload), 28);
      await this.#writeAtomic(fileName(seq), Buffer.concat([header, payload]));
      this.#entries.set(seq, { seq, bytes, createdMs, flags });
      this.#bytes += bytes;
      this.#newest = seq;
      this.#nextSeq = seq + 1;
      this.#publish();
      // The batch is safe already; a failure here is repaired from the file names at the next open.
      await this.#writeAtomic('seq', Buffer.from(`${seq + 1}\n`)).catch((e: unknown) => this.#o.log.error('telemetry_spool_seq_write_failed', { problem: (e as Error).message }));
      return seq;
    });
  }

  /** Reads and verifies one batch; a damaged file is removed, logged and counted, and undefined returned. */
  read(seq: number): Promise<SpoolRecord | undefined> {
    return this.#serial(async () => {
      const entry = this.#entries.get(seq);
      if (!entry) return undefined;
      let buf: Buffer;
      try {
        buf = await readFile(join(this.#o.dir, fileName(seq)));
      } catch (e) {
        await this.#discardCorrupt(seq, `unreadable: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
        return undefined;
      }
      const v = verify(buf, seq);
      if (typeof v === 'string') {
        await this.#discardCorrupt(seq, v);
        return undefined;
      }
      return { entry, payload: v.payload };
    });
  }

  /** The control plane has this batch: remove it for good. */
  ack(seq: number): Promise<void> {
    return this.#serial(async () => {
      await this.#remove(seq);
      this.#publish();
    });
  }

  /** Drops batches older than the age cap; called on every tick. */
  expire(): Promise<void> {
    return this.#serial(() => this.#enforceCaps(0));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #recover(): Promise<void> {
    const { dir, log, metrics } = this.#o;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw telemetryError('spoolIo', { dir, reason: `cannot create: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
    }
    const names = await readdir(dir);
    const found: SpoolEntry[] = [];
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        // A write interrupted before its rename: the batch never existed for the sender.
        await unlink(join(dir, name)).catch(() => undefined);
        log.warn('telemetry_spool_torn_write_removed', { dir, file: name });
        metrics.spoolRecoveredTotal.inc({ kind: 'torn' });
        continue;
      }
      const m = NAME.exec(name);
      if (!m) continue;
      const seq = Number(m[1]);
      const buf = await readFile(join(dir, name)).catch(() => undefined);
      const v = buf ? verify(buf, seq) : 'unreadable';
      if (typeof v === 'string') {
        await unlink(join(dir, name)).catch(() => undefined);
        log.error('telemetry_spool_corrupt_batch_removed', { dir, file: name, seq, problem: v });
        metrics.spoolRecoveredTotal.inc({ kind: 'corrupt' });
        metrics.spoolDroppedTotal.inc({ reason: 'corrupt' });
        continue;
      }
      found.push({ seq, bytes: buf!.length, createdMs: v.createdMs, flags: v.flags });
    }
    found.sort((a, b) => a.seq - b.seq);
    for (const e of found) {
      this.#entries.set(e.seq, e);
      this.#bytes += e.bytes;
    }
    this.#nextSeq = await this.#readSeq(found.at(-1)?.seq);
    await this.#enforceCaps(0);
    this.#publish();
    log.info('telemetry_spool_opened', { dir, batches: this.#entries.size, bytes: this.#bytes, next_seq: this.#nextSeq });
  }

  async #readSeq(maxOnDisk: number | undefined): Promise<number> {
    let fromFile: number | undefined;
    const text = await readFile(join(this.#o.dir, 'seq'), 'utf8').catch(() => undefined);
    if (text !== undefined) {
      if (/^\d{1,16}\n?$/.test(text)) fromFile = Number(text.trim());
      else {
        this.#o.log.error('telemetry_spool_seq_file_corrupt', { dir: this.#o.dir, recovery: 'restart from the clock' });
        this.#o.metrics.spoolRecoveredTotal.inc({ kind: 'seq' });
      }
    }
    const floor = Math.max(fromFile ?? this.#o.now().getTime(), (maxOnDisk ?? 0) + 1);
    return Math.max(1, floor);
  }

  async #enforceCaps(incoming: number): Promise<void> {
    const { maxBytes, maxAgeMs } = this.#o;
    const cutoff = this.#o.now().getTime() - maxAgeMs;
    const old: SpoolEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.createdMs >= cutoff) break;
      old.push(e);
    }
    for (const e of old) await this.#remove(e.seq);
    if (old.length) this.#drop(old, 'max_age', true);
    const full: SpoolEntry[] = [];
    for (const e of this.#entries.values()) {
      if (this.#bytes + incoming <= maxBytes) break;
      full.push(e);
      await this.#remove(e.seq);
    }
    if (full.length) this.#drop(full, 'max_bytes', true);
    if (old.length || full.length) this.#publish();
  }

  /** One log line per drop decision, not per file. */
  #drop(list: SpoolEntry[], reason: string, wasStored: boolean): void {
    this.#o.metrics.spoolDroppedTotal.inc({ reason }, list.length);
    this.#o.log.warn('telemetry_spool_dropped', {
      dir: this.#o.dir,
      reason,
      batches: list.length,
      first_seq: list[0]!.seq,
      last_seq: list.at(-1)!.seq,
      bytes: list.reduce((n, e) => n + e.bytes, 0),
      stored: wasStored,
    });
  }

  async #discardCorrupt(seq: number, problem: string): Promise<void> {
    await this.#remove(seq);
    this.#o.log.error('telemetry_spool_corrupt_batch_removed', { dir: this.#o.dir, file: fileName(seq), seq, problem });
    this.#o.metrics.spoolRecoveredTotal.inc({ kind: 'corrupt' });
    this.#o.metrics.spoolDroppedTotal.inc({ reason: 'corrupt' });
    this.#publish();
  }

  async #remove(seq: number): Promise<void> {
    const e = this.#entries.get(seq);
    if (!e) return;
    try {
      await unlink(join(this.#o.dir, fileName(seq)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw telemetryError('spoolIo', { dir: this.#o.dir, reason: `cannot remove ${fileName(seq)}: ${(err as NodeJS.ErrnoException).code}` });
    }
    this.#entries.delete(seq);
    this.#bytes -= e.bytes;
  }

  async #writeAtomic(name: string, data: Buffer): Promise<void> {
    const dir = this.#o.dir;
    const tmp = join(dir, `${name}.${process.pid}.tmp`);
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(dir, name));
      const d = await open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw telemetryError('spoolIo', { dir, reason: `cannot write ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    }
  }

  #publish(): void {
    const m = this.#o.metrics;
    m.spoolBatches.set(this.#entries.size);
    m.spoolBytes.set(this.#bytes);
    const oldest = this.#entries.values().next().value as SpoolEntry | undefined;
    m.spoolOldestAgeSeconds.set(oldest ? Math.max(0, (this.#o.now().getTime() - oldest.createdMs) / 1000) : 0);
  }
}

export function fileName(seq: number): string {
  return `${String(seq).padStart(20, '0')}.batch`;
}

/** The payload of a spool file, or why it cannot be trusted. */
export function verify(buf: Buffer, seq: number): { payload: Buffer; createdMs: number; flags: number } | string {
  if (buf.length < HEADER_BYTES) return `truncated header (${buf.length} of ${HEADER_BYTES} bytes)`;
  if (!buf.subarray(0, 4).equals(MAGIC)) return 'bad magic';
  if (buf.readUInt8(4) !== VERSION) return `unknown version ${buf.readUInt8(4)}`;
  if (Number(buf.readBigUInt64BE(8)) !== seq) return 'sequence number does not match the file name';
  const len = buf.readUInt32BE(24);
  if (buf.length !== HEADER_BYTES + len) return `length mismatch (header says ${len} payload bytes, file has ${buf.length - HEADER_BYTES})`;
  const payload = buf.subarray(HEADER_BYTES);
  if (crc32(payload) !== buf.readUInt32BE(28)) return 'CRC32 mismatch';
  return { payload, createdMs: Number(buf.readBigUInt64BE(16)), flags: buf.readUInt8(5) };
}

/**
 * The sequence number the spool in `dir` would hand out next, read without
 * opening (and so without recovering or changing) the spool: for previews.
 */
export async function peekNextSeq(dir: string, now: Date): Promise<number> {
  const text = await readFile(join(dir, 'seq'), 'utf8').catch(() => undefined);
  const names = await readdir(dir).catch(() => [] as string[]);
  const maxOnDisk = Math.max(0, ...names.map((n) => NAME.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])));
  const fromFile = text !== undefined && /^\d{1,16}\n?$/.test(text) ? Number(text.trim()) : now.getTime();
  return Math.max(1, fromFile, maxOnDisk + 1);
}
