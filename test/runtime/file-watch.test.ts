/**
 * The one file watcher (src/runtime/file-watch.ts): what counts as a change,
 * one reload per burst, no overlapping reloads, a vanished or unreadable file
 * reported once, and close() leaving nothing behind. Its timers and fs
 * watchers are followed through async_hooks, so "nothing more will happen"
 * is observed, not slept on.
 */
import t, { type Test } from 'tap';
import { createHook } from 'node:async_hooks';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { FileWatch, type FileWatchOptions, type Reload } from '../../src/runtime/file-watch.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { waitFor } from '../helpers/wait.js';

type Handle = 'poll' | 'debounce' | 'watch';
const handles = new Map<number, Handle>();
const ticks = new Map<number, number>();
let debounceFires = 0;
createHook({
  init(id, type) {
    if (type !== 'Timeout' && type !== 'FSEVENTWRAP') return;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 40;
    const stack = new Error().stack ?? '';
    Error.stackTraceLimit = limit;
    if (!stack.includes('src/runtime/file-watch.ts')) return;
    handles.set(id, type === 'FSEVENTWRAP' ? 'watch' : stack.includes('new FileWatch') ? 'poll' : 'debounce');
  },
  before(id) {
    if (handles.get(id) === 'poll') ticks.set(id, (ticks.get(id) ?? 0) + 1);
    if (handles.get(id) === 'debounce') debounceFires++;
  },
  destroy(id) {
    handles.delete(id);
    ticks.delete(id);
  },
}).enable();

const live = (kind?: Handle) => [...handles.values()].filter((h) => kind === undefined || h === kind).length;
const pollTicks = () => [...ticks.values()].reduce((a, b) => a + b, 0);
/** Nothing is pending: no debounce timer (a poll tick that sees no change schedules none). */
const settled = () => live('debounce') === 0;

interface Seen { readonly reason: string; readonly text: string }

/** A watcher over `files` whose owner reads the first file and keeps the last good text, like the gateway's three. */
function watched(t: Test, files: string[], o: Partial<FileWatchOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ stream: new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }), level: 'debug' });
  const metrics = createMetrics({ defaultMetrics: false });
  const seen: Seen[] = [];
  const failed: string[] = [];
  let current: string | undefined = existsSync(files[0]!) ? readFileSync(files[0]!, 'utf8') : undefined; // the first load, before watching
  const reload: Reload = async (reason) => {
    try {
      current = readFileSync(files[0]!, 'utf8');
      seen.push({ reason, text: current });
      return true;
    } catch (e) {
      failed.push((e as NodeJS.ErrnoException).code ?? 'error');
      log.error('test_reload_failed', { reason, code: (e as NodeJS.ErrnoException).code });
      return false;
    }
  };
  const watch = FileWatch.start({ what: 'policy', files, reload, log, metrics, pollMs: 0, debounceMs: 50, ...o });
  t.teardown(() => watch.close());
  const failures = async () => (await metrics.reloadsTotal.get()).values.find((v) => v.labels.result === 'failure')?.value ?? 0;
  return { watch, lines, seen, failed, current: () => current, failures };
}

function dir(t: Test): string {
  return t.testdir({});
}

t.test('a file replaced by rename is seen through the directory watch (no poll)', async (t) => {
  const d = dir(t);
  const file = join(d, 'ca.pem');
  writeFileSync(file, 'one');
  const w = watched(t, [file]);
  writeFileSync(join(d, 'ca.pem.tmp'), 'two');
  renameSync(join(d, 'ca.pem.tmp'), file);
  await waitFor(() => w.current() === 'two', { timeoutMs: 5000, what: 'the replaced file to be read' });
  t.same(w.seen, [{ reason: 'file change', text: 'two' }]);
});

t.test('a file rewritten in place is seen', async (t) => {
  const d = dir(t);
  const file = join(d, 'policy.yaml');
  writeFileSync(file, 'one');
  const w = watched(t, [file]);
  writeFileSync(file, 'two, longer');
  await waitFor(() => w.current() === 'two, longer', { timeoutMs: 5000, what: 'the rewrite to be read' });
});

t.test('a burst of writes to several files makes one reload, after the files are quiet', async (t) => {
  const d = dir(t);
  const [cert, key] = [join(d, 'gateway.pem'), join(d, 'gateway-key.pem')];
  writeFileSync(cert, 'cert 0');
  writeFileSync(key, 'key 0');
  const debounceMs = 400; // well above the stalls of a loaded machine
  const w = watched(t, [cert, key], { debounceMs });
  const start = Date.now();
  for (let i = 1; i <= 20; i++) {
    writeFileSync(key, `key ${i}`);
    writeFileSync(cert, `cert ${i}`);
    await new Promise((r) => setImmediate(r)); // let the watch events of this write arrive
  }
  t.ok(Date.now() - start < debounceMs, `the burst took ${Date.now() - start} ms, less than the debounce`);
  await waitFor(() => w.seen.length > 0 && settled(), { timeoutMs: 5000, what: 'the reload, and nothing pending after it' });
  t.same(w.seen, [{ reason: 'file change', text: 'cert 20' }], 'one reload, of the last write');
});

