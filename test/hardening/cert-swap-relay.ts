/**
 * A loopback relay that makes a peer present a certificate whose private key
 * it does not hold. Ordinary TLS stacks refuse to even try (they check the
 * key against the certificate locally), so a real client with certificate A
 * and key A talks TLS 1.2 through this relay, which replaces the Certificate
 * handshake message with certificate B on the way in. The client's
 * CertificateVerify is then signed by A's key while the gateway sees B: the
 * signature check must fail and the handshake must be refused.
 *
 * Only TLS 1.2 is possible: its handshake messages before ChangeCipherSpec
 * are plaintext. Everything after the client's ChangeCipherSpec is relayed
 * unchanged.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

const HANDSHAKE = 22;
const CHANGE_CIPHER_SPEC = 20;
const CERTIFICATE = 11;

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

function certificateMessage(ders: Buffer[]): Buffer {
  const list = Buffer.concat(ders.map((d) => Buffer.concat([u24(d.length), d])));
  const body = Buffer.concat([u24(list.length), list]);
  return Buffer.concat([Buffer.from([CERTIFICATE]), u24(body.length), body]);
}

function record(type: number, version: Buffer, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  version.copy(h, 1);
  h.writeUInt16BE(payload.length, 3);
  return Buffer.concat([h, payload]);
}

export interface SwapRelay {
  readonly port: number;
  /** How many Certificate messages were replaced. */
  swapped(): number;
  close(): Promise<void>;
}

/** Relays 127.0.0.1:<port> to the target, replacing the client's certificate chain with `presentDer`. */
export async function startCertificateSwapRelay(targetPort: number, presentDer: Buffer[]): Promise<SwapRelay> {
  let swapped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    upstream.pipe(client);
    let buf = Buffer.alloc(0);
    let hs = Buffer.alloc(0); // handshake bytes not yet forming a whole message
    let plaintext = true;
    client.on('data', (chunk: Buffer) => {
      if (!plaintext) return void upstream.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      while (plaintext && buf.length >= 5) {
        const len = buf.readUInt16BE(3);
        if (buf.length < 5 + len) break;
        const type = buf[0]!;
        const version = buf.subarray(1, 3);
        const payload = buf.subarray(5, 5 + len);
        buf = buf.subarray(5 + len);
        if (type !== HANDSHAKE) {
          upstream.write(record(type, version, payload));
          if (type === CHANGE_CIPHER_SPEC) {
            plaintext = false;
            if (buf.length) upstream.write(buf);
          }
          continue;
        }
        hs = Buffer.concat([hs, payload]);
        while (hs.length >= 4) {
          const mlen = hs.readUIntBE(1, 3);
          if (hs.length < 4 + mlen) break;
          let msg: Buffer = hs.subarray(0, 4 + mlen);
          hs = hs.subarray(4 + mlen);
          if (msg[0] === CERTIFICATE) {
            msg = certificateMessage(presentDer);
            swapped++;
          }
          upstream.write(record(HANDSHAKE, version, msg));
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    swapped: () => swapped,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}
