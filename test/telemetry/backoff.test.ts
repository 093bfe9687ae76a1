import t from 'tap';
import { Backoff } from '../../src/telemetry/backoff.js';

t.test('the ceiling doubles per failure up to the cap', async (t) => {
  const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
  t.same(Array.from({ length: 6 }, () => b.next()), [99, 199, 399, 799, 999, 999]);
});

t.test('full jitter: any delay from zero to the ceiling', async (t) => {
  const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 });
  t.equal(b.next(), 0);
  const r = new Backoff({ baseMs: 1000, capMs: 60_000 });
  const delays = Array.from({ length: 200 }, () => { r.reset(); return r.next(); });
  t.ok(delays.every((d) => d >= 0 && d < 1000));
  t.ok(new Set(delays).size > 50, 'delays are spread, not in lockstep');
});

t.test('a success starts the sequence again', async (t) => {
  const b = new Backoff({ baseMs: 100, capMs: 10_000, random: () => 0.5 });
  b.next(); b.next(); b.next();
  t.equal(b.attempts, 3);
  b.reset();
  t.equal(b.next(), 50);
});

t.test('many failures never overflow the cap', async (t) => {
  const b = new Backoff({ baseMs: 1, capMs: 300_000, random: () => 0.999 });
  let last = 0;
  for (let i = 0; i < 2000; i++) last = b.next();
  t.ok(last <= 300_000 && Number.isFinite(last));
});

t.test('nonsense settings are refused', async (t) => {
  t.throws(() => new Backoff({ baseMs: 0, capMs: 10 }));
  t.throws(() => new Backoff({ baseMs: 100, capMs: 10 }));
});
