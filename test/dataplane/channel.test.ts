import t from 'tap';
import { Channel } from '../../src/dataplane/channel.js';
import { ipcPair, type IpcEnd } from '../helpers/ipc-pair.js';

// The channel's deadlines do not hold a process open (real processes have sockets); this test has nothing else.
const keepAlive = setInterval(() => {}, 1_000);
t.teardown(() => clearInterval(keepAlive));

t.test('a request gets its own answer, events arrive, a throwing handler answers with its error', async (t) => {
  const [a, b] = ipcPair();
  const left = new Channel(a);
  const right = new Channel(b);
  const seen: unknown[] = [];
  right.handle('double', (x) => (x as number) * 2).handle('slow', (x) => new Promise((r) => setTimeout(() => r(x), 30)));
  right.handle('boom', () => { throw new Error('no such slot'); }).handle('note', (x) => void seen.push(x));
  const [slow, fast] = await Promise.all([left.request('slow', 'first'), left.request('double', 21)]);
  t.same([slow, fast], ['first', 42], 'answers find their requests, whatever order they come back in');
  await t.rejects(left.request('boom', null), /no such slot/);
  await t.rejects(left.request('missing', null), /no handler for missing/);
  left.notify('note', { k: 1 });
  await new Promise((r) => setTimeout(r, 20));
  t.same(seen, [{ k: 1 }]);
});

t.test('no answer within the deadline rejects; closing rejects what waits; a closed channel refuses at once', async (t) => {
  const [a, b] = ipcPair();
  const left = new Channel(a);
  new Channel(b).handle('never', () => new Promise(() => {}));
  await t.rejects(left.request('never', null, 50), /no answer to never within 50 ms/);
  const waiting = left.request('never', null, 10_000);
  left.close();
  await t.rejects(waiting, /channel closed/);
  await t.rejects(left.request('never', null), /channel closed before never/);
});

t.test('a gone peer: sending fails cleanly; foreign messages on the pipe are ignored', async (t) => {
  const [a, b] = ipcPair();
  const left = new Channel(a);
  const right = new Channel(b).handle('x', () => 1);
  a.cut();
  await t.rejects(left.request('x', null), /the other process is gone/);
  t.doesNotThrow(() => left.notify('x', null));
  const [c, d] = ipcPair();
  const ch = new Channel(c).handle('ping', () => 'pong');
  const junks = [null, 'text', { gw: 2, kind: 'req', id: 1, op: 'ping' }, { gw: 1, kind: 'req', op: 'ping' }, { gw: 1, kind: 'res', id: 99 },
    { gw: 1, kind: 'batch', body: 'not a list' }, { gw: 1, kind: 'batch', body: [null, 7, { gw: 1, kind: 'res', id: 98 }] }];
  for (const junk of junks) d.send(junk, () => {});
  const probe = new Channel(d);
  t.equal(await probe.request('ping', null), 'pong', 'still answering after junk');
  void ch; void right;
});

t.test('a handler runs as its message arrives: one that registers handlers serves the messages right behind it', async (t) => {
  const [a, b] = ipcPair();
  const left = new Channel(a);
  const right = new Channel(b);
  right.handle('init', () => {
    right.handle('after', (x) => `seen ${String(x)}`);
    return new Promise((r) => setTimeout(() => r('ready'), 20));
  });
  // Both leave in one turn and arrive back to back, as two messages of one read do.
  const [init, after] = await Promise.all([left.request('init', null), left.request('after', 1)]);
  t.same([init, after], ['ready', 'seen 1']);
});

t.test("every send carries a callback, so a pipe closed under it fails the request instead of emitting 'error' (which kills a primary)", async (t) => {
  const [a, b] = ipcPair();
  const withoutCallback: unknown[] = [];
  const watched: IpcEnd = { ...a, send: (m, cb) => { if (typeof cb !== 'function') withoutCallback.push(m); return a.send(m, cb); } };
  const ch = new Channel(watched);
  new Channel(b).handle('x', () => 1).handle('note', () => {});
  t.equal(await ch.request('x', null), 1);
  ch.notify('note', 1);
  a.cut();
  await t.rejects(ch.request('x', null), /cannot send x: the other process is gone/);
  ch.notify('note', 2);
  t.same(withoutCallback, [], 'requests and events alike');
});
