/**
 * A Dask 2026.7.1 scheduler with the real Bokeh dashboard, for a gateway
 * whose 8787 port is chosen here first: the scheduler's Bokeh accepts
 * WebSockets only from that origin (allow_websocket_origin), not the "*" Dask
 * ships with, so every test that uses it also proves the proxy hands Bokeh
 * the browser's Host and Origin intact.
 */
import { request } from 'node:http';
import { TokenStore, type Scope } from '../../src/tokens/store.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { DASK_2026, freePort, startScheduler, type DaskProcess, type TlsFiles } from '../helpers/dask.js';

export interface BokehCluster {
  readonly cluster: TestCluster;
  readonly scheduler: DaskProcess & { port: number; dashboardPort: number };
  /** The port the gateway must serve 8787 on, and the origin browsers will send. */
  readonly gatewayDashboardPort: number;
  readonly origin: string;
  token(name: string, scope?: Scope): { token: string; id: string };
  /** Revokes as `tokens revoke` in another process would. */
  revoke(id: string): void;
}

export const files = (i: { caPath: string; certPath: string; keyPath: string }): TlsFiles => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

export async function startBokehCluster(t: { teardown(fn: () => unknown): void }): Promise<BokehCluster> {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const gatewayDashboardPort = await freePort();
  const origin = `https://localhost:${gatewayDashboardPort}`;
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({
    tls: files(sched), t, version: DASK_2026,
    env: { DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__BOKEH_APPLICATION__ALLOW_WEBSOCKET_ORIGIN: JSON.stringify([`localhost:${gatewayDashboardPort}`]) },
  });
  const tokens = TokenStore.open(cluster.dir);
  t.teardown(() => tokens.close());
  return {
    cluster, scheduler, gatewayDashboardPort, origin,
    token(name, scope = 'view') {
      const r = tokens.create({ name, scope });
      return { token: r.token, id: r.record.id };
    },
    revoke: (id) => void tokens.revoke(id),
  };
}

/** The status Bokeh itself answers a WebSocket upgrade with, on loopback, for a given Origin. */
export function bokehUpgradeStatus(dashboardPort: number, path: string, origin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: dashboardPort, path,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', origin },
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode ?? 0); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer to the upgrade')));
    req.end();
  });
}
