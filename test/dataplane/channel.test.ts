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

/** Counts what crosses the pipe: one entry per pipe message. */
function counting(port: IpcEnd): { port: IpcEnd; sent: unknown[] } {
  const sent: unknown[] = [];
  return { sent, port: { ...port, send: (m, cb) => { sent.push(m); return port.send(m, cb); } } };
}

t.test("one turn's messages cross the pipe as one message, in order; the answers come back the same way", async (t) => {
  const [a, b] = ipcPair();
  const left = counting(a);
  const right = counting(b);
  const ch = new Channel(left.port);
  const seen: number[] = [];
  new Channel(right.port).handle('double', (x) => (x as number) * 2).handle('note', (x) => void seen.push(x as number));
  const asked = Array.from({ length: 50 }, (_, i) => ch.request<number>('double', i));
  for (let i = 0; i < 5; i++) ch.notify('note', i);
  t.same(await Promise.all(asked), asked.map((_, i) => i * 2), 'every request got its own answer');
  t.same(seen, [0, 1, 2, 3, 4], 'events in the order sent');
  t.equal(left.sent.length, 1, '55 messages sent in one turn left as one pipe message');
  t.equal(right.sent.length, 1, 'the 50 answers of one turn came back as one');
  ch.notify('note', 5);
  await new Promise((r) => setTimeout(r, 20));
  t.same(left.sent.at(-1), { gw: 1, kind: 'evt', op: 'note', body: 5 }, 'a lone message goes as it is');
});

t.test('flush: sends now and calls back once written, or at once when the peer is gone; a lost batch fails all its requests', async (t) => {
  const [a, b] = ipcPair();
  const left = counting(a);
  const ch = new Channel(left.port);
  const heard: unknown[] = [];
  new Channel(b).handle('note', (x) => void heard.push(x));
  ch.notify('note', 'last words');
  await new Promise<void>((r) => ch.flush(r));
  t.equal(left.sent.length, 1, 'flushed before the end of the turn');
  await new Promise<void>((r) => ch.flush(r));
  t.same(left.sent.at(-1), { gw: 0 }, 'with nothing waiting, a marker still tells when the pipe has written everything');
  await new Promise((r) => setTimeout(r, 20));
  t.same(heard, ['last words']);
  const first = ch.request('note', 1);
  const second = ch.request('note', 2);
  a.cut();
  await t.rejects(first, /cannot send note: the other process is gone/);
  await t.rejects(second, /cannot send note: the other process is gone/);
  let called = false;
  ch.flush(() => { called = true; });
  await new Promise((r) => setImmediate(r));
  t.ok(called, 'flush calls back even with the peer gone (a process exiting must not hang)');
});
