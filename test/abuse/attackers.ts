/**
 * Attack clients for the abuse tests, loopback only and bounded by the
 * caller: Dask connections held open with a certificate, huge frame 0s,
 * silent TCP sockets, idle TLS sessions; and a sampler of the gateway
 * process's peak RSS and descriptors while an attack runs.
 *
 * Exports:
 *   daskHold(port, creds, o)   TLS + Dask handshake + `identity`; resolves
 *                              {socket, refused, text}: refused when the
 *                              gateway answered in Dask framing with its reason
 *   bigFrame0(port, creds, o)  TLS + handshake + a message declaring a frame 0
 *                              of `bytes`, then streams it as fast as the
 *                              gateway reads; {socket, sent(), gone}
 *   rawHold(port, o)           a silent TCP socket; {socket, gone}
 *   tlsHold(port, tls, o)      a TLS session that sends nothing; {socket, outcome}
 *   sampleProcess(pid)         {stop(): {peakRssMiB, peakFds}}
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket, type ConnectionOptions } from 'node:tls';
import { LISTENER_HANDSHAKE } from '../../src/wire/reply.js';
import { msg } from '../wire/wire-helpers.js';
import { openFds, rssBytes } from '../hardening/harness.js';

export interface Creds {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

const tlsOpts = (port: number, c: Creds, localAddress?: string): ConnectionOptions & { localAddress?: string } => ({
  host: '127.0.0.1', port, ca: c.ca, cert: c.cert, key: c.key, checkServerIdentity: () => undefined, ...(localAddress ? { localAddress } : {}),
});

/** `identity`, the first request a Client's pool sends. */
const IDENTITY = msg({ op: 'identity', reply: true });

export interface Held {
  readonly socket: TLSSocket;
  /** The gateway refused it and said why (in Dask's framing). */
  readonly refused: boolean;
  /** What the peer read: the refusal text, or the scheduler's identity reply. */
  readonly text: string;
}

/** A pooled Dask rpc connection opened and kept: what a client certificate hoarding slots looks like. */
export function daskHold(port: number, c: Creds, o: { localAddress?: string; timeoutMs?: number } = {}): Promise<Held> {
  return new Promise((resolve) => {
    const s = tlsConnect(tlsOpts(port, c, o.localAddress), () => s.write(Buffer.concat([LISTENER_HANDSHAKE, IDENTITY])));
    let got = Buffer.alloc(0);
    const done = (refused: boolean) => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve({ socket: s, refused, text: got.toString('latin1') });
    };
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const text = got.toString('latin1');
      if (text.includes('scheduler-gateway refused')) done(true);
      else if (text.includes('Scheduler')) done(false);
    };
    const timer = setTimeout(() => done(true), o.timeoutMs ?? 15_000);
    s.on('data', onData);
    s.on('error', () => {});
    s.once('close', () => done(true));
  });
}

export interface Flood {
  readonly socket: TLSSocket;
  sent(): number;
  readonly gone: Promise<void>;
}

/** A message whose frame 0 is `bytes` long, streamed after the handshake until the gateway stops reading or closes. */
export function bigFrame0(port: number, c: Creds, o: { bytes: number; localAddress?: string }): Promise<Flood> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(tlsOpts(port, c, o.localAddress));
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const header = Buffer.alloc(24);
    header.writeBigUInt64LE(BigInt(16 + o.bytes), 0);
    header.writeBigUInt64LE(1n, 8);
    header.writeBigUInt64LE(BigInt(o.bytes), 16);
    const pump = () => {
      while (sent < o.bytes && !s.destroyed) {
        const n = Math.min(chunk.length, o.bytes - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump);
      }
    };
    s.once('secureConnect', () => {
      s.write(Buffer.concat([LISTENER_HANDSHAKE, header]));
      pump();
      resolve({ socket: s, sent: () => sent, gone });
    });
    s.on('error', () => {});
    s.resume(); // read (and drop) the scheduler's handshake
    s.once('close', () => reject(new Error('closed before the handshake')));
  });
}

/** A TCP connection that never speaks (reads, so it sees the gateway's probe and FIN). */
export function rawHold(port: number, o: { localAddress?: string } = {}): Promise<{ socket: Socket; gone: Promise<void> }> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    s.resume();
    const done = () => resolve({ socket: s, gone });
    s.once('connect', done);
    s.once('close', done);
  });
}

/** A TLS session (optionally with a client certificate) that completes its handshake and then says nothing. */
export function tlsHold(port: number, tls: { ca: string; cert?: string; key?: string }, o: { localAddress?: string } = {}): Promise<{ socket: TLSSocket; outcome: 'held' | 'refused' }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...tls, checkServerIdentity: () => undefined, ...(o.localAddress ? { localAddress: o.localAddress } : {}) } as ConnectionOptions);
    let settled = false;
    const done = (outcome: 'held' | 'refused') => {
      if (settled) return;
      settled = true;
      resolve({ socket: s, outcome });
    };
    s.once('secureConnect', () => done('held'));
    s.on('error', () => done('refused'));
    s.once('close', () => done('refused'));
  });
}

/** Peak RSS and descriptor count of a process, sampled every 100 ms until stop(). */
export function sampleProcess(pid: number): { stop(): { peakRssMiB: number; peakFds: number } } {
  let peakRss = 0;
  let peakFds = 0;
  const tick = () => {
    try {
      peakRss = Math.max(peakRss, rssBytes(pid));
      peakFds = Math.max(peakFds, openFds(pid));
    } catch {
      // the process is gone
    }
  };
  tick();
  const timer = setInterval(tick, 100);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { peakRssMiB: Math.round((peakRss / 1048576) * 10) / 10, peakFds };
    },
  };
}

/**
 * The legitimate client during an attack: submits a task every 200 ms for
 * `seconds`, then prints {"ok", "failed", "errors"} (runClient's last JSON line).
 */
export function steadyClientScript(prelude: string, seconds: number): string {
  return `${prelude}
import time
ok, failed, errors = 0, 0, []
end = time.time() + ${seconds}
i = 0
while time.time() < end:
    i += 1
    try:
        assert c.submit(lambda x: x * 2, i, pure=False).result(timeout=30) == 2 * i
        ok += 1
    except Exception as e:
        failed += 1
        errors.append(f"{type(e).__name__}: {e}"[:200])
    time.sleep(0.2)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:5], "workers": len(c.scheduler_info()["workers"])}))
c.close()
`;
}