t.test('a stream of writes that never goes quiet still reloads within 5 debounce periods', async (t) => {
  const d = dir(t);
  const file = join(d, 'revoked');
  writeFileSync(file, '0');
  const debounceMs = 250;
  const w = watched(t, [file], { debounceMs });
  const writes: number[] = [];
  const start = Date.now();
  // Paced far inside the debounce; the bound is well past the cap (a stall on a loaded machine may let it fire early: no harm).
  while (w.seen.length === 0 && writes.length < 1000 && Date.now() - start < 4000) {
    writeFileSync(file, String(writes.length));
    writes.push(Date.now());
    await new Promise((r) => setTimeout(r, 5));
  }
  const took = writes.at(-1)! - writes[0]!;
  t.equal(w.seen.length, 1, `reloaded while the writes went on (${writes.length} writes)`);
  t.ok(took < 6 * debounceMs, `reloaded ${took} ms into the stream (cap ${5 * debounceMs} ms)`);
});

t.test('writes to other files of the directory, and the poll seeing the change again, do not hold the reload back', async (t) => {
  const d = dir(t);
  const file = join(d, 'crl.pem');
  writeFileSync(file, 'old');
  const debounceMs = 300;
  const w = watched(t, [file], { pollMs: 20, debounceMs });
  let writes = 0;
  const start = Date.now();
  writeFileSync(file, 'new');
  while (w.current() !== 'new' && writes < 1000 && Date.now() - start < 4000) {
    writeFileSync(join(d, 'tokens.db-wal'), String(writes++)); // a busy neighbour: the token database
    await new Promise((r) => setTimeout(r, 5));
  }
  const took = Date.now() - start;
  t.equal(w.current(), 'new');
  t.ok(writes > 10, `the neighbour kept writing (${writes} writes)`);
  t.ok(took < 3 * debounceMs, `reloaded after ${took} ms: one debounce period, not the ${5 * debounceMs} ms cap`);
});

const breakages = [
  { what: 'a vanished file', code: 'ENOENT', spoil: (f: string) => unlinkSync(f), mend: (f: string) => writeFileSync(f, 'mended') },
  {
    what: 'an unreadable file (a directory where it was)',
    code: 'EISDIR',
    spoil: (f: string) => (rmSync(f), mkdirSync(f)),
    mend: (f: string) => (rmSync(f, { recursive: true }), writeFileSync(f, 'mended')),
  },
];

for (const b of breakages) {
  t.test(`${b.what} is reported once, not once per poll; mending it reloads`, async (t) => {
    const file = join(dir(t), 'aws.json');
    writeFileSync(file, 'good');
    const w = watched(t, [file], { pollMs: 20 });
    b.spoil(file);
    await waitFor(() => w.failed.length > 0, { timeoutMs: 5000, what: 'the failed reload' });
    const after = pollTicks();
    await waitFor(() => pollTicks() >= after + 10 && settled(), { timeoutMs: 5000, what: '10 more polls' });
    t.same(w.failed, [b.code], 'one failed reload while it stays broken');
    t.equal(w.current(), 'good', 'the owner kept its last good state');
    t.equal(w.lines.filter((l) => l.event === 'test_reload_failed').length, 1, 'one log line');
    b.mend(file);
    await waitFor(() => w.current() === 'mended', { timeoutMs: 5000, what: 'the mended file to be read' });
    t.same(w.failed, [b.code]);
  });
}

t.test('a permission change alone is a change (a credentials file fixed with chmod 600)', async (t) => {
  const d = dir(t);
  const file = join(d, 'aws.json');
  writeFileSync(file, 'same', { mode: 0o644 });
  const w = watched(t, [file]);
  chmodSync(file, 0o600);
  await waitFor(() => w.seen.length === 1, { timeoutMs: 5000, what: 'a reload after chmod' });
  t.equal(statSync(file).mode & 0o777, 0o600);
});

t.test('a Kubernetes-style swap of a symlinked directory is seen from the directory event', async (t) => {
  const d = dir(t);
  mkdirSync(join(d, '..v1'));
  mkdirSync(join(d, '..v2'));
  writeFileSync(join(d, '..v1', 'ca.pem'), 'v1');
  writeFileSync(join(d, '..v2', 'ca.pem'), 'v2');
  symlinkSync('..v1', join(d, '..data'));
  symlinkSync(join('..data', 'ca.pem'), join(d, 'ca.pem'));
  const w = watched(t, [join(d, 'ca.pem')]);
  symlinkSync('..v2', join(d, '..data_tmp'));
  renameSync(join(d, '..data_tmp'), join(d, '..data'));
  await waitFor(() => w.current() === 'v2', { timeoutMs: 5000, what: 'the swapped file' });
  t.same(w.seen, [{ reason: 'file change (stat)', text: 'v2' }], 'found by its stat, not its name');
});

