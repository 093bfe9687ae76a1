/**
 * client.dashboard_link points at the gateway: bundles from `certs issue`
 * (and the embedded quick start's) set distributed.dashboard.link, and a real
 * Python client on each Dask version, configured by nothing but the bundle's
 * YAML (DASK_CONFIG), prints https://<gateway>:<the port 8787 really
 * serves>/status, a link that opens the scheduler's dashboard with a token.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import { runCerts, fingerprint } from '../pki/cli-harness.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { DASK_VERSIONS, freePort, requireDask, runClient, startScheduler, stopAll } from '../helpers/dask.js';

import { setDashboardLink } from '../../src/pki/bundle.js';
import { ensureDevelopmentPki } from '../../src/supervisor/dev-pki.js';
import { silentLogger } from '../../src/log/logger.js';
import { TokenStore } from '../../src/tokens/store.js';

t.teardown(stopAll);

function workspace(t: { teardown(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'sgw-link-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

const linkIn = (yamlPath: string): unknown => YAML.parse(readFileSync(yamlPath, 'utf8'))?.distributed?.dashboard?.link;

async function issue(c: TestCluster, cwd: string, role: string, name: string, extra: string[] = []) {
  const out = join(cwd, name);
  const r = await runCerts(['issue', '--dir', c.dir, '--role', role, '--name', name, '--out', out, ...extra], { cwd, env: { SCHEDULER_GATEWAY_PASSPHRASE: c.passphrase } });
  return { ...r, yaml: join(out, `${name}-distributed.yaml`), readme: join(out, `${name}-README.md`), out };
}

t.test('certs issue writes distributed.dashboard.link into client and admin bundles; --dashboard-port and --dashboard-url set it', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const cwd = workspace(t);
  const plain = await issue(c, cwd, 'client', 'alice');
  t.equal(plain.code, 0, plain.stderr);
  t.equal(linkIn(plain.yaml), 'https://{host}:8787/status', 'default: the gateway (whatever host the client dialled) on 8787');
  t.match(readFileSync(plain.readme, 'utf8'), /client\.dashboard_link` shows https:\/\/localhost:8787\/status/, 'the README says where it points');
  const port = await issue(c, cwd, 'admin', 'ops', ['--dashboard-port', '9443']);
  t.equal(port.code, 0, port.stderr);
  t.equal(linkIn(port.yaml), 'https://{host}:9443/status');
  const url = await issue(c, cwd, 'client', 'bob', ['--dashboard-url', 'https://dask.example.com/status']);
  t.equal(url.code, 0, url.stderr);
  t.equal(linkIn(url.yaml), 'https://dask.example.com/status', 'a whole URL, e.g. behind a load balancer');
  const worker = await issue(c, cwd, 'worker', 'w1', ['--dashboard-port', '9443']);
  t.equal(worker.code, 0, worker.stderr);
  t.equal(linkIn(worker.yaml), undefined, 'workers have no use for it');
});

t.test('a bad --dashboard-port or --dashboard-url is refused before anything is issued', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const cwd = workspace(t);
  const before = fingerprint(c.dir);
  const cases: Array<[string[], RegExp]> = [
    [['--dashboard-port', '70000'], /--dashboard-port/],
    [['--dashboard-port', '8787', '--dashboard-url', 'https://x.example/status'], /exclude each other/],
    [['--dashboard-url', 'http://x.example/status'], /https:\/\//],
    [['--dashboard-url', 'https://x.example:{port}/status'], /only \{host\}/],
    [['--dashboard-url', 'https://{HOME}/status'], /only \{host\}/],
    [['--dashboard-url', 'not a url'], /cannot be a dashboard link/],
  ];
  for (const [extra, message] of cases) {
    const r = await issue(c, cwd, 'client', 'carol', extra);
    t.equal(r.code, 2, extra.join(' '));
    t.match(r.stderr, message);
    t.equal(fingerprint(r.out), 'absent', 'no bundle written');
  }
  t.equal(fingerprint(c.dir), before, 'nothing issued, nothing recorded');
});

t.test('the embedded quick start\'s client bundle is pointed at the port 8787 really listens on, comments kept', async (t) => {
  const dir = join(workspace(t), 'certs');
  const dev = await ensureDevelopmentPki(dir, {}, silentLogger);
  t.equal(linkIn(dev.client.yamlPath), 'https://{host}:8787/status');
  const before = readFileSync(dev.client.yamlPath, 'utf8');
  t.equal(setDashboardLink(dev.client.yamlPath, 'https://{host}:41234/status'), true);
  t.equal(linkIn(dev.client.yamlPath), 'https://{host}:41234/status');
  const after = readFileSync(dev.client.yamlPath, 'utf8');
  t.equal(after.split('\n').filter((l) => l.startsWith('#')).join('\n'), before.split('\n').filter((l) => l.startsWith('#')).join('\n'), 'the header comments survive');
  t.same({ ...YAML.parse(after), distributed: { ...YAML.parse(after).distributed, dashboard: undefined } }, { ...YAML.parse(before), distributed: { ...YAML.parse(before).distributed, dashboard: undefined } }, 'nothing else changed');
  t.equal(setDashboardLink(dev.client.yamlPath, 'https://{host}:41234/status'), false, 'a second start on the same port writes nothing');
});

for (const v of DASK_VERSIONS.filter((v) => requireDask(t, v))) t.test(`a Python client configured by the bundle alone shows the gateway's dashboard link, and it opens (Dask ${v.id})`, async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const cwd = workspace(t);
  const scheduler = await startScheduler({ t, version: v });
  const dashboardPort = await freePort();
  const gw = await startTestGateway({ cluster: c, scheduler: `127.0.0.1:${scheduler.port}`, t, flags: { 'dashboard-listen': `127.0.0.1:${dashboardPort}`, 'dashboard-upstream': `127.0.0.1:${scheduler.dashboardPort}` } });
  const bundle = await issue(c, cwd, 'client', 'alice', ['--dashboard-port', String(dashboardPort)]);
  t.equal(bundle.code, 0, bundle.stderr);
  const script = `import json
from distributed import Client
c = Client(${JSON.stringify(gw.address)}, timeout=30)
print(json.dumps({"link": c.dashboard_link}))
c.close()
`;
  const viaBundle = await runClient<{ link: string }>(script, { version: v, env: { DASK_CONFIG: dirname(bundle.yaml) } });
  t.equal(viaBundle.link, `https://127.0.0.1:${dashboardPort}/status`, `Dask ${v.id}: the gateway's host and dashboard port`);
  const daskDefault = await runClient<{ link: string }>(script, { version: v, env: { DASK_CONFIG: dirname(bundle.yaml), DASK_DISTRIBUTED__DASHBOARD__LINK: '{scheme}://{host}:{port}/status' } });
  t.equal(daskDefault.link, `http://127.0.0.1:${scheduler.dashboardPort}/status`, 'control: with Dask\'s own template the link names the scheduler\'s loopback dashboard');

  const store = TokenStore.open(c.dir);
  const { token } = store.create({ name: 'link-check' });
  store.close();
  const status = await new Promise<number>((resolve, reject) => {
    const u = new URL(viaBundle.link);
    const req = httpsRequest({ host: u.hostname, port: u.port, path: u.pathname, ca: c.caPem, servername: 'localhost', headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 200, 'the link opens the scheduler\'s dashboard through 8787');
});
