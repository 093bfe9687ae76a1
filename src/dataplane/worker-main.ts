/**
 * The entry point of one data-plane process (forked by primary.ts through
 * Node's cluster module): the composition root of a process that owns 8786
 * connections and nothing else. It waits for `init` from the primary, then
 * runs the same terminator as the one-process gateway, with admission,
 * trust, policy and logging relayed from and to the primary. Without its
 * primary it must not go on (revocations could no longer reach it): when
 * the IPC pipe closes, it closes every connection and exits.
 */
import type { IpcPort } from './channel.js';
import { Channel } from './channel.js';
import { startDataPlaneProcess } from './worker.js';

if (typeof process.send !== 'function') {
  process.stderr.write('scheduler-gateway: the data-plane process is started by the gateway (run --processes N), not by hand\n');
  process.exit(2);
}

const ch = new Channel(process as unknown as IpcPort);
// IPC writes are queued: exit once the last one (answers, relayed log lines) has left, not before.
const exit = (code: number) => {
  if (!process.connected) process.exit(code);
  process.send!({ gw: 0 }, () => process.exit(code));
};
const primaryGone = startDataPlaneProcess(ch, exit);
process.on('disconnect', () => void primaryGone());
