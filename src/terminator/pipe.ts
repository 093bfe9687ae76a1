/**
 * Full-duplex forwarding between an authenticated peer and its upstream
 * connection. Every chunk goes through the inspector (a pass-through when
 * policy inspection is off) and what it returns is written instead: to the
 * scheduler what it forwards, to the peer the scheduler's bytes plus any
 * answer the gateway gives in the scheduler's place. One handler per
 * direction is bound once per connection; several buffers go out as one
 * writev.
 *
 * A socket is read only while nothing stops it: the other side's write queue
 * is full (backpressure), the peer's own queue is full of the gateway's
 * answers, or the memory budget holds the connection (hold()). Each brake is
 * released on its own, so the budget's pause is never undone by a drain.
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
  /** After every chunk either way and every drained queue: what the connection holds may have changed. */
  onFlow?(): void;
}

export interface Pipe {
  /** Bytes held on the peer's behalf now: the inspector's undecided message, both sockets' unread data and full write queues. */
  readonly heldBytes: number;
  /** The memory budget's brake: while on, neither socket is read, whatever backpressure says. */
  hold(on: boolean): void;
}

/** Forwards as is, for a gateway with policy inspection off. */
const PASS_THROUGH: StreamInspector = {
  fromPeer: (chunk, up) => { up.push(chunk); return null; },
  fromScheduler: (chunk, down) => { down.push(chunk); return null; },
  bufferedBytes: 0,
};

export function pipeBoth(peer: Socket, upstream: Socket, inspector: StreamInspector = PASS_THROUGH, closeDeadlineMs: number, hooks: PipeHooks): Pipe {
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

  const deny = (d: Denial, direction: 'in' | 'out') => {
    hooks.onDenied(d, direction);
    destroyBoth();
  };
  // The brakes on reading (see the header).
  let held = false;
  let upstreamFull = false;
  let peerFull = false;
  let answersFull = false;
  const read = () => {
    if (held || upstreamFull || answersFull) peer.pause();
    else peer.resume();
    if (held || peerFull) upstream.pause();
    else upstream.resume();
  };
  const flowed = () => hooks.onFlow?.();
  // One set of output lists per connection, reused for every chunk.
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const toPeer: Buffer[] = [];
  peer.on('data', (chunk: Buffer) => {
    const denial = inspector.fromPeer(chunk, up, toPeer);
    if (denial) {
      up.length = toPeer.length = 0;
      return deny(denial, 'in');
    }
    if (toPeer.length > 0 && !writeAll(peer, toPeer)) answersFull = true;
    if (up.length > 0 && !writeAll(upstream, up)) upstreamFull = true;
    if (answersFull || upstreamFull) read();
    flowed();
  });
  upstream.on('data', (chunk: Buffer) => {
    const denial = inspector.fromScheduler(chunk, down);
    if (denial) {
      down.length = 0;
      return deny(denial, 'out');
    }
    if (down.length > 0 && !writeAll(peer, down)) {
      peerFull = true;
      read();
    }
    flowed();
  });
  upstream.on('drain', () => {
    upstreamFull = false;
    read();
    flowed();
  });
  peer.on('drain', () => {
    peerFull = answersFull = false;
    read();
    flowed();
  });
  peer.on('end', () => upstream.end());
  upstream.on('end', () => peer.end());
  return {
    get heldBytes() {
      return inspector.bufferedBytes + peer.readableLength + upstream.readableLength + queued(peer) + queued(upstream);
    },
    hold(on: boolean) {
      held = on;
      read();
    },
  };
}

/**
 * A write queue counts once it is over the high-water mark: then a 'drain'
 * follows and the count is taken again. Below it the bytes are already on
 * their way, and no event would say when they are gone.
 */
function queued(s: Socket): number {
  return s.writableNeedDrain ? s.writableLength : 0;
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
