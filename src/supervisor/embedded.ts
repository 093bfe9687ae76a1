/**
 * The development mode (`scheduler-gateway run --dev`): a development PKI, a
 * supervised `dask scheduler` on loopback run by the --dask-python
 * interpreter, and the exact commands to connect a worker and a client with
 * that same interpreter. Nothing here runs without --dev.
 */
import { createServer } from 'node:net';
import { GatewayError } from '../errors/base.js';
import type { Logger } from '../log/logger.js';
import type { Endpoint } from '../config/spec.js';
import { ensureDevelopmentPki, type DevBundles } from './dev-pki.js';
import { DASK_PYTHON, daskInstalled, SupervisedScheduler } from './scheduler-process.js';
import { setDashboardLink } from '../pki/bundle.js';
import { linkTemplate } from '../pki/dashboard-link.js';

export interface EmbeddedScheduler {
  readonly scheduler: Endpoint;
  readonly dashboardPort: number;
  readonly bundles: DevBundles;
  readonly process: SupervisedScheduler;
  /** The commands a person types to connect, for the gateway's actual address (and its dashboard's port, when it serves one). */
  instructions(gatewayHost: string, gatewayPort: number, dashboardPort?: number): string;
  /** Points the client bundle's client.dashboard_link at the port 8787 really listens on (known once it does). */
  linkDashboard(port: number): void;
  stop(): Promise<void>;
}

export function installHint(python: string): string {
  return `Dask is not installed for ${python}: install it with \`sudo apt-get install python3-distributed\` (then --dask-python /usr/bin/python3) or \`bash scripts/install-dask-venv.sh\` (then --dask-python .venv-dask/bin/python), or start your own scheduler on loopback and pass --scheduler 127.0.0.1:PORT`;
}

export async function startEmbeddedScheduler(o: { dir: string; env: NodeJS.ProcessEnv; log: Logger; python?: string }): Promise<EmbeddedScheduler> {
  if (!daskInstalled(o.python)) throw new GatewayError('GW_SUPERVISOR_NO_DASK', installHint(o.python ?? DASK_PYTHON));
  const bundles = await ensureDevelopmentPki(o.dir, o.env, o.log);
  const [port, dashboardPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const proc = new SupervisedScheduler({
    port, dashboardPort, log: o.log, ...(o.python ? { python: o.python } : {}),
    tls: { ca: bundles.scheduler.caPath, cert: bundles.scheduler.certPath, key: bundles.scheduler.keyPath },
  });
  try {
    await proc.start();
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    scheduler: { host: '127.0.0.1', port },
    dashboardPort,
    bundles,
    process: proc,
    instructions: (host, gwPort, dashPort) => instructions(bundles, o.dir, { host, port: gwPort, dashboardPort: dashPort }, o.python ?? DASK_PYTHON),
    linkDashboard: (port) => void setDashboardLink(bundles.client.yamlPath, linkTemplate(port)),
    stop: () => proc.stop(),
  };
}

function instructions(b: DevBundles, dir: string, gw: { host: string; port: number; dashboardPort: number | undefined }, python: string): string {
  const address = `tls://${gw.host.includes(':') ? `[${gw.host}]` : gw.host}:${gw.port}`;
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const w = b.worker;
  const c = b.client;
  // The client is configured by hand, not from its bundle, so it needs the bundle's link too:
  // without it client.dashboard_link names the scheduler's loopback dashboard.
  const link = gw.dashboardPort === undefined ? undefined : linkTemplate(gw.dashboardPort);
  return [
    '',
    `Development gateway for cluster "${b.clusterId}" is listening on ${address} (mutual TLS).`,
    '',
    'Connect a worker (in another terminal):',
    `  ${python} -m distributed.cli.dask_worker ${address} --protocol tls --host 127.0.0.1 \\`,
    `    --tls-ca-file ${q(w.caPath)} --tls-cert ${q(w.certPath)} --tls-key ${q(w.keyPath)} --name worker-1`,
    '',
    'Connect a client:',
    ...clientCommand(python, address, c, link),
    '',
    ...(link ? [
      'Open the dashboard (HTTPS on --dashboard-listen, default port 8787) with the link a token prints, once:',
      `  npx scheduler-gateway tokens create --name you --dir ${q(dir)}`,
      '',
    ] : []),
    `Bundles (certificate, key, CA, distributed.yaml) are in ${w.caPath.replace(/\/[^/]+\/ca\.pem$/, '')}/.`,
    'This state directory keeps its passphrase beside the keys: for development only.',
    '',
  ].join('\n');
}

/** A Python client set up by hand as a user would, with the dashboard link its bundle carries. */
function clientCommand(python: string, address: string, c: DevBundles['client'], link: string | undefined): string[] {
  return [
    `  ${python} -c 'from distributed import Client; from distributed.security import Security`,
    ...(link ? [`import dask; dask.config.set({"distributed.dashboard.link": ${JSON.stringify(link)}})`] : []),
    `sec = Security(tls_ca_file=${JSON.stringify(c.caPath)}, tls_client_cert=${JSON.stringify(c.certPath)}, tls_client_key=${JSON.stringify(c.keyPath)}, require_encryption=True)`,
    `c = Client(${JSON.stringify(address)}, security=sec)`,
    ...(link ? ['print(c.dashboard_link)'] : []),
    `print(c.submit(sum, [1, 2, 3]).result())'`,
  ];
}

/** A loopback port that was free a moment ago (the scheduler binds it next). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
