import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePassphrase, PASSPHRASE_ENV, PASSPHRASE_FILE_ENV } from '../../src/pki/passphrase.js';
import { initCluster } from '../../src/pki/init.js';
import { readState } from '../../src/pki/records.js';
import { makeTestCluster } from '../helpers/pki.js';

t.test('the passphrase file wins over the environment, minus one trailing newline', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const file = join(c.root, 'pass');
  writeFileSync(file, 'from-file-123\n', { mode: 0o600 });
  t.same(resolvePassphrase({ env: { [PASSPHRASE_ENV]: 'from-env-123' }, passphraseFile: file }), { passphrase: 'from-file-123', source: 'file', file });
  t.same(resolvePassphrase({ env: { [PASSPHRASE_ENV]: 'from-env-123' } }), { passphrase: 'from-env-123', source: 'env' });
  chmodSync(file, 0o644);
  t.throws(() => resolvePassphrase({ env: {}, passphraseFile: file }), { code: 'GW_PKI_KEY_FILE_TOO_OPEN' });
  t.throws(() => resolvePassphrase({ env: {} }), { code: 'GW_PKI_NO_PASSPHRASE' });
});

t.test('.dev-passphrase is honoured only when state.json marks the directory as development', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  // A production directory with a planted .dev-passphrase: ignored.
  writeFileSync(join(c.dir, '.dev-passphrase'), c.passphrase + '\n', { mode: 0o600 });
  t.throws(() => resolvePassphrase({ env: {}, dir: c.dir }), { code: 'GW_PKI_NO_PASSPHRASE' });

  const devDir = join(c.root, 'dev');
  await initCluster({ dir: devDir, clusterId: 'dev', passphrase: 'generated-dev-passphrase', devPassphrase: true });
  t.equal(readState(devDir).devPassphrase, true);
  t.same(resolvePassphrase({ env: {}, dir: devDir }), { passphrase: 'generated-dev-passphrase', source: 'dev', file: join(devDir, '.dev-passphrase') });
});

t.test('SCHEDULER_GATEWAY_PASSPHRASE_FILE is read as run reads it: after --passphrase-file, before the variable, relative to cwd', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  writeFileSync(join(c.root, 'env-pass'), 'from-env-file-1\n', { mode: 0o600 });
  writeFileSync(join(c.root, 'flag-pass'), 'from-flag-file-1\n', { mode: 0o600 });
  const env = { [PASSPHRASE_FILE_ENV]: 'env-pass', [PASSPHRASE_ENV]: 'from-env-value' };
  t.same(resolvePassphrase({ env, cwd: c.root }), { passphrase: 'from-env-file-1', source: 'file', file: join(c.root, 'env-pass') });
  t.equal(resolvePassphrase({ env, cwd: c.root, passphraseFile: join(c.root, 'flag-pass') }).passphrase, 'from-flag-file-1');
  t.equal(resolvePassphrase({ env: { [PASSPHRASE_FILE_ENV]: '', [PASSPHRASE_ENV]: 'from-env-value' } }).passphrase, 'from-env-value', 'an empty variable is unset');
  chmodSync(join(c.root, 'env-pass'), 0o640);
  t.throws(() => resolvePassphrase({ env, cwd: c.root }), { code: 'GW_PKI_KEY_FILE_TOO_OPEN' });
});

t.test('a new passphrase needs 12 characters', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  await t.rejects(initCluster({ dir: join(c.root, 'd11'), clusterId: 'x', passphrase: 'eleven-char' }), { code: 'GW_PKI_WEAK_PASSPHRASE', message: /at least 12 characters/ });
  await t.resolves(initCluster({ dir: join(c.root, 'd12'), clusterId: 'x', passphrase: 'twelve-chars' }));
});
