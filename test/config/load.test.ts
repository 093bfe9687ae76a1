import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile, resolveRunConfig } from '../../src/config/load.js';

t.test('a config file is never echoed through process warnings (it may hold paths and names an operator keeps private)', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'listen: !custom 127.0.0.1:9999-private-marker\n');
  const seen: string[] = [];
  const onWarning = (w: Error) => seen.push(w.message);
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  const doc = readConfigFile(file);
  await new Promise((r) => setImmediate(r));
  t.same(seen, [], 'no warning carries the file contents');
  t.throws(() => resolveRunConfig({ flags: {}, env: {}, file: doc }), { code: 'GW_CONFIG_INVALID', message: /listen/ }, 'the bad value is still refused, naming the key');
});

t.test('flags beat the environment, which beats the file; an unknown file key is refused by name', async (t) => {
  const file = { path: '/etc/gw/config.yaml', values: { listen: '127.0.0.1:1001', 'log-level': 'warn' } };
  const c = resolveRunConfig({ flags: { listen: '127.0.0.1:1003' }, env: { SCHEDULER_GATEWAY_LISTEN: '127.0.0.1:1002', SCHEDULER_GATEWAY_LOG_LEVEL: 'error' }, file });
  t.same(c.terminator.listen, { host: '127.0.0.1', port: 1003 });
  t.equal(c.common.logLevel, 'error');
  t.throws(() => resolveRunConfig({ flags: {}, env: {}, file: { path: '/etc/gw/config.yaml', values: { lisen: 'x' } } }), { code: 'GW_CONFIG_INVALID', message: /lisen: unknown key/ });
  t.throws(() => resolveRunConfig({ flags: {}, env: { SCHEDULER_GATEWAY_MAX_CONNECTIONS: 'many' } }), { message: /SCHEDULER_GATEWAY_MAX_CONNECTIONS/ });
});

t.test('--processes: auto is one per core (at most 64); anything but 1..64 or auto is refused, naming the key', async (t) => {
  const { availableParallelism } = await import('node:os');
  t.equal(resolveRunConfig({ flags: {}, env: {} }).terminator.processes, 1, 'one process unless asked');
  t.equal(resolveRunConfig({ flags: { processes: 'auto' }, env: {} }).terminator.processes, Math.min(64, availableParallelism()));
  t.equal(resolveRunConfig({ flags: {}, env: { SCHEDULER_GATEWAY_PROCESSES: '3' } }).terminator.processes, 3);
  for (const bad of ['0', '65', 'many', '-1', '2.5', 'AUTO']) {
    t.throws(() => resolveRunConfig({ flags: { processes: bad }, env: {} }), { code: 'GW_CONFIG_INVALID', message: /--processes: expected an integer from 1 to 64/ }, bad);
  }
});
