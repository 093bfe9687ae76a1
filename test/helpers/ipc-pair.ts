/**
 * Two ends of an in-memory IPC pipe for dataplane/ tests: each message is
 * delivered asynchronously, as JSON (what the cluster pipe carries), so a
 * Set or an Error that would not survive the real pipe does not survive here.
 */
import { EventEmitter } from 'node:events';
import type { IpcPort } from '../../src/dataplane/channel.js';

export interface IpcEnd extends IpcPort {
  /** Stops delivery both ways, like a process that exited. */
  cut(): void;
}

export function ipcPair(): [IpcEnd, IpcEnd] {
  const a = new EventEmitter();
  const b = new EventEmitter();
  let open = true;
  const end = (self: EventEmitter, other: EventEmitter): IpcEnd => {
    // Messages sent in one turn arrive in one later turn, back to back with no microtask between them:
    // what Node does with several messages that one read of the pipe brought in.
    let queued: string[] = [];
    const deliver = () => {
      const batch = queued;
      queued = [];
      for (const text of batch) if (open) other.emit('message', JSON.parse(text));
    };
    return {
      // As Node's: a closed pipe calls back with ERR_IPC_CHANNEL_CLOSED (and returns false), it does not throw.
      send(m: unknown, callback: (error: Error | null) => void) {
        if (!open) {
          process.nextTick(callback, Object.assign(new Error('channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' }));
          return false;
        }
        if (queued.push(JSON.stringify(m)) === 1) setImmediate(deliver);
        setImmediate(callback, null);
        return true;
      },
      on: (e, l) => self.on(e, l),
      off: (e, l) => self.off(e, l),
      cut() {
        open = false;
      },
    };
  };
  return [end(a, b), end(b, a)];
}
