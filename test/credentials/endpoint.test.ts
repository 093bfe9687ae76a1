import t, { type Test } from 'tap';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { makeTestCluster, forgeCertificate, type TestCluster } from '../helpers/pki.js';
import { formatSpiffe } from '../../src/pki/identity.js';
import { waitFor } from '../helpers/wait.js';
import { fakeAws, fetchCred, startCredGateway, tempDir, writeCredentialsFile, secretsOf, type CredGateway } from './harness.js';

async function cluster(t: Test): Promise<TestCluster> {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  return c;
}

/** A gateway serving credentials from a file, and the credentials it holds. */
async function fileGateway(t: Test, c: TestCluster) {
  const file = join(tempDir(t), 'aws.json');
  const creds = fakeAws(3600_000);
  writeCredentialsFile(file, creds);
  const gw = await startCredGateway(t, c, { 'credentials-file': file });
  return { gw, creds, file };
}

function fetches(gw: CredGateway, result: string) {
  return gw.audits('credentials_fetch').filter((l) => l['result'] === result);
}

t.test('a worker certificate gets the AWS credential_process JSON, not cached, and the fetch is audited without the secret', async (t) => {
  const c = await cluster(t);
  const { gw, creds } = await fileGateway(t, c);
  const w = await c.issue('worker', 'w1');
  const r = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w });
  t.equal(r.status, 200);
  t.same(r.json(), { Version: 1, AccessKeyId: creds.accessKeyId, SecretAccessKey: creds.secretAccessKey, SessionToken: creds.sessionToken, Expiration: creds.expiration.toISOString() });
  t.equal(r.headers['cache-control'], 'no-store');
  t.equal(r.headers['content-type'], 'application/json');
  const audit = fetches(gw, 'allowed')[0]!;
  t.match(audit, { event: 'credentials_fetch', result: 'allowed', identity: w.uri, serial: w.serial, provider: 'aws', path: '/v1/credentials/aws' });
  const logged = JSON.stringify(gw.lines);
  for (const s of secretsOf(creds)) t.notOk(logged.includes(s), 'no secret in any log line');
});

t.test('an admin certificate reads the generic form, one provider or all of them', async (t) => {
  const c = await cluster(t);
  const { gw, creds } = await fileGateway(t, c);
  const a = await c.issue('admin', 'ops');
  const one = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: a });
  t.equal(one.status, 200);
  const all = await fetchCred(gw.credPort, '/v1/credentials', { caPath: c.caPath, cert: a });
  t.equal(all.status, 200);
  t.same(all.json(), {
    version: 1,
    credentials: [{ version: 1, provider: 'aws', expiration: creds.expiration.toISOString(), values: { access_key_id: creds.accessKeyId, secret_access_key: creds.secretAccessKey, session_token: creds.sessionToken } }],
  });
  const other = await fetchCred(gw.credPort, '/v1/credentials/gcp', { caPath: c.caPath, cert: a });
  t.equal(other.status, 503, 'a provider with nothing held is unavailable');
  t.match(other.json(), { error: { code: 'unavailable' } });
});

t.test('a client certificate is refused with 403 JSON and an audit line', async (t) => {
  const c = await cluster(t);
  const { gw, creds } = await fileGateway(t, c);
  const cl = await c.issue('client', 'alice');
  const r = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: cl });
  t.equal(r.status, 403);
  t.equal(r.headers['cache-control'], 'no-store');
  t.match(r.json(), { error: { code: 'forbidden', reason: 'wrong_role', message: /only worker and admin certificates/ } });
  t.notOk(r.body.includes(creds.accessKeyId), 'nothing of the credential in the refusal');
  t.match(fetches(gw, 'refused')[0], { reason: 'wrong_role', status: 403, identity: cl.uri, serial: cl.serial });
});

t.test('a request without a client certificate is refused and audited', async (t) => {
  const c = await cluster(t);
  const { gw } = await fileGateway(t, c);
  const r = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath });
  t.equal(r.status, 401);
  t.match(r.json(), { error: { code: 'unauthenticated', reason: 'no_certificate' } });
  t.match(fetches(gw, 'refused')[0], { reason: 'no_certificate', status: 401 });
});

t.test('a worker certificate from a foreign CA is refused and audited', async (t) => {
  const c = await cluster(t);
  const { gw } = await fileGateway(t, c);
  const dir = tempDir(t);
  const foreignCa = await forgeCertificate({ isCA: true, pathLen: 0, commonName: 'foreign CA' });
  const uri = formatSpiffe({ cluster: c.clusterId, role: 'worker', name: 'w1' });
  const leaf = await forgeCertificate({ issuer: { certPem: foreignCa.certPem, keyPem: foreignCa.keyPem }, uris: [uri], writeTo: { dir, name: 'w1' } });
  const r = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: { certPath: leaf.certPath!, keyPath: leaf.keyPath! } });
  t.equal(r.status, 401);
  t.match(r.json(), { error: { reason: 'unknown_ca' } });
  const audit = fetches(gw, 'refused')[0]!;
  t.match(audit, { reason: 'unknown_ca', serial: leaf.serial });
  t.notOk('identity' in audit, 'an identity claimed by an unverified certificate is not logged as an identity');
});

