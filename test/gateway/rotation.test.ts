/**
 * A running gateway through the certificate lifecycle, with live TLS
 * connections in front of a loopback echo "scheduler": it serves a renewed
 * certificate and, after rotate-ca switch, one from the new CA, without
 * dropping a connection; rotate-ca finish closes exactly the sessions whose
 * certificate no longer chains to a trusted CA, audits why, and refuses a
 * new handshake with such a certificate as unknown_ca. The expiry gauge
 * follows every CA.
 */
import t, { type Test } from 'tap';
import { createServer } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster, type TestCluster, type TestIssued } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import { renewCertificate } from '../../src/pki/renew.js';
import { beginRotation, finishRotation, switchRotation } from '../../src/pki/rotation.js';
import { SessionRegistry } from '../../src/runtime/sessions.js';
import { changePassphrase } from '../../src/pki/passphrase-change.js';
import { issueCertificate } from '../../src/pki/issue.js';
import { revokeCertificate } from '../../src/pki/revocation.js';
import { writeFileAtomic } from '../../src/pki/state-dir.js';

interface Peer {
  socket: TLSSocket;
  /** Serial of the certificate the gateway presented. */
  served: string;
  closed: () => boolean;
  echo(text: string): Promise<string>;
}

function open(gw: TestGateway, id: TestIssued, ca: string): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: gw.port, ca, cert: id.certPem, key: id.keyPem, checkServerIdentity: () => undefined }, () => {
      let closed = false;
      socket.on('close', () => { closed = true; });
      resolve({
        socket,
        served: socket.getPeerCertificate().serialNumber.toLowerCase(),
        closed: () => closed,
        echo: (text) => new Promise((r, j) => {
          socket.once('data', (d) => r(d.toString()));
          socket.once('close', () => j(new Error('closed')));
          socket.write(text);
        }),
      });
    });
    socket.once('error', reject);
  });
}

/** Opens a connection once the gateway's reload made it possible (the watcher polls every 250 ms). */
function openEventually(gw: TestGateway, id: TestIssued, ca: string, until: (p: Peer) => boolean = () => true): Promise<Peer> {
  return waitFor(async () => {
    const p = await open(gw, id, ca);
    if (until(p) && (await p.echo('ping')) === 'ping') return p;
    p.socket.destroy();
    return undefined;
  }, { timeoutMs: 15_000, intervalMs: 200, what: 'a connection through the reloaded gateway' });
}

