import t from 'tap';
import { credentialsSettings } from '../../src/credentials/index.js';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

t.test('the listener opens only when something can supply credentials, on 8789 unless told otherwise', async (t) => {
  t.equal(credentialsSettings({}).listen, undefined, 'nothing configured: no port');
  t.same(credentialsSettings({ 'credentials.file': '/x' }).listen, { host: '0.0.0.0', port: 8789 });
  t.same(credentialsSettings({ 'control-plane.url': new URL('https://cp.example') }).listen, { host: '0.0.0.0', port: 8789 });
  t.same(credentialsSettings({ 'credentials.listen': { host: '127.0.0.1', port: 0 } }).listen, { host: '127.0.0.1', port: 0 });
});

t.test('--credentials-file and --credentials-command exclude each other', async (t) => {
  t.throws(() => credentialsSettings({ 'credentials.file': '/x', 'credentials.command': 'y' }), { code: 'GW_CREDENTIALS_CONFIG', message: /--credentials-file excludes --credentials-command/ });
});

t.test('a gateway without any credentials source opens no credentials port', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const gw = await startTestGateway({ cluster: c, scheduler: '127.0.0.1:1', t });
  t.equal(gw.gw.addresses['credentials'], undefined);
  t.ok(gw.lines.some((l) => l.event === 'credentials_disabled'));
});
