/**
 * A browser reduced to its sockets: a TLS connection to 8787 over a TCP
 * socket the test can reset (RST, as a killed browser's kernel sends) or
 * close at any byte, and the raw requests a browser would write.
 */
import { connect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';

export interface RawClient {
  readonly tcp: Socket;
  readonly tls: TLSSocket;
  /** Everything received so far (decrypted). */
  received(): Buffer;
  /** Resolves once `pattern` appears in what was received, or rejects after `timeoutMs`. */
  waitFor(pattern: string, timeoutMs?: number): Promise<void>;
  /** The kernel's answer to a killed process: RST. */
  reset(): void;
  closed(): Promise<void>;
}

export async function rawClient(port: number, ca: string): Promise<RawClient> {
  const tcp = connect({ host: '127.0.0.1', port });
  tcp.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    tcp.once('connect', resolve);
    tcp.once('error', reject);
  });
  const tls = tlsConnect({ socket: tcp, servername: 'localhost', ca });
  tls.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('close', () => reject(new Error('closed during the TLS handshake')));
  });
  let got = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  tls.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    for (const w of waiters) w();
  });
  const closed = new Promise<void>((r) => tls.once('close', () => r()));
  return {
    tcp,
    tls,
    received: () => got,
    waitFor: (pattern, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!got.includes(pattern)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${JSON.stringify(pattern)} within ${timeoutMs} ms; got ${JSON.stringify(got.subarray(0, 200).toString('latin1'))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    reset: () => {
      if (!tcp.destroyed) tcp.resetAndDestroy();
    },
    closed: () => closed,
  };
}

export function getRequest(path: string, port: number, headers: Record<string, string> = {}): string {
  return head(`GET ${path} HTTP/1.1`, { host: `localhost:${port}`, ...headers });
}

export function upgradeRequest(path: string, port: number, headers: Record<string, string> = {}): string {
  return head(`GET ${path} HTTP/1.1`, {
    host: `localhost:${port}`, upgrade: 'websocket', connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', ...headers,
  });
}

function head(line: string, headers: Record<string, string>): string {
  return `${line}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}
