/**
 * Full-duplex forwarding between an authenticated peer and its upstream
 * connection. Without an inspector it is two stream.pipe() calls: Node moves
 * the chunks, backpressure is pipe's, and nothing is allocated per chunk.
 * With an inspector every chunk is shown to it first; one handler per
 * direction is bound once per connection, never per chunk.
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
  forwardInspected(peer, upstream, (c) => inspector.fromPeer(c), (d) => { hooks.onDenied(d, 'in'); destroyBoth(); });
  forwardInspected(upstream, peer, (c) => inspector.fromScheduler(c), (d) => { hooks.onDenied(d, 'out'); destroyBoth(); });
}

function forwardInspected(src: Socket, dst: Socket, check: (chunk: Buffer) => Denial | null, deny: (d: Denial) => void): void {
  const resume = () => src.resume();
  dst.on('drain', resume);
  src.on('data', (chunk: Buffer) => {
    const denial = check(chunk);
    if (denial) return deny(denial);
    if (!dst.write(chunk)) src.pause();
  });
  src.on('end', () => dst.end());
}
