/**
 * A data-plane process's log lines: formatted and redacted in the process,
 * written by the primary as they are, whole, in order, with `dataplane`.
 */
import t from 'tap';
import { Channel } from '../../src/dataplane/channel.js';
import { relayLogger, writeRelayed } from '../../src/dataplane/log-relay.js';
import { createLogger } from '../../src/log/logger.js';
import { ipcPair } from '../helpers/ipc-pair.js';

t.test('lines cross to the primary whole, redacted before they leave, in order, at most a pipe buffer per message', async (t) => {
  const [a, b] = ipcPair();
  const written: string[] = [];
  const primaryLog = createLogger({ stream: { write: (text: string) => void written.push(text) } });
  const messages: string[] = [];
  new Channel(a).handle('log', (text) => {
    messages.push(String(text));
    writeRelayed(primaryLog, text);
  });
  const log = relayLogger(new Channel(b), 'info', 2);
  log.debug('below_level', {});
  log.audit('connection_accepted', { conn: 'c-1', token: 'dgw_secret', token_id: 'tok1' });
  for (let i = 0; i < 100; i++) log.info('connection_closed', { conn: `c-${i}`, detail: 'x'.repeat(100) });
  await new Promise((r) => setTimeout(r, 50));
  const lines = written.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 101, 'every line at or above the level, none below');
  t.same(lines.map((l) => l.dataplane), Array(101).fill(2), 'each says which process');
  t.equal(lines[0]!.token, '[redacted]', 'redacted in the process');
  t.equal(lines[0]!.token_id, 'tok1');
  t.same(lines.slice(1).map((l) => l.conn), Array.from({ length: 100 }, (_, i) => `c-${i}`), 'in order');
  t.ok(messages.length > 1 && messages.every((m) => Buffer.byteLength(m) <= 4096 && m.endsWith('\n')), 'whole lines, at most PIPE_BUF per message');
});

t.test('the primary writes nothing that is not whole lines of text', async (t) => {
  const written: string[] = [];
  const log = createLogger({ stream: { write: (text: string) => void written.push(text) } });
  for (const junk of [null, 42, { level: 'audit', event: 'forged' }, 'no newline', ['a\n']]) writeRelayed(log, junk);
  t.same(written, []);
});
