/**
 * Requests, answers and one-way events between the primary and one
 * data-plane process, over the cluster IPC pipe. Every message carries a
 * `gw` tag so anything else on the pipe is ignored; a request that gets no
 * answer within its deadline rejects (the caller decides: refuse the
 * connection, leave the process out of /metrics); closing the channel
 * rejects whatever still waits. Handlers that throw answer with an error.
 */
export interface IpcPort {
  /** Node's: the callback gets an error when the pipe is closed (without one, Node emits 'error', which kills). */
  send(message: unknown, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type Handler = (body: unknown) => unknown;

interface Waiting {
  resolve(body: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface Message {
  readonly gw: 1;
  readonly kind: 'req' | 'res' | 'evt';
  readonly op?: string;
  readonly id?: number;
  readonly body?: unknown;
  readonly error?: string;
}

export const DEFAULT_REQUEST_MS = 5_000;

const ignore = () => {};

export class ChannelError extends Error {
  override readonly name = 'ChannelError';
}

export class Channel {
  readonly #port: IpcPort;
  readonly #waiting = new Map<number, Waiting>();
  readonly #handlers = new Map<string, Handler>();
  readonly #onMessage = (m: unknown) => this.#receive(m);
  #next = 1;
  #closed = false;

  constructor(port: IpcPort) {
    this.#port = port;
    port.on('message', this.#onMessage);
  }

  /** Registers the answer to `op` (request) or the reaction to it (event). */
  handle(op: string, handler: Handler): this {
    this.#handlers.set(op, handler);
    return this;
  }

  request<T>(op: string, body: unknown, timeoutMs = DEFAULT_REQUEST_MS): Promise<T> {
    if (this.#closed) return Promise.reject(new ChannelError(`channel closed before ${op}`));
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new ChannelError(`no answer to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#waiting.set(id, { resolve: resolve as (b: unknown) => void, reject, timer });
      this.#send({ gw: 1, kind: 'req', op, id, body }, (e) => {
        if (e) this.#fail(id, new ChannelError(`cannot send ${op}: the other process is gone`));
      });
    });
  }

  notify(op: string, body: unknown): void {
    if (!this.#closed) this.#send({ gw: 1, kind: 'evt', op, body });
  }

  close(): void {
    this.#closed = true;
    this.#port.off('message', this.#onMessage);
    for (const id of [...this.#waiting.keys()]) this.#fail(id, new ChannelError('channel closed'));
  }

  /**
   * Always with a callback: a send to a process that just exited then
   * reports ERR_IPC_CHANNEL_CLOSED there, where without one Node emits
   * 'error' on the cluster Worker, which nothing listens to: it would kill
   * the primary. (A false return only means Node's queue is long.)
   */
  #send(m: Message, done: (error: Error | null) => void = ignore): void {
    try {
      this.#port.send(m, done);
    } catch (e) {
      done(e as Error); // an in-memory port may throw where Node's calls back
    }
  }

  #fail(id: number, e: Error): void {
    const w = this.#waiting.get(id);
    if (!w) return;
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    w.reject(e);
  }

  #receive(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null || (raw as Message).gw !== 1) return;
    const m = raw as Message;
    if (m.kind === 'res') return this.#answered(m);
    const handler = m.op === undefined ? undefined : this.#handlers.get(m.op);
    if (m.kind === 'evt') return void handler?.(m.body);
    if (m.kind !== 'req' || typeof m.id !== 'number') return;
    const id = m.id;
    if (!handler) return void this.#send({ gw: 1, kind: 'res', id, error: `no handler for ${String(m.op)}` });
    // Called now, not in a microtask: several messages can arrive in one read, and a handler (init) may
    // register the handlers of the messages right behind it.
    let answer: unknown;
    try {
      answer = handler(m.body);
    } catch (e) {
      return void this.#send({ gw: 1, kind: 'res', id, error: e instanceof Error ? e.message : String(e) });
    }
    Promise.resolve(answer)
      .then(
        (body) => this.#send({ gw: 1, kind: 'res', id, body }),
        (e: unknown) => this.#send({ gw: 1, kind: 'res', id, error: e instanceof Error ? e.message : String(e) }),
      );
  }

  #answered(m: Message): void {
    if (typeof m.id !== 'number') return;
    const w = this.#waiting.get(m.id);
    if (!w) return; // answered after its deadline
    this.#waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.error !== undefined) w.reject(new ChannelError(m.error));
    else w.resolve(m.body);
  }
}
