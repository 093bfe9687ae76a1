/**
 * Polling instead of fixed sleeps: the one waitFor of the test suite.
 */

export interface WaitOptions {
  /** What is awaited, as the timeout's message names it ("the spool to drain"). */
  readonly what: string;
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/**
 * Thrown by a predicate to stop waiting at once, when what it waits for can
 * no longer happen (the process that was to do it has exited). Any other
 * error counts as "not yet": a port that still refuses, a file not written yet.
 */
export class GiveUp extends Error {}

/**
 * Polls `pred` until it returns a truthy value, which it resolves with; after
 * `timeoutMs` (default 30 s) it rejects, naming `what` and quoting the error
 * of the last attempt if that attempt threw.
 */
export async function waitFor<T>(pred: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let failure: unknown;
    try {
      const v = await pred();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      if (e instanceof GiveUp) throw new Error(`gave up waiting for ${opts.what}: ${e.message}`, { cause: e });
      failure = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${failure === undefined ? '' : `: ${String(failure)}`}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
