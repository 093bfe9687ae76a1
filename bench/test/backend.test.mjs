// The bench backend's contract: handshake first, echo small Dask messages
// (not the peer's handshake), swallow large ones. Run: node --test bench/test/
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildTools } from '../lib/setup.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

function frame(frames) {
  const head = Buffer.alloc(16 + 8 * frames.length);
  const total = frames.reduce((n, f) => n + f.length, 0);
  head.writeBigUInt64LE(BigInt(8 + 8 * frames.length + total), 0);
  head.writeBigUInt64LE(BigInt(frames.length), 8);
  frames.forEach((f, i) => head.writeBigUInt64LE(BigInt(f.length), 16 + 8 * i));
  return Buffer.concat([head, ...frames]);
}

function reader(sock) {
  let buf = Buffer.alloc(0);
  const waiters = [];
  const serve = () => {
    while (waiters.length && buf.length >= waiters[0].n) {
      const w = waiters.shift();
      const out = buf.subarray(0, w.n);
      buf = buf.subarray(w.n);
      clearTimeout(w.timer);
      w.resolve(out);
    }
  };
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    serve();
  });
  return {
    read: (n) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} bytes (have ${buf.length})`)), 10_000);
        waiters.push({ n, resolve, timer });
        serve();
      }),
    pending: () => buf.length,
  };
}

test('the backend greets, echoes small messages and swallows large ones', async (t) => {
  const { backend } = buildTools(root, join(root, 'bench/work/bin'));
  const child = spawn(backend, ['0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(/PORT (\d+)/.exec(String(d))[1]))));
  const sock = net.connect(port, '127.0.0.1');
  t.after(() => sock.destroy());
  const r = reader(sock);
  const hs = await r.read(24);
  assert.equal(hs.readBigUInt64LE(8), 1n, 'the greeting is a one-frame Dask message');
  const greetingRest = await r.read(Number(hs.readBigUInt64LE(16)));
  assert.equal(greetingRest[0], 0x83, 'frame 0 is a 3-entry msgpack map');

  sock.write(frame([Buffer.from('my handshake')])); // not echoed
  const small = frame([Buffer.from('ping'), Buffer.from('payload')]);
  sock.write(small);
  assert.deepEqual(await r.read(small.length), small, 'a small message comes back byte for byte');

  sock.write(frame([Buffer.from('bulk'), Buffer.alloc(200_000, 7)])); // swallowed
  const marker = frame([Buffer.from('after bulk')]);
  sock.write(marker);
  assert.deepEqual(await r.read(marker.length), marker, 'only the message after the bulk one is echoed');
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(r.pending(), 0, 'nothing else arrived');
});
