/**
 * --credentials-command: runs `/bin/sh -c CMD`, reads its JSON output (the
 * same shapes as the file, so `aws configure export-credentials --format
 * process` or any existing credential_process helper works), and runs it
 * again before the credential expires: at expiration minus refresh-before
 * (at most half the lifetime), less up to 10 % jitter so a fleet of gateways
 * does not hit the identity provider in step. A failure retries with
 * doubling delays (1 s .. 60 s) while the current set is still served.
 *
 * Its stderr may hold secrets (helpers echo tokens when they fail), so only
 * its size is logged. The command runs in its own process group, which is
 * killed on timeout and on shutdown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { credentialsError } from './errors.js';
import { MAX_DOCUMENT_BYTES } from './credential.js';
import { install, refused, type SourceDeps } from './source.js';
import type { Source } from './file-source.js';

export interface CommandSourceOptions {
  readonly command: string;
  readonly timeoutMs: number;
  readonly refreshBeforeMs: number;
  /** Test seam; default Math.random. */
  readonly random?: () => number;
}

const MIN_DELAY_MS = 1000;
const MAX_RETRY_MS = 60_000;

interface RunResult { stdout: string; stderrBytes: number }

export function startCommandSource(deps: SourceDeps, o: CommandSourceOptions): Source {
  const random = o.random ?? Math.random;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let child: ChildProcess | undefined;
  let failures = 0;

  const schedule = (ms: number) => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), Math.max(MIN_DELAY_MS, Math.min(ms, 2 ** 31 - 1))).unref();
  };

  const refresh = async () => {
    if (closed) return;
    const started = Date.now();
    let result: RunResult;
    try {
      result = await run();
    } catch (e) {
      refused(deps, 'command', e, {});
      return retry();
    }
    const set = install(deps, 'command', () => result.stdout, { duration_ms: Date.now() - started, stderr_bytes: result.stderrBytes });
    if (!set) return retry();
    failures = 0;
    const left = set.expiration.getTime() - deps.now().getTime();
    const ahead = Math.min(o.refreshBeforeMs, left / 2);
    const delay = (left - ahead) * (1 - 0.1 * random());
    deps.log.info('credentials_refresh_scheduled', { source: 'command', in_ms: Math.round(delay), expires: set.expiration.toISOString() });
    schedule(delay);
  };

  const retry = () => {
    failures++;
    const backoff = Math.min(MAX_RETRY_MS, MIN_DELAY_MS * 2 ** Math.min(failures - 1, 6));
    schedule(backoff * (0.5 + 0.5 * random()));
  };

  const run = () => new Promise<RunResult>((resolve, reject) => {
    const p = spawn('/bin/sh', ['-c', o.command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child = p;
    const out: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let problem: string | undefined;
    const kill = (why: string) => {
      problem ??= why;
      try {
        if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const deadline = setTimeout(() => kill(`no result within ${o.timeoutMs} ms`), o.timeoutMs);
    p.stdout!.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_DOCUMENT_BYTES) kill(`printed more than ${MAX_DOCUMENT_BYTES} bytes`);
      else out.push(b);
    });
    p.stderr!.on('data', (b: Buffer) => { errBytes += b.length; });
    p.on('error', (e: NodeJS.ErrnoException) => { problem ??= `cannot start /bin/sh: ${e.code ?? 'error'}`; });
    p.on('close', (code, signal) => {
      clearTimeout(deadline);
      if (child === p) child = undefined;
      if (problem) return reject(credentialsError('command', { reason: problem, stderr_bytes: errBytes }));
      if (code !== 0) return reject(credentialsError('command', { reason: `exited with ${signal ? `signal ${signal}` : `status ${code}`} (stderr: ${errBytes} bytes, not logged)` }));
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderrBytes: errBytes });
    });
  });

  void refresh();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (child?.pid !== undefined) {
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    },
  };
}