t.test('a revoked worker certificate is refused at once and its keep-alive connection is closed', async (t) => {
  const c = await cluster(t);
  const { gw } = await fileGateway(t, c);
  const w = await c.issue('worker', 'w-revoked');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const first = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w, agent });
  t.equal(first.status, 200);
  const socket = Object.values(agent.freeSockets).flat()[0];
  t.ok(socket, 'the connection is kept alive');
  let closed = false;
  socket!.once('close', () => { closed = true; });
  await c.revoke(w.serial, 'keyCompromise');
  await waitFor(() => closed, { timeoutMs: 10_000, what: 'the keep-alive connection of the revoked serial to close' });
  await gw.waitForLog((l) => l.event === 'revocation_applied' && l['serial'] === w.serial && Number(l['sessions_closed']) >= 1, 10_000);
  const again = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w });
  t.equal(again.status, 403);
  t.match(again.json(), { error: { reason: 'revoked' } });
  t.match(fetches(gw, 'refused').at(-1), { reason: 'revoked', status: 403, serial: w.serial, identity: w.uri });
});

t.test('an expired credential is never served: 503 with a clear message until a new one arrives', async (t) => {
  const c = await cluster(t);
  const { gw, file } = await fileGateway(t, c);
  const w = await c.issue('worker', 'w1');
  const get = () => fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w });
  // Short-lived only once everything is up, so a slow start on a loaded machine cannot eat its lifetime.
  const creds = fakeAws(2500);
  writeCredentialsFile(file, creds);
  await waitFor(async () => (await get()).body.includes(creds.accessKeyId), { timeoutMs: 10_000, what: 'the short-lived credential to be served' });
  await waitFor(() => Date.now() > creds.expiration.getTime() + 50, { timeoutMs: 10_000, what: 'the credential to expire' });
  const gone = await get();
  t.equal(gone.status, 503);
  t.match(gone.json(), { error: { code: 'expired', message: new RegExp(`expired at ${creds.expiration.toISOString()}`) } });
  t.notOk(gone.body.includes(creds.secretAccessKey));
  t.match(fetches(gw, 'expired')[0], { status: 503, identity: w.uri });
  const next = fakeAws(3600_000);
  writeCredentialsFile(file, next);
  const back = await waitFor(async () => {
    const r = await get();
    return r.status === 200 ? r : undefined;
  }, { timeoutMs: 10_000, what: 'the rewritten file to be served' });
  t.equal(back.json()['AccessKeyId'], next.accessKeyId);
});

t.test('a gateway without any credentials source says so', async (t) => {
  const c = await cluster(t);
  const gw = await startCredGateway(t, c);
  const w = await c.issue('worker', 'w1');
  const r = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w });
  t.equal(r.status, 503);
  t.match(r.json(), { error: { code: 'not_configured', message: /no credentials are configured/ } });
});

t.test('only GET is served, and unknown paths are 404 after authentication', async (t) => {
  const c = await cluster(t);
  const { gw } = await fileGateway(t, c);
  const w = await c.issue('worker', 'w1');
  const post = await fetchCred(gw.credPort, '/v1/credentials/aws', { caPath: c.caPath, cert: w, method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers['allow'], 'GET, HEAD');
  const odd = await fetchCred(gw.credPort, '/v1/credentials/../../etc', { caPath: c.caPath, cert: w });
  t.equal(odd.status, 404);
  const anon = await fetchCred(gw.credPort, '/nope', { caPath: c.caPath });
  t.equal(anon.status, 401, 'an unauthenticated peer learns nothing about paths');
});

t.test('plaintext HTTP on the credentials port gets nothing and is counted as a failed handshake', async (t) => {
  const c = await cluster(t);
  const { gw, creds } = await fileGateway(t, c);
  const { connect } = await import('node:net');
  const got = await new Promise<string>((resolve) => {
    let data = '';
    const s = connect(gw.credPort, '127.0.0.1', () => s.write('GET /v1/credentials/aws HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('data', (b) => { data += b.toString('latin1'); });
    s.on('close', () => resolve(data));
    s.on('error', () => undefined);
    s.setTimeout(10_000, () => s.destroy());
  });
  t.notOk(got.includes(creds.accessKeyId), 'no credential over plaintext');
  const refusals = await gw.gw.context.metrics.refusalsTotal.get();
  t.ok(refusals.values.some((v) => v.labels.port === 'credentials' && v.labels.reason === 'handshake' && v.value >= 1));
});
