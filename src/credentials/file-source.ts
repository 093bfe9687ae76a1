/**
 * --credentials-file: a JSON document (see credential.ts for the shapes),
 * owner-readable only, re-read when it changes (fs.watch on its directory,
 * with a coarse stat poll for filesystems where watch is silent). A sidecar
 * that renews STS credentials writes it atomically (rename); a broken
 * rewrite keeps the previous set until it expires.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { credentialsError } from './errors.js';
import { MAX_DOCUMENT_BYTES } from './credential.js';
import { install, type SourceDeps } from './source.js';

export interface FileSourceOptions {
  readonly file: string;
  readonly pollMs?: number;
  readonly debounceMs?: number;
}

export interface Source {
  close(): void;
}

export function startFileSource(deps: SourceDeps, o: FileSourceOptions): Source {
  const { file } = o;
  const load = (): string => {
    let st;
    try {
      st = statSync(file);
    } catch (e) {
      throw credentialsError('file', { file, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
    }
    if (!st.isFile()) throw credentialsError('file', { file, reason: 'not a regular file' });
    if ((st.mode & 0o077) !== 0) throw credentialsError('file', { file, reason: `readable by other users; run chmod 600 ${file}` });
    if (st.size > MAX_DOCUMENT_BYTES) throw credentialsError('file', { file, reason: `larger than ${MAX_DOCUMENT_BYTES} bytes` });
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw credentialsError('file', { file, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
    }
  };
  const reload = (reason: string) => install(deps, 'file', load, { file, reason });

  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  const schedule = (reason: string) => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      last = stamp();
      reload(reason);
    }, o.debounceMs ?? 100).unref();
  };
  const stamp = () => {
    try {
      const s = statSync(file);
      return `${s.ino}:${s.size}:${s.mtimeMs}:${s.mode}`;
    } catch {
      return 'missing';
    }
  };
  let last = stamp();
  reload('start');

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_ev, name) => {
      if (name === null || String(name) === basename(file)) schedule('file change');
    });
    watcher.on('error', () => undefined); // the poll still covers it
  } catch (e) {
    deps.log.warn('credentials_watch_unavailable', { file, problem: (e as Error).message });
  }
  const poll = setInterval(() => {
    const now = stamp();
    if (now !== last) {
      last = now;
      schedule('file change (poll)');
    }
  }, o.pollMs ?? 1000).unref();

  return {
    close() {
      closed = true;
      watcher?.close();
      clearInterval(poll);
      clearTimeout(debounce);
    },
  };
}
