/**
 * Full-duplex forwarding between an authenticated peer and its upstream
 * connection. Without an inspector it is two stream.pipe() calls: Node moves
 * the chunks, backpressure is pipe's, and nothing is allocated per chunk.
 * With an inspector every chunk goes through it and what it returns is
 * written instead: to the scheduler what it forwards, to the peer the
 * scheduler's bytes plus any answer the gateway gives in the scheduler's
 * place. One handler per direction is bound once per connection.
 *
 * End of stream on one side half-closes the other (FIN after FIN), then a
 * close deadline bounds how long the other direction may linger. An error
 * or abrupt close on either side destroys both.
 */
import type { Socket } from 'node:net';
import type { Denial, StreamInspector } from './inspector.js';

export interface PipeHooks {
  /** Called once, when both sockets are gone. */
  onClosed(why: 'peer_closed' | 'scheduler_closed' | 'peer_error' | 'scheduler_error' | 'close_deadline'): void;
  onDenied(d: Denial, direction: 'in' | 'out'): void;
}

export function pipeBoth(peer: Socket, upstream: Socket, inspector: StreamInspector | undefined, closeDeadlineMs: number, hooks: PipeHooks): void {
  let why: Parameters<PipeHooks['onClosed']>[0] | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let closedCount = 0;

  const destroyBoth = () => {
    peer.destroy();
    upstream.destroy();
  };
  const onEnd = (side: 'peer_closed' | 'scheduler_closed') => () => {
    why ??= side;
    // Half-closed: the other direction may still flow, but not forever.
    deadline ??= setTimeout(() => {
      why = 'close_deadline';
      destroyBoth();
    }, closeDeadlineMs).unref();
  };
  const onError = (side: 'peer_error' | 'scheduler_error') => () => {
    why ??= side;
    destroyBoth();
  };
  const onClose = (side: 'peer_closed' | 'scheduler_closed', self: Socket, other: Socket) => (hadError: boolean) => {
    why ??= side;
    // One side is gone for good. An abrupt close cuts the other now; after a
    // clean one the other side gets what is already queued (end flushes),
    // then goes too: nothing it sends could be delivered any more.
    if (hadError || !self.readableEnded || other.writableFinished) other.destroy();
    else other.end(() => other.destroy());
    if (++closedCount === 2) {
      if (deadline) clearTimeout(deadline);
      hooks.onClosed(why);
    }
  };

  peer.on('end', onEnd('peer_closed'));
  upstream.on('end', onEnd('scheduler_closed'));
  peer.on('error', onError('peer_error'));
  upstream.on('error', onError('scheduler_error'));
  peer.on('close', onClose('peer_closed', peer, upstream));
  upstream.on('close', onClose('scheduler_closed', upstream, peer));

  if (!inspector) {
    peer.pipe(upstream);
    upstream.pipe(peer);
    return;
  }
  const deny = (d: Denial, direction: 'in' | 'out') => {
    hooks.onDenied(d, direction);
    destroyBoth();
  };
  // One pair of output lists per connection, reused for every chunk.
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const toPeer: Buffer[] = [];
  peer.on('data', (chunk: Buffer) => {
    const denial = inspector.fromPeer(chunk, up, toPeer);
    if (denial) {
      up.length = toPeer.length = 0;
      return deny(denial, 'in');
    }
    if (toPeer.length > 0) writeAll(peer, toPeer);
    if (up.length > 0 && !writeAll(upstream, up)) peer.pause();
  });
  upstream.on('data', (chunk: Buffer) => {
    const denial = inspector.fromScheduler(chunk, down);
    if (denial) {
      down.length = 0;
      return deny(denial, 'out');
    }
    if (!writeAll(peer, down)) upstream.pause();
  });
  upstream.on('drain', () => peer.resume());
  peer.on('drain', () => upstream.resume());
  peer.on('end', () => upstream.end());
  upstream.on('end', () => peer.end());
}

/** Writes and empties bufs; several go out as one writev. Returns false under backpressure. */
function writeAll(dst: Socket, bufs: Buffer[]): boolean {
  let ok = true;
  if (bufs.length === 1) ok = dst.write(bufs[0]!);
  else {
    dst.cork();
    for (const b of bufs) ok = dst.write(b);
    dst.uncork();
  }
  bufs.length = 0;
  return ok;
}
