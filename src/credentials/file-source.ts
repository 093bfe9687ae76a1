/**
 * --credentials-file: a JSON document (see credential.ts for the shapes),
 * owner-readable only, re-read when it changes (runtime/file-watch.ts). A
 * sidecar that renews STS credentials writes it atomically (rename); a
 * broken rewrite keeps the previous set until it expires.
 */
import { readFileSync, statSync } from 'node:fs';
import { FileWatch } from '../runtime/file-watch.js';
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
  const watch = FileWatch.start({
    what: 'credentials',
    files: [file],
    reload: async (reason) => install(deps, 'file', load, { file, reason }) !== undefined,
    log: deps.log,
    metrics: deps.metrics,
    pollMs: o.pollMs,
    debounceMs: o.debounceMs,
  });
  // Watching before the first read, so a replacement racing it is seen; the read is synchronous: the set is held on return.
  void watch.reload('start');
  return { close: () => watch.close() };
}
