// The naive Node terminator the gateway is measured against: tls.createServer
// with a required client certificate and pipe() both ways to the backend.
// Usage: node node-baseline.mjs LISTEN_PORT BACKEND_PORT CA CERT KEY
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const [listenPort, backendPort, ca, cert, key] = process.argv.slice(2);
if (!key) {
  process.stderr.write('usage: node-baseline.mjs LISTEN_PORT BACKEND_PORT CA CERT KEY\n');
  process.exit(2);
}

const server = tls.createServer(
  {
    ca: readFileSync(ca),
    cert: readFileSync(cert),
    key: readFileSync(key),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  },
  (peer) => {
    peer.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: Number(backendPort), noDelay: true });
    const closeBoth = () => {
      peer.destroy();
      upstream.destroy();
    };
    peer.on('error', closeBoth);
    upstream.on('error', closeBoth);
    peer.pipe(upstream).pipe(peer);
  },
);
server.on('tlsClientError', () => {}); // refused handshakes are not the baseline's concern
server.listen(Number(listenPort), '127.0.0.1', () => process.stdout.write(`listening ${listenPort}\n`));
process.on('SIGTERM', () => process.exit(0));
