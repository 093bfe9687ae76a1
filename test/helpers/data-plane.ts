/**
 * Driving a gateway that runs --processes N from tests: raw mTLS connections
 * held open, which data-plane process took each one (from its audit line),
 * and the processes' pids.
 *
 * Exports:
 *   GREETING                          what the echo upstream (startEcho({greeting})) says first
 *   holdTls(port, creds, {localAddress?}): Promise<Held>   connects and waits until
 *       the upstream's greeting arrives (forwarded), or the gateway refuses it: closes
 *       it, or answers itself in Dask's framing (a refusal after the handshake)
 *   echoes(held): Promise<boolean>   the connection still forwards both ways
 *   processOf(lines, held): number | undefined   the `dataplane` of its accept or refusal line
 *   dataPlanePids(lines): number[]   from `dataplane_started`, index 1 first
 *   pidGone(pid): boolean            no such process, or only its zombie
 */
import { readFileSync } from 'node:fs';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export const GREETING = 'echo-upstream-greeting\n';

export interface Held {
  /** 'forwarded': the upstream's greeting came through; 'refused': anything else came first, or the close. */
  readonly outcome: 'forwarded' | 'refused';
  readonly localPort: number;
  readonly socket: TLSSocket;
  /** Resolves when the socket has closed, with the time it closed. */
  readonly closed: Promise<number>;
}

export function holdTls(port: number, creds: ConnectionOptions, o: { localAddress?: string; timeoutMs?: number } = {}): Promise<Held> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...creds, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    let localPort = 0;
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
    let got = '';
    const done = (outcome: Held['outcome']) => {
      clearTimeout(timer);
      socket.off('data', onData);
      if (outcome === 'refused') socket.destroy();
      resolve({ outcome, localPort: localPort || (socket.localPort ?? 0), socket, closed });
    };
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (got.startsWith(GREETING)) done('forwarded');
      else if (!GREETING.startsWith(got)) done('refused');
    };
    const timer = setTimeout(() => done('refused'), o.timeoutMs ?? 15_000);
    socket.once('connect', () => { localPort = socket.localPort ?? 0; });
    socket.on('data', onData);
    socket.on('error', () => { /* the outcome is the close */ });
    socket.once('close', () => done('refused'));
  });
}

/** Writes a probe through the connection and waits for the echo upstream to send it back. */
export function echoes(h: Held, timeoutMs = 5_000): Promise<boolean> {
  const probe = `probe-${h.localPort}`;
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => finish(false), timeoutMs);
    const onData = (d: Buffer) => { got += d.toString(); if (got.includes(probe)) finish(true); };
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      h.socket.off('data', onData);
      h.socket.off('close', onClose);
      resolve(ok);
    };
    const onClose = () => finish(false);
    h.socket.on('data', onData);
    h.socket.once('close', onClose);
    if (h.socket.destroyed) return finish(false);
    h.socket.write(probe);
  });
}

type Line = Record<string, unknown>;

/** The data-plane process that accepted or refused the connection (a refusal line may have been coalesced). */
export function processOf(lines: readonly Line[], h: Pick<Held, 'localPort'>, peerHost = '127.0.0.1'): number | undefined {
  const l = lines.find((x) => (x.event === 'connection_accepted' || x.event === 'connection_refused') && x.peer === `${peerHost}:${h.localPort}`);
  return typeof l?.dataplane === 'number' ? l.dataplane : undefined;
}

export function dataPlanePids(lines: readonly Line[]): number[] {
  const started = lines.find((l) => l.event === 'dataplane_started');
  if (!started || !Array.isArray(started.pids)) throw new Error('no dataplane_started line with pids');
  return started.pids as number[];
}

export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // Reparented to an init that has not reaped it yet: dead all the same.
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
