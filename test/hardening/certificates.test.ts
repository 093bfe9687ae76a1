/**
 * The 14 ways a peer certificate can be wrong, in one table against one gateway on
 * 8786: each is refused, audited with its own reason, counted in
 * refusals_total{port="8786",reason}, and never reaches the upstream. A
 * loopback echo stands in for the scheduler (test/terminator/refusals.test.ts
 * runs nine of these against real Dask); a valid client is served at the end.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { makeTestCluster, asIssuer, forgeCertificate, EKU, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { probeTls } from '../terminator/tls-client.js';
import { startEcho, type EchoServer } from './harness.js';
import { startCertificateSwapRelay } from './cert-swap-relay.js';
import { HANDSHAKE, msg } from '../wire/wire-helpers.js';

/** A Dask handshake: the gateway's inspection holds anything short of a whole message. */
const PING = msg(HANDSHAKE);

const HOUR = 3_600_000;

let cluster: TestCluster;
let foreign: TestCluster;
let gw: TestGateway;
let echo: EchoServer;

t.before(async () => {
  cluster = await makeTestCluster();
  foreign = await makeTestCluster();
  echo = await startEcho(t);
  gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { 'failed-handshake-rate': '100000' } });
});
t.teardown(() => { cluster?.cleanup(); foreign?.cleanup(); });

const uri = (path: string) => `spiffe://${cluster.clusterId}/${path}`;
const pair = (c: { certPem: string; keyPem: string; chainPem?: string }) => ({ cert: c.chainPem ?? c.certPem, key: c.keyPem });

async function refusalCount(reason: string): Promise<number> {
  const m = await gw.gw.context.metrics.refusalsTotal.get();
  return m.values.filter((v) => v.labels.port === '8786' && v.labels.reason === reason).reduce((a, v) => a + v.value, 0);
}

interface Case {
  readonly name: string;
  readonly reason: string;
  /** The OpenSSL verification code expected in the audit detail, when OpenSSL is the one that objects. */
  readonly detail?: RegExp;
  readonly creds: () => Promise<{ cert?: string; key?: string }>;
}

const cases: Case[] = [
  { name: 'no client certificate', reason: 'no_certificate', creds: async () => ({}) },
  { name: 'a certificate from a foreign CA', reason: 'unknown_ca', detail: /UNABLE_TO|ISSUER/, creds: async () => pair(await foreign.issue('client', 'mallory')) },
  {
    name: 'an expired certificate', reason: 'expired', detail: /EXPIRED/,
    creds: async () => pair(await cluster.forge({ uris: [uri('client/old')], notBefore: new Date(Date.now() - 48 * HOUR), notAfter: new Date(Date.now() - 24 * HOUR) })),
  },
  {
    name: 'a certificate not yet valid', reason: 'not_yet_valid', detail: /NOT_YET_VALID/,
    creds: async () => pair(await cluster.forge({ uris: [uri('client/early')], notBefore: new Date(Date.now() + 24 * HOUR), notAfter: new Date(Date.now() + 48 * HOUR) })),
  },
  {
    name: 'a revoked certificate', reason: 'revoked',
    creds: async () => {
      const c = await cluster.issue('client', 'fired');
      await cluster.revoke(c.serial);
      await gw.waitForLog((l) => l.event === 'trust_reloaded' && Array.isArray(l.newly_revoked) && (l.newly_revoked as string[]).includes(c.serial), 15_000, 'revocation reload');
      return pair(c);
    },
  },
  { name: "another cluster's identity under the same CA", reason: 'wrong_cluster', creds: async () => pair(await cluster.forge({ uris: ['spiffe://another-cluster/client/eve'] })) },
  { name: 'the gateway role from outside', reason: 'wrong_role', creds: async () => pair(await cluster.forge({ uris: [uri('gateway')], eku: [EKU.clientAuth] })) },
  { name: 'the scheduler role from outside', reason: 'wrong_role', creds: async () => pair(await cluster.issue('scheduler', 'scheduler-impostor')) },
  { name: 'a certificate without a URI SAN', reason: 'missing_uri_san', creds: async () => pair(await cluster.forge({ dns: ['worker.example'] })) },
  { name: 'a certificate with two URI SANs', reason: 'multiple_uri_sans', creds: async () => pair(await cluster.forge({ uris: [uri('client/a'), uri('admin/b')] })) },
  { name: 'a certificate with the serverAuth EKU only', reason: 'wrong_eku', creds: async () => pair(await cluster.forge({ uris: [uri('client/server-only')], eku: [EKU.serverAuth] })) },
  { name: 'a CA certificate used as a leaf', reason: 'ca_as_leaf', creds: async () => pair(await cluster.forge({ uris: [uri('client/ca')], isCA: true })) },
  {
    name: 'a chain longer than the CA allows (an intermediate under a path-length-0 root)', reason: 'chain_too_long', detail: /PATH_LENGTH|CHAIN_TOO_LONG/,
    creds: async () => {
      const intermediate = await cluster.forge({ isCA: true, commonName: 'rogue intermediate', eku: null });
      return pair(await cluster.forge({ issuer: asIssuer(intermediate), uris: [uri('client/deep')] }));
    },
  },
  { name: 'a self-signed leaf', reason: 'self_signed', detail: /SELF_SIGNED/, creds: async () => pair(await forgeCertificate({ uris: [uri('client/selfie')] })) },
];