async function setup(t: Test, flags: (c: TestCluster) => Record<string, string> = () => ({})): Promise<{ cluster: TestCluster; gw: TestGateway }> {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = createServer((s) => { s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${(echo.address() as { port: number }).port}`, t, flags: { inspect: 'false', ...flags(cluster) } });
  return { cluster, gw };
}

async function expiryLabels(gw: TestGateway): Promise<Record<string, number>> {
  const g = await gw.gw.context.metrics.certificateExpirySeconds.get();
  return Object.fromEntries(g.values.map((v) => [String(v.labels.certificate), v.value]));
}

t.test('renewal and a whole CA rotation on a running gateway: nothing dropped that was not meant to be', async (t) => {
  const { cluster, gw } = await setup(t);
  const o = { dir: cluster.dir, passphrase: cluster.passphrase };
  const alice = await cluster.issue('client', 'alice');
  const a1 = await open(gw, alice, cluster.caPem);
  t.equal(await a1.echo('hello'), 'hello');

  // 1. The gateway's own certificate, renewed.
  const renewed = await renewCertificate({ ...o, name: 'gateway' });
  const a2 = await openEventually(gw, alice, cluster.caPem, (p) => p.served === renewed.entry.serial);
  t.equal(a2.served, renewed.entry.serial, 'new handshakes get the renewed certificate');
  t.equal(await a1.echo('still'), 'still', 'the connection opened before the renewal is untouched');

  // 2. begin: the new CA is trusted beside the old one; its certificates are accepted.
  const begin = await beginRotation(o);
  const trust = readFileSync(join(cluster.dir, 'ca.pem'), 'utf8');
  const bob = await cluster.issue('client', 'bob');
  t.match(new X509Certificate(bob.certPem).issuer, /cluster CA 2/);
  const b1 = await openEventually(gw, bob, trust);
  await waitFor(async () => (await expiryLabels(gw))[`ca:${begin.nextCa.serial}`] !== undefined, { what: 'the new CA in the expiry gauge' });
  const during = await expiryLabels(gw);
  t.ok(during[`ca:${begin.previousCa.serial}`]! > 0 && during[`ca:${begin.nextCa.serial}`]! > 0, 'both CAs have an expiry series');
  t.equal(during.ca, Math.min(during[`ca:${begin.previousCa.serial}`]!, during[`ca:${begin.nextCa.serial}`]!), '"ca" is the soonest');

  // 3. switch: the gateway serves a new-CA certificate; everything open stays open.
  await switchRotation(o);
  const gwNow = new X509Certificate(readFileSync(cluster.gatewayCertPath, 'utf8'));
  const b2 = await openEventually(gw, bob, trust, (p) => p.served === gwNow.serialNumber.toLowerCase());
  t.match(b2.socket.getPeerCertificate().issuer.CN, /cluster CA 2/, 'served by the new CA');
  for (const [name, p] of [['a1', a1], ['a2', a2], ['b1', b1]] as const) t.equal(await p.echo(name), name, `${name} still open after switch`);
  const oldOnly = await open(gw, alice, cluster.caPem).then(() => 'accepted', (e: NodeJS.ErrnoException) => e.code ?? 'refused');
  t.not(oldOnly, 'accepted', `a peer trusting only the old CA can no longer connect after switch (${oldOnly}): why bundles carry both before it`);

  // 4. finish: alice's certificate (old CA) is cut off, live sessions too; bob's are untouched.
  const fin = await finishRotation({ ...o, force: true });
  t.same(fin.cutOff.map((e) => e.name).sort(), ['alice']);
  await waitFor(() => a1.closed() && a2.closed(), { timeoutMs: 10_000, what: 'old-CA sessions closed' });
  const line = await gw.waitForLog((l) => l.event === 'ca_removed');
  t.match(line, { level: 'audit', removed_cas: [begin.previousCa.serial], reason: 'unknown_ca', sessions_closed: 2, serials: [alice.serial] });
  t.ok(gw.audits('connection_closed').some((l) => l.serial === alice.serial && l.reason === 'revoked'), 'each closed connection audited as revocation closes it');
  for (const [name, p] of [['b1', b1], ['b2', b2]] as const) t.equal(await p.echo(name), name, `${name} (new CA) still open after finish`);
  await open(gw, alice, trust).then((p) => p.echo('x')).catch(() => undefined);
  const refusal = await gw.waitForLog((l) => l.event === 'connection_refused' && l.claimed_uri === alice.uri);
  t.match(refusal, { level: 'audit', reason: 'unknown_ca' }, 'a new handshake with an old-CA certificate is refused as unknown_ca');
  await waitFor(async () => (await expiryLabels(gw))[`ca:${begin.previousCa.serial}`] === undefined, { what: 'the retired CA leaves the gauge' });
  t.ok((await expiryLabels(gw))[`ca:${begin.nextCa.serial}`]! > 0);
});

t.test('certs passphrase under a running gateway: revocations keep applying, and a renewed key loads once its passphrase file is replaced', async (t) => {
  const NEW = 'the-new-passphrase-1';
  let file = '';
  const { cluster, gw } = await setup(t, (c) => {
    file = join(c.root, 'passphrase');
    writeFileSync(file, c.passphrase, { mode: 0o600 });
    return { 'passphrase-file': file };
  });
  const alice = await cluster.issue('client', 'alice');
  const a1 = await open(gw, alice, cluster.caPem);
  await changePassphrase({ dir: cluster.dir, passphrase: cluster.passphrase, newPassphrase: NEW });
  await gw.waitForLog((l) => l.event === 'trust_reload_unchanged' || l.event === 'trust_reload_failed', 10_000, 'the re-encrypted key noticed');
  t.notOk(gw.lines.some((l) => l.event === 'trust_reload_failed'), 'a re-encrypted key is no reason to fail: the certificate, and so the key in memory, did not change');
  t.match(gw.lines.find((l) => l.event === 'gateway_key_kept'), { level: 'warn', reason: /wrong passphrase for \S+gateway-key\.pem/ }, 'and the operator is told to update the passphrase source');

  // A revocation made with the new passphrase still reaches live sessions.
  const bob = await issueCertificate({ dir: cluster.dir, passphrase: NEW, role: 'client', name: 'bob' });
  const b1 = await open(gw, { ...alice, certPem: bob.certPem, keyPem: bob.keyPem, serial: bob.serial, uri: bob.uri }, cluster.caPem);
  await revokeCertificate({ dir: cluster.dir, passphrase: NEW, name: 'bob' });
  await waitFor(() => b1.closed(), { timeoutMs: 5_000, what: 'the revoked session closed' });

  // A renewed gateway key needs the passphrase: refused (old material kept) until the file says the new one.
  const renewed = await renewCertificate({ dir: cluster.dir, passphrase: NEW, name: 'gateway' });
  const failed = await gw.waitForLog((l) => l.event === 'trust_reload_failed', 10_000, 'the renewed key refused under the old passphrase');
  t.equal(failed.code, 'GW_PKI_WRONG_PASSPHRASE');
  t.not((await open(gw, alice, cluster.caPem)).served, renewed.entry.serial, 'the previous certificate is still served');
  t.equal(await a1.echo('alive'), 'alive');
  writeFileAtomic(file, NEW, 0o600);
  const a2 = await openEventually(gw, alice, cluster.caPem, (p) => p.served === renewed.entry.serial);
  t.equal(a2.served, renewed.entry.serial, 'the passphrase file is watched: the renewed certificate is served once it holds the new passphrase');
  t.equal(await a1.echo('still'), 'still', 'nothing was dropped');
});

t.test('closeUntrusted keeps sessions that still chain, closes the rest, and fails closed without a certificate', async (t) => {
  const reg = new SessionRegistry();
  const closed: string[] = [];
  const add = (name: string, serial: string, der?: Buffer) => reg.add({ kind: 'dask', serial, ...(der ? { peerCertificate: () => der } : {}), close: () => closed.push(name) });
  let checks = 0;
  const good = Buffer.from('good');
  const bad = Buffer.from('bad');
  add('g1', 'aa', good);
  add('g2', 'aa', good);
  add('b1', 'bb', bad);
  add('n1', 'cc');
  reg.add({ kind: 'dashboard-ws', tokenId: 'tok', close: () => closed.push('token') });
  const r = reg.closeUntrusted((der) => { checks++; return der.equals(good); });
  t.same(r.serials.sort(), ['bb', 'cc']);
  t.equal(r.sessions, 2);
  t.same(closed.sort(), ['b1', 'n1']);
  t.equal(checks, 2, 'one check per serial');
  t.same(reg.serials(), ['aa']);
  t.same(reg.tokenIds(), ['tok'], 'token sessions are not certificate sessions');
});