t.test('a file whose directory cannot be watched is left to the poll, said once', async (t) => {
  const d = dir(t);
  const file = join(d, 'later', 'policy.yaml');
  const w = watched(t, [file], { pollMs: 20 });
  t.match(w.lines.filter((l) => l.event === 'file_watch_unavailable'), [{ level: 'warn', what: 'policy', dir: join(d, 'later'), polled: true, error: { code: 'ENOENT' } }]);
  mkdirSync(join(d, 'later'));
  writeFileSync(file, 'arrived');
  await waitFor(() => w.current() === 'arrived', { timeoutMs: 5000, what: 'the poll to find the file' });
  t.equal(w.seen[0]?.reason, 'file change (stat)');
  t.equal(w.lines.filter((l) => l.event === 'file_watch_unavailable').length, 1);
  const unpolled = watched(t, [join(d, 'never', 'x.yaml')], { pollMs: 0 });
  t.match(unpolled.lines, [{ event: 'file_watch_unavailable', polled: false }], 'and says so when nothing polls it');
});

t.test('reloads never overlap: changes and callers during one run share exactly one more run', async (t) => {
  const d = dir(t);
  const file = join(d, 'state');
  writeFileSync(file, '0');
  let running = 0;
  let most = 0;
  const runs: string[] = [];
  const gates: Array<() => void> = [];
  const reload: Reload = async (reason) => {
    running++;
    most = Math.max(most, running);
    runs.push(`${reason}: ${readFileSync(file, 'utf8')}`);
    await new Promise<void>((r) => gates.push(r));
    running--;
    return true;
  };
  const w = watched(t, [file], { reload });
  const first = w.watch.reload('SIGHUP');
  t.equal(gates.length, 1, 'the first run started');
  const fires = debounceFires;
  writeFileSync(file, '1');
  await waitFor(() => debounceFires === fires + 1, { timeoutMs: 5000, what: 'the change to ask for a reload' });
  const late = [w.watch.reload('SIGHUP again'), w.watch.reload('and again')];
  writeFileSync(file, '2');
  await waitFor(() => debounceFires === fires + 2, { timeoutMs: 5000, what: 'the second change to ask for a reload' });
  t.equal(runs.length, 1, 'nothing started while the first run is in flight');
  gates.shift()!();
  t.equal(await first, true);
  await waitFor(() => gates.length === 1, { timeoutMs: 5000, what: 'the one queued run' });
  t.same(runs, ['SIGHUP: 0', 'file change: 2'], 'one more run, reading what the callers saw');
  gates.shift()!();
  t.same(await Promise.all(late), [true, true], 'the queued callers share its result');
  t.equal(most, 1, 'never two at once');
  t.equal(runs.length, 2);
});

t.test('a reload that throws is logged and counted, never an unhandled rejection, and the watch goes on', async (t) => {
  const d = dir(t);
  const file = join(d, 'p.yaml');
  writeFileSync(file, '0');
  let calls = 0;
  const reload: Reload = async () => {
    calls++;
    if (calls === 1) throw new TypeError('a bug in the owner');
    return true;
  };
  const w = watched(t, [file], { reload });
  t.equal(await w.watch.reload('SIGHUP'), false);
  t.match(w.lines.find((l) => l.event === 'file_reload_crashed'), { level: 'error', what: 'policy', reason: 'SIGHUP', error: { name: 'TypeError', message: 'a bug in the owner' } });
  t.equal(await w.failures(), 1, 'reloads_total{what="policy",result="failure"}');
  writeFileSync(file, '1');
  await waitFor(() => calls === 2, { timeoutMs: 5000, what: 'the next change to reload' });
});

t.test('close() stops the watch, the poll and a pending debounce; a queued reload resolves false unrun', async (t) => {
  const d = dir(t);
  const other = join(d, 'sub');
  mkdirSync(other);
  const [a, b] = [join(d, 'a.pem'), join(other, 'b.pem')];
  writeFileSync(a, 'a');
  writeFileSync(b, 'b');
  const gates: Array<() => void> = [];
  let runs = 0;
  const reload: Reload = async () => {
    runs++;
    await new Promise<void>((r) => gates.push(r));
    return true;
  };
  await waitFor(() => live() === 0, { timeoutMs: 5000, what: 'the watches of the tests above, all closed, to be gone' });
  const w = watched(t, [a, b], { reload, pollMs: 20, debounceMs: 10_000 });
  t.same([live('watch'), live('poll')], [2, 1], 'one watch per directory and one poll');
  const first = w.watch.reload('SIGHUP');
  const queued = w.watch.reload('queued');
  writeFileSync(a, 'changed');
  await waitFor(() => live('debounce') > 0, { timeoutMs: 5000, what: 'a pending debounce' });
  w.watch.close();
  await waitFor(() => live() === 0, { timeoutMs: 5000, what: 'every watcher handle and timer to be gone' });
  gates.shift()!();
  t.equal(await first, true, 'the reload in flight finishes');
  t.equal(await queued, false, 'the queued one does not run');
  t.equal(runs, 1);
});