for (const c of cases) {
  t.test(`refuses ${c.name} with audit reason ${c.reason}`, async (t) => {
    const creds = await c.creds();
    const before = await refusalCount(c.reason);
    const upstreamBefore = echo.connections();
    const r = await probeTls(gw.port, { ca: cluster.caPem, ...creds });
    t.equal(r.outcome, 'closed', 'closed without forwarding a byte');
    const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${r.localPort}`, 15_000, `refusal of ${c.name}`);
    t.equal(line.reason, c.reason, 'audited with its own reason');
    t.equal(line.level, 'audit', 'at audit level');
    if (c.detail) t.match(String(line.detail), c.detail, 'the OpenSSL verdict is in the detail');
    t.equal(await refusalCount(c.reason), before + 1, 'counted once in refusals_total');
    t.equal(echo.connections(), upstreamBefore, 'no upstream connection was opened');
    t.equal(gw.audits('connection_accepted').filter((l) => l.peer === `127.0.0.1:${r.localPort}`).length, 0, 'never accepted');
  });
}

t.test('refuses a certificate presented without its private key (key not matching the certificate)', async (t) => {
  // Node, Python and OpenSSL refuse to load a mismatched pair at all:
  const stolen = await cluster.issue('client', 'victim');
  const own = await cluster.issue('client', 'attacker');
  await t.rejects(probeTls(gw.port, { ca: cluster.caPem, cert: stolen.certPem, key: own.keyPem }), /key values mismatch|KEY_VALUES_MISMATCH/i,
    'the client stack refuses the pair locally, before connecting');
  // ...so a relay swaps the victim's certificate into the attacker's TLS 1.2 handshake.
  const relay = await startCertificateSwapRelay(gw.port, [Buffer.from(new X509Certificate(stolen.certPem).raw)]);
  t.teardown(() => relay.close());
  const mark = gw.lines.length;
  const before = await refusalCount('tls_handshake_failed');
  const r = await probeTls(relay.port, { ca: cluster.caPem, cert: own.certPem, key: own.keyPem, maxVersion: 'TLSv1.2' });
  t.equal(relay.swapped(), 1, 'the Certificate message was replaced');
  t.equal(r.outcome, 'closed', 'nothing forwarded');
  const line = await gw.waitForLog((l) => gw.lines.indexOf(l) >= mark && l.event === 'connection_refused', 15_000, 'refusal of the swapped certificate');
  t.equal(line.reason, 'tls_handshake_failed', 'refused in the handshake: the CertificateVerify signature does not match the certificate');
  t.match(String(line.detail), /SIGNATURE|DECRYPT/i, 'the detail names the signature failure');
  t.equal(await refusalCount('tls_handshake_failed'), before + 1, 'counted');
  t.equal(gw.audits('connection_accepted').filter((l) => gw.lines.indexOf(l) >= mark).length, 0, 'never accepted');
});

t.test('a valid client certificate is still served after every refusal', async (t) => {
  const alice = await cluster.issue('client', 'alice');
  const echoed = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, servername: 'localhost' }, () => s.write(PING));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no echo')); }, 15_000);
    s.on('data', (d: Buffer) => { clearTimeout(timer); s.end(); resolve(d.equals(PING) ? 'ping' : d.toString('hex')); });
    s.on('error', reject);
  });
  t.equal(echoed, 'ping', 'bytes travel through the gateway to the upstream and back');
  t.ok(gw.audits('connection_accepted').some((l) => l.uri === alice.uri), 'accepted and audited with its identity');
});
