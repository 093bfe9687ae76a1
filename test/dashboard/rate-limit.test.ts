import t from 'tap';
import { FailureLimiter } from '../../src/dashboard/rate-limit.js';

t.test('an address is blocked after its failures until the window ends', async (t) => {
  let now = 0;
  const l = new FailureLimiter({ maxFailures: 3, windowMs: 1000, now: () => now });
  for (let i = 0; i < 3; i++) {
    t.notOk(l.blocked('a'));
    l.fail('a');
  }
  t.ok(l.blocked('a'));
  t.notOk(l.blocked('b'), 'other addresses are unaffected');
  now = 1000;
  t.notOk(l.blocked('a'), 'a new window');
});

t.test('memory stays bounded when addresses are sprayed', async (t) => {
  const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxTracked: 100, now: () => 0 });
  l.fail('victim-watch');
  for (let i = 0; i < 1000; i++) l.fail(`spray-${i}`);
  t.ok(l.blocked('spray-999'));
  t.notOk(l.blocked('victim-watch'), 'the oldest entry was evicted first');
});
