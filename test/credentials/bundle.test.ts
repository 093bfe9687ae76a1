import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster } from '../helpers/pki.js';
import { runCerts } from '../pki/cli-harness.js';
import { tempDir } from './harness.js';

t.test('certs issue --role worker writes the AWS config; --gateway-host and --credentials-port override host and port', async (t) => {
  const c = await makeTestCluster({ hosts: ['gw.example.internal', '10.0.0.7'] });
  t.teardown(() => c.cleanup());
  const cwd = tempDir(t);
  const env = { SCHEDULER_GATEWAY_PASSPHRASE: c.passphrase };
  const dflt = await runCerts(['issue', '--dir', c.dir, '--role', 'worker', '--name', 'w1', '--out', join(cwd, 'a')], { cwd, env });
  t.equal(dflt.code, 0, dflt.stderr);
  t.match(dflt.stdout, `${join(cwd, 'a', 'w1-aws-config')} (AWS_CONFIG_FILE`);
  t.match(readFileSync(join(cwd, 'a', 'w1-aws-config'), 'utf8'), /https:\/\/gw\.example\.internal:8789\/v1\/credentials\/aws\n$/, 'host from the gateway certificate, default port');
  const custom = await runCerts(['issue', '--dir', c.dir, '--role', 'worker', '--name', 'w2', '--out', join(cwd, 'b'), '--gateway-host', '10.0.0.7', '--credentials-port', '9443'], { cwd, env });
  t.equal(custom.code, 0, custom.stderr);
  t.match(readFileSync(join(cwd, 'b', 'w2-aws-config'), 'utf8'), /https:\/\/10\.0\.0\.7:9443\/v1\/credentials\/aws\n$/);
});

t.test('client bundles get no AWS config, and a bad --gateway-host or --credentials-port is refused before issuing', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const cwd = tempDir(t);
  const env = { SCHEDULER_GATEWAY_PASSPHRASE: c.passphrase };
  const client = await runCerts(['issue', '--dir', c.dir, '--role', 'client', '--name', 'alice', '--out', join(cwd, 'c')], { cwd, env });
  t.equal(client.code, 0, client.stderr);
  t.notOk(existsSync(join(cwd, 'c', 'alice-aws-config')));
  const badHost = await runCerts(['issue', '--dir', c.dir, '--role', 'worker', '--name', 'w3', '--out', join(cwd, 'd'), '--gateway-host', 'a b;rm -rf /'], { cwd, env });
  t.equal(badHost.code, 2);
  t.match(badHost.stderr, /--gateway-host .* is not a DNS name or IP address/);
  const badPort = await runCerts(['issue', '--dir', c.dir, '--role', 'worker', '--name', 'w3', '--out', join(cwd, 'd'), '--credentials-port', '70000'], { cwd, env });
  t.equal(badPort.code, 2);
  t.match(badPort.stderr, /--credentials-port/);
  t.notOk(existsSync(join(cwd, 'd')), 'nothing written');
});
