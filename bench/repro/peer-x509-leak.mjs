// Reproduces the Node 20 leak that bench/FINDINGS.md names: a bare mutual-TLS
// server whose connection handler reads the peer certificate one way or
// another, churned with full handshakes; prints the server's RSS as it goes.
//
//   node bench/repro/peer-x509-leak.mjs x509     # socket.getPeerX509Certificate(): grows ~4.6 KiB per handshake on 20.20
//   node bench/repro/peer-x509-leak.mjs legacy   # socket.getPeerCertificate(): flat (what the gateway uses)
//   node bench/repro/peer-x509-leak.mjs none     # neither: flat
// Optional second argument: handshakes (default 20,000, at most 200,000). Loopback only; needs openssl.
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';

const [mode = 'x509', countArg = '20000'] = process.argv.slice(2);

if (process.env.REPRO_SERVER_DIR) {
  const d = process.env.REPRO_SERVER_DIR;
  const read = (f) => readFileSync(join(d, f));
  const server = tls.createServer({ ca: read('ca.pem'), cert: read('srv.pem'), key: read('srv-key.pem'), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => {
    if (mode === 'x509') s.getPeerX509Certificate();
    else if (mode === 'legacy') s.getPeerCertificate();
    s.on('error', () => {});
    s.end('ok');
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', () => process.send({ rssMiB: Math.round(process.memoryUsage().rss / 1048576) }));
} else {
  if (!['x509', 'legacy', 'none'].includes(mode)) throw new Error('mode is x509, legacy or none');
  const total = Math.min(Number(countArg) || 20000, 200000);
  const dir = mkdtempSync(join(tmpdir(), 'x509-leak-'));
  const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=repro CA');
  for (const [name, ext] of [['srv', 'subjectAltName=IP:127.0.0.1'], ['cli', 'subjectAltName=URI:spiffe://repro/client/a']]) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext + '\n');
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
  const child = fork(new URL(import.meta.url).pathname, [mode], { env: { ...process.env, REPRO_SERVER_DIR: dir } });
  const next = () => new Promise((r) => child.once('message', r));
  const { port } = await next();
  const opts = { host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'cli.pem')), key: readFileSync(join(dir, 'cli-key.pem')) };
  const once = () => new Promise((resolve) => {
    const c = tls.connect(opts, () => c.resume());
    c.on('error', resolve);
    c.on('close', resolve);
  });
  const deadline = Date.now() + 300_000;
  for (let done = 0; done < total && Date.now() < deadline;) {
    await Promise.all(Array.from({ length: 8 }, once));
    done += 8;
    if (done % 5000 < 8) {
      child.send('rss');
      console.log(`${mode}: ${done} handshakes, server RSS ${(await next()).rssMiB} MiB`);
    }
  }
  child.kill();
  rmSync(dir, { recursive: true, force: true });
}
