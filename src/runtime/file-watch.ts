/**
 * The one way the gateway follows files it loaded (TLS material and
 * revocations, the credentials file, the policy file): it watches them and
 * runs their owner's reload when they change. The owner reads the files;
 * this module only decides when.
 *
 * Detection: fs.watch on each file's directory, not on the file, so an atomic
 * replace (write a temporary file, rename it over) is seen; and a stat poll
 * (inode, size, mtime, ctime, or the error code) every pollMs, for
 * filesystems where watch is silent. An event naming a watched file is a
 * change even when its stat looks the same (a rewrite within the mtime
 * granularity); any other event in the directory (Kubernetes swaps a
 * `..data` symlink) and the poll are a change only when a stat differs from
 * the one taken when the last reload started. Contents are not hashed: the
 * files hold keys and a passphrase, not to be read every second for nothing.
 *
 * Debounce: writers replace several files in a row (certificate, then key),
 * so the reload runs once the watched files have been quiet for debounceMs,
 * and no later than MAX_WAIT_FACTOR × debounceMs after the first change of a
 * continuous stream of writes. Other names in the directory and the poll
 * never postpone it.
 *
 * No overlap: reload() runs one at a time, whoever asks (a change, SIGHUP).
 * Asking while one runs queues exactly one more run, shared by every caller
 * that asked meanwhile, which starts after it and so reads what they saw.
 *
 * Failures: a read error or a vanished file is the owner's to report: it
 * keeps its last good state, logs one line and counts
 * reloads_total{what, result="failure"}. Because the stat is taken when a
 * reload starts, a file that vanishes or turns unreadable costs one reload
 * (one line), not one per poll; its return or repair costs another. An owner
 * whose reload throws has a bug: `file_reload_crashed`, counted as a failure,
 * never an unhandled rejection. A directory that cannot be watched logs
 * `file_watch_unavailable` once and is left to the poll.
 *
 * close() stops the watchers, the poll and a pending debounce; a reload in
 * flight finishes, a queued one resolves false without running.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from './metrics.js';

/** Resolves true when the files' state is live (new or unchanged), false when the last good state was kept. */
export type Reload = (reason: string) => Promise<boolean>;

export interface FileWatchOptions {
  /** What the files configure: the `what` of reloads_total and of the log lines. */
  readonly what: 'tls' | 'credentials' | 'policy';
  readonly files: readonly string[];
  readonly reload: Reload;
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'reloadsTotal'>;
  /** Stat poll interval; 0 leaves fs.watch alone (tests). */
  readonly pollMs?: number;
  readonly debounceMs?: number;
}

const DEFAULT_POLL_MS = 1000;
const DEFAULT_DEBOUNCE_MS = 200;
const MAX_WAIT_FACTOR = 5;

interface Queued {
  readonly reason: string;
  readonly promise: Promise<boolean>;
  readonly settle: (ok: boolean | Promise<boolean>) => void;
}

export class FileWatch {
  readonly #o: FileWatchOptions;
  readonly #watchers: FSWatcher[] = [];
  readonly #poll: NodeJS.Timeout | undefined;
  #stats: Map<string, string>;
  #debounce: NodeJS.Timeout | undefined;
  #firstChangeAt: number | undefined;
  #named = false;
  #running: Promise<boolean> | undefined;
  #queued: Queued | undefined;
  #closed = false;

  /** Takes the files' stat now: start it right after the first load. */
  static start(o: FileWatchOptions): FileWatch {
    return new FileWatch(o);
  }

  private constructor(o: FileWatchOptions) {
    this.#o = o;
    this.#stats = this.#statAll();
    const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
    this.#poll = pollMs > 0 ? setInterval(() => this.#pollTick(), pollMs).unref() : undefined;
    this.#watchDirectories();
  }

  /** Serialized with every other reload; see the header. */
  reload(reason: string): Promise<boolean> {
    if (!this.#running) return this.#run(reason);
    this.#queued ??= queue(reason);
    return this.#queued.promise;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    this.#debounce = undefined;
  }

  #run(reason: string): Promise<boolean> {
    this.#stats = this.#statAll();
    const run = this.#attempt(reason).finally(() => {
      this.#running = undefined;
      this.#startQueued();
    });
    this.#running = run;
    return run;
  }

  #startQueued(): void {
    const q = this.#queued;
    if (!q) return;
    this.#queued = undefined;
    q.settle(this.#closed ? false : this.#run(q.reason));
  }

  async #attempt(reason: string): Promise<boolean> {
    try {
      return await this.#o.reload(reason);
    } catch (e) {
      this.#o.metrics.reloadsTotal.inc({ what: this.#o.what, result: 'failure' });
      this.#o.log.error('file_reload_crashed', { what: this.#o.what, reason, error: e });
      return false;
    }
  }

  #watchDirectories(): void {
    const byDir = new Map<string, Set<string>>();
    for (const f of this.#o.files) byDir.set(dirname(f), (byDir.get(dirname(f)) ?? new Set()).add(basename(f)));
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.#schedule(name === null || names.has(String(name))));
        w.on('error', (e) => {
          this.#unavailable(dir, e);
          w.close();
        });
        this.#watchers.push(w);
      } catch (e) {
        this.#unavailable(dir, e);
      }
    }
  }

  #unavailable(dir: string, error: unknown): void {
    this.#o.log.warn('file_watch_unavailable', { what: this.#o.what, dir, error, polled: this.#poll !== undefined });
  }

  /**
   * An event naming a watched file restarts the wait for quiet (bounded by
   * the maximum wait); anything else (another name, the poll) only starts
   * one, so a busy directory or a change the poll keeps seeing until the
   * reload starts does not hold the reload back.
   */
  #schedule(named: boolean): void {
    if (this.#closed || (!named && this.#debounce)) return;
    this.#named ||= named;
    const now = Date.now();
    this.#firstChangeAt ??= now;
    const debounceMs = this.#o.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    const at = Math.min(now + debounceMs, this.#firstChangeAt + debounceMs * MAX_WAIT_FACTOR);
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#quiet(), at - now).unref();
  }

  #pollTick(): void {
    if (this.#changed()) this.#schedule(false);
  }

  #quiet(): void {
    const named = this.#named;
    this.#debounce = undefined;
    this.#firstChangeAt = undefined;
    this.#named = false;
    if (named) void this.reload('file change');
    else if (this.#changed()) void this.reload('file change (stat)');
  }

  #changed(): boolean {
    const now = this.#statAll();
    return [...now].some(([f, s]) => this.#stats.get(f) !== s);
  }

  #statAll(): Map<string, string> {
    return new Map(this.#o.files.map((f) => [f, statOf(f)]));
  }
}

function statOf(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (e) {
    return `error:${(e as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

function queue(reason: string): Queued {
  let settle!: Queued['settle'];
  const promise = new Promise<boolean>((resolve) => (settle = resolve));
  return { reason, promise, settle };
}
