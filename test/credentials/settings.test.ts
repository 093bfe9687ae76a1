import t from 'tap';
import { credentialsSettings } from '../../src/credentials/index.js';
import { resolveSlice } from '../../src/config/load.js';
import { credentialsKeys } from '../../src/config/keys/credentials.js';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

const none = resolveSlice(credentialsKeys, { flags: {}, env: {} });

t.test('the listener opens only when something can supply credentials, on 8789 unless told otherwise', async (t) => {
  t.equal(credentialsSettings(none, undefined).listen, undefined, 'nothing configured: no port');
  t.same(credentialsSettings({ ...none, file: '/x' }, undefined).listen, { host: '0.0.0.0', port: 8789 });
  t.same(credentialsSettings(none, new URL('https://cp.example')).listen, { host: '0.0.0.0', port: 8789 });
  t.same(credentialsSettings({ ...none, listen: { host: '127.0.0.1', port: 0 } }, undefined).listen, { host: '127.0.0.1', port: 0 });
});

t.test('--credentials-file and --credentials-command exclude each other', async (t) => {
  t.throws(() => credentialsSettings({ ...none, file: '/x', command: 'y' }, undefined), { code: 'GW_CREDENTIALS_CONFIG', message: /--credentials-file excludes --credentials-command/ });
});

t.test('a gateway without any credentials source opens no credentials port', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const gw = await startTestGateway({ cluster: c, scheduler: '127.0.0.1:1', t });
  t.equal(gw.gw.addresses['credentials'], undefined);
  t.ok(gw.lines.some((l) => l.event === 'credentials_disabled'));
});
