import t, { type Test } from 'tap';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { CLUSTER_HEADER, SUBPROTOCOL, commandKey, verifyCommandSignature, type CommandMessage } from '../../src/telemetry/protocol.js';
import { tempDir, testReceiver, type TestReceiver } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

async function connect(rx: TestReceiver, o: { cluster: string; credential: string; path?: string; protocol?: string }): Promise<{ ws: WebSocket; inbox: Record<string, unknown>[] } | { status: number }> {
  const ws = new WebSocket(`wss://127.0.0.1:${rx.port}${o.path ?? '/v1/stream'}`, o.protocol ?? SUBPROTOCOL, {
    ca: readFileSync(rx.caPath), headers: { authorization: `Bearer ${o.credential}`, [CLUSTER_HEADER]: o.cluster },
  });
  const inbox: Record<string, unknown>[] = [];
  ws.on('message', (d) => inbox.push(JSON.parse(d.toString()) as Record<string, unknown>));
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, inbox }));
    ws.once('unexpected-response', (_req, res) => { resolve({ status: res.statusCode! }); ws.terminate(); });
    ws.once('error', () => resolve({ status: 0 }));
  });
}

const batch = (cluster: string, seq: number, samples: unknown[] = [{ source: 'gateway', name: 'm', type: 'gauge', labels: {}, value: 1 }]) =>
  JSON.stringify({ type: 'batch', v: 1, cluster, seq, created: new Date().toISOString(), scheduler: { ok: false }, samples });

async function setup(t: Test) {
  const rx = await testReceiver(t, tempDir(t));
  const server = await rx.start();
  const credential = readFileSync(rx.enroll('c1'), 'utf8').trim();
  return { rx, server, credential };
}

t.test('refuses the upgrade without the right credential, path or subprotocol', async (t) => {
  const { rx, credential } = await setup(t);
  t.same(await connect(rx, { cluster: 'c1', credential: 'x'.repeat(43) }), { status: 401 });
  t.same(await connect(rx, { cluster: 'nobody', credential }), { status: 401 });
  t.same(await connect(rx, { cluster: 'c1', credential, path: '/other' }), { status: 400 });
  t.same(await connect(rx, { cluster: 'c1', credential, protocol: 'something-else' }), { status: 400 });
});

t.test('stores a batch once, acks after the commit, acks a duplicate as such, takes gzip frames', async (t) => {
  const { rx, credential } = await setup(t);
  const c = await connect(rx, { cluster: 'c1', credential });
  if (!('ws' in c)) throw new Error('no connection');
  t.teardown(() => c.ws.terminate());
  c.ws.send(batch('c1', 5));
  await waitFor(() => c.inbox.length === 1, { what: 'ack' });
  t.same(c.inbox[0], { type: 'ack', seq: 5 });
  t.same(rx.db.batches('c1').map((b) => b.seq), [5], 'stored before the ack was sent');
  c.ws.send(batch('c1', 5));
  await waitFor(() => c.inbox.length === 2, { what: 'second ack' });
  t.same(c.inbox[1], { type: 'ack', seq: 5, duplicate: true });
  t.equal(rx.db.sampleCount('c1'), 1, 'the duplicate added no samples');
  c.ws.send(gzipSync(batch('c1', 6)));
  await waitFor(() => c.inbox.length === 3, { what: 'gzip ack' });
  t.same(rx.db.batches('c1').map((b) => b.seq).sort(), [5, 6]);
});

t.test('nacks batches that are not well-formed or name another cluster, storing nothing', async (t) => {
  const { rx, credential } = await setup(t);
  const c = await connect(rx, { cluster: 'c1', credential });
  if (!('ws' in c)) throw new Error('no connection');
  t.teardown(() => c.ws.terminate());
  const bad = [
    batch('c2', 1),
    batch('c1', 2, [{ source: 'x', name: 'm', labels: { a: 1 }, value: 1 }]),
    batch('c1', 3, [{ source: 'x', name: 'm', labels: {}, value: 'many' }]),
    JSON.stringify({ ...JSON.parse(batch('c1', 4)), v: 2 }),
  ];
  for (const b of bad) c.ws.send(b);
  await waitFor(() => c.inbox.length === 4, { what: 'four nacks' });
  t.ok(c.inbox.every((m) => m['type'] === 'nack'));
  t.same(rx.db.batches('c1'), []);
});

t.test('queued commands are signed with the cluster credential and redelivered, re-signed, after a reconnect', async (t) => {
  const { rx, server, credential } = await setup(t);
  const id = rx.db.enqueueCommand('c1', 'revoke-token', { token: 'alice' });
  const first = await connect(rx, { cluster: 'c1', credential });
  if (!('ws' in first)) throw new Error('no connection');
  await waitFor(() => first.inbox.length === 1, { what: 'the command' });
  const cmd = first.inbox[0] as unknown as CommandMessage;
  t.equal(cmd.id, id);
  t.ok(verifyCommandSignature(commandKey(credential), cmd), 'signed with the key derived from the credential');
  first.ws.terminate();
  await waitFor(() => !server.connected().includes('c1'), { what: 'the receiver to see the first stream close' });
  const second = await connect(rx, { cluster: 'c1', credential });
  if (!('ws' in second)) throw new Error('no connection');
  t.teardown(() => second.ws.terminate());
  await waitFor(() => second.inbox.length === 1, { what: 'the command again' });
  t.equal((second.inbox[0] as unknown as CommandMessage).id, id, 'still pending, so delivered again');
  second.ws.send(JSON.stringify({ type: 'command-result', id, ok: true }));
  await waitFor(() => rx.db.command(id)?.status === 'applied', { what: 'recorded' });
});

t.test('closes the connection on garbage', async (t) => {
  const { rx, credential } = await setup(t);
  const c = await connect(rx, { cluster: 'c1', credential });
  if (!('ws' in c)) throw new Error('no connection');
  const closed = new Promise<number>((r) => c.ws.once('close', (code) => r(code)));
  c.ws.send('not json');
  t.equal(await closed, 1007);
});
