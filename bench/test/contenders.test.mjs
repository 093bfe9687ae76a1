// The gateway contenders as the default run starts them: the product with one
// data-plane worker per core, gateway-1p in one process whatever the
// environment says, each measured and GC'd as a whole tree.
// Runs the gateway at BENCH_GATEWAY_BIN (or this checkout's dist/); skipped,
// saying why, when that build has no --processes. Run: node --test bench/test/
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureCerts } from '../lib/certs.mjs';
import { CONTENDERS, DEFAULT_CONTENDERS, gatewayArgs } from '../lib/contenders.mjs';
import { processTree, stopAll } from '../lib/proc.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = process.env.BENCH_GATEWAY_BIN ?? join(root, 'dist/cli/bin.js');
const tmp = mkdtempSync(join(os.tmpdir(), 'bench-contenders-'));
after(async () => {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
});

function unsupported() {
  if (!existsSync(entry)) return `${entry} missing (npm run build)`;
  const help = spawnSync(process.execPath, [entry, 'run', '--help'], { encoding: 'utf8', timeout: 30000 });
  return /--processes/.test(help.stdout + help.stderr) ? false : `${entry} has no --processes`;
}

test('the default run measures the product and the single-process gateway, and leaves stunnel to --contenders', () => {
  assert.deepEqual(DEFAULT_CONTENDERS, ['direct', 'haproxy', 'node-baseline', 'gateway-1p', 'gateway', 'gateway-inspect']);
  assert.ok(CONTENDERS.stunnel);
  const args = (processes) => gatewayArgs({ port: 1, backendPort: 2, certs: { ca: 'ca', gw: { cert: 'c', key: 'k' } }, inspect: false, maxConns: 10, processes });
  assert.deepEqual(args('auto').slice(0, 3), ['run', '--processes', 'auto']);
  assert.ok(!args(1).includes('--processes'), 'one process passes no flag, so builds without it still run');
});

test('gateway runs a worker per core and gateway-1p one process, each GC\'d whole', { skip: unsupported() }, async () => {
  const backend = net.createServer((s) => s.pipe(s));
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  const work = join(tmp, 'work');
  const logs = join(tmp, 'logs');
  mkdirSync(logs, { recursive: true });
  mkdirSync(work, { recursive: true });
  const env = { root, work, logs, certs: ensureCerts(join(tmp, 'certs')), maxConns: 100, backendPort: backend.address().port };
  process.env.SCHEDULER_GATEWAY_PROCESSES = '2';
  try {
    for (const [name, processes] of [['gateway', 1 + Math.min(64, os.availableParallelism())], ['gateway-1p', 1]]) {
      const inst = await CONTENDERS[name].start({ ...env, tag: `t-${name}` });
      try {
        assert.equal(inst.processes, processes, `${name}: ${processes} processes`);
        assert.equal(processTree(inst.proc.pid).length, processes);
        assert.equal(await inst.gc(), true, `${name}: every process acknowledged the forced GC`);
      } finally {
        await inst.proc.stop();
      }
    }
  } finally {
    delete process.env.SCHEDULER_GATEWAY_PROCESSES;
    backend.close();
  }
});
