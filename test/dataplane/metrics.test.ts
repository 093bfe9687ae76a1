/**
 * /metrics with several data-plane processes: one reading carries every
 * process's counters (the handshakes land on both), the primary's slot
 * gauges and limits once, and a refused handshake in any process.
 */
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';
import { probeTls } from '../terminator/tls-client.js';
import { waitFor } from '../helpers/wait.js';

t.test('one /metrics for the whole gateway: counters summed over processes, limits and slots counted once', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  // A stand-in scheduler: it speaks first, so a forwarded connection sees bytes.
  const backend = createServer((s) => { s.on('error', () => {}); s.write('hello'); });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  t.teardown(() => backend.close());
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${(backend.address() as AddressInfo).port}`, t, flags: { processes: '2', 'max-connections': '1000', inspect: 'false' } });
  const alice = await cluster.issue('client', 'alice');
  const creds = { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem };
  // The kernel hands each connection to whichever process accepts first: a burst usually lands on both, but on
  // a busy machine one process can take a whole burst. Bursts until both have accepted some, a bounded number.
  const BURST = 12;
  let N = 0;
  const accepting = async () => {
    await waitFor(() => gw.audits('connection_accepted').length >= N || undefined, { what: `${N} connection_accepted lines` });
    return new Set(gw.audits('connection_accepted').map((l) => l.dataplane));
  };
  for (let burst = 0; burst < 10 && (burst === 0 || (await accepting()).size < 2); burst++) {
    const results = await Promise.all(Array.from({ length: BURST }, () => probeTls(gw.port, creds)));
    N += BURST;
    t.same(results.filter((r) => r.outcome !== 'data'), [], `burst ${burst + 1}: all ${BURST} forwarded`);
  }
  t.same([...(await accepting())].sort(), [1, 2], `both processes accepted connections (${N} in bursts of ${BURST})`);
  const refused = await probeTls(gw.port, { ca: cluster.caPem });
  t.equal(refused.outcome, 'closed', 'no certificate: refused');
  await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${refused.localPort}`);

  const address = gw.gw.addresses.metrics!;
  const value = async (family: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text();
    const samples = parsePrometheusText(text).samples.filter((s) => s.name === family && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    return samples.reduce((n, s) => n + s.value, 0);
  };
  t.equal(await value('scheduler_gateway_connections_total', { port: '8786', role: 'client' }), N, 'accepted connections: the sum over both processes');
  t.equal(await value('scheduler_gateway_refusals_total', { port: '8786', reason: 'no_certificate' }), 1, 'the refusal, in whichever process');
  t.equal(await value('scheduler_gateway_connection_limit', { port: '8786' }), 1000, 'the limit in force, once');
  t.equal(await value('scheduler_gateway_memory_budget_limit_bytes'), 256 * 1024 * 1024, 'the budget: two shares adding up to the configured total');
  const handshakes = await value('scheduler_gateway_tls_handshake_duration_seconds_count', { port: '8786' });
  t.equal(handshakes, N + 1, `handshake histograms merge (${handshakes})`);
  await t.resolveMatch(value('scheduler_gateway_connection_slots', { state: 'client' }), 0, 'every slot given back, counted by the primary');
});
