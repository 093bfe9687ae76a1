import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storedSeqs, tempDir, testReceiver } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/sender.ts', import.meta.url));

function startSender(t: Test, env: Record<string, unknown>): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...process.execArgv, FIXTURE], { env: { ...process.env, SGW_SENDER: JSON.stringify(env) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  void exited.then((code) => { if (code !== 0 && code !== null) t.comment(`sender exited ${code}: ${err.slice(-2000)}`); });
  return { child, exited };
}

t.test('a sender killed with SIGKILL mid-stream and restarted leaves no gap and no duplicate', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start({ ackDelayMs: 40 }); // acks lag, so batches are in flight when the kill lands
  const cluster = 'killed-sender';
  const env = { cluster, url: rx.url().href, ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool'), intervalMs: 60 };
  let seen = 0;
  for (let round = 0; round < 3; round++) {
    const { child, exited } = startSender(t, env);
    const target = seen + 4;
    await waitFor(() => storedSeqs(rx.db, cluster).length >= target, { what: `round ${round}: batches flowing`, timeoutMs: 60_000 });
    // A random moment is the point: the kill must land at any stage of a batch (spooled, sent, acked).
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 120)));
    child.kill('SIGKILL');
    await exited;
    seen = storedSeqs(rx.db, cluster).length;
    t.pass(`round ${round}: killed with ${seen} batches stored`);
  }
  const last = startSender(t, { ...env, drainAfterMs: 400 });
  t.equal(await last.exited, 0, 'the restarted sender drained its spool');

  const seqs = storedSeqs(rx.db, cluster);
  t.equal(new Set(seqs).size, seqs.length, 'no seq stored twice');
  t.same(seqs, seqs.map((_, i) => seqs[0]! + i), 'contiguous: no gap across three kills');
  const next = Number(readFileSync(join(env.spoolDir, 'seq'), 'utf8').trim());
  t.equal(seqs.at(-1), next - 1, 'the last batch the sender made arrived');
  t.same(readdirSync(env.spoolDir).filter((n) => n.endsWith('.batch')), [], 'the spool is empty');
  t.equal(rx.db.sampleCount(cluster), rx.db.batches(cluster).reduce((n, b) => n + (JSON.parse(b.body) as { samples: unknown[] }).samples.length, 0), 'every sample stored once');
});
