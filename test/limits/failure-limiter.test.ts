import t from 'tap';
import { FailureLimiter } from '../../src/limits/failure-limiter.js';

function clock(start = 0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

t.test('an address is blocked after its budget of failures, and only that address', async (t) => {
  const c = clock();
  const l = new FailureLimiter({ failures: 3, perMs: 60_000, now: c.now });
  for (let i = 0; i < 3; i++) {
    t.equal(l.blocked('10.0.0.1'), false, `allowed before failure ${i + 1}`);
    l.fail('10.0.0.1');
  }
  t.equal(l.blocked('10.0.0.1'), true, 'blocked after 3 failures');
  t.equal(l.blocked('10.0.0.2'), false, 'another address is unaffected');
});

t.test('tokens refill steadily: one failure back every perMs/failures', async (t) => {
  const c = clock();
  const l = new FailureLimiter({ failures: 6, perMs: 60_000, now: c.now });
  for (let i = 0; i < 6; i++) l.fail('a');
  t.equal(l.blocked('a'), true);
  c.advance(9_999);
  t.equal(l.blocked('a'), true, 'not yet a whole token after 9.999 s');
  c.advance(2);
  t.equal(l.blocked('a'), false, 'one token back after 10 s');
  l.fail('a');
  t.equal(l.blocked('a'), true, 'and spent again');
  c.advance(600_000);
  for (let i = 0; i < 5; i++) l.fail('a');
  t.equal(l.blocked('a'), false, 'the bucket never holds more than its capacity');
});

t.test('after a whole period of quiet an address has its full budget back', async (t) => {
  const c = clock();
  const l = new FailureLimiter({ failures: 3, perMs: 1000, now: c.now });
  for (let i = 0; i < 3; i++) l.fail('a');
  t.ok(l.blocked('a'));
  c.advance(1000);
  for (let i = 0; i < 2; i++) l.fail('a');
  t.notOk(l.blocked('a'), 'three failures allowed again, two used');
  l.fail('a');
  t.ok(l.blocked('a'));
});

t.test('the table of addresses stays bounded under a scan from many addresses', async (t) => {
  const c = clock();
  const l = new FailureLimiter({ failures: 10, perMs: 60_000, maxTracked: 1000, now: c.now });
  for (let i = 0; i < 50_000; i++) {
    l.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    c.advance(1);
  }
  t.ok(l.size <= 1000, `tracked ${l.size} addresses (limit 1000)`);
});

t.test('when the table is full, the sprayer loses the oldest entries, not the newest', async (t) => {
  const l = new FailureLimiter({ failures: 1, perMs: 60_000, maxTracked: 100, now: () => 0 });
  l.fail('victim-watch');
  for (let i = 0; i < 1000; i++) l.fail(`spray-${i}`);
  t.ok(l.blocked('spray-999'), 'the newest stays blocked');
  t.notOk(l.blocked('victim-watch'), 'the oldest entry was evicted first');
});

t.test('an IPv6 peer is limited by its /64: rotating addresses inside it does not reset the budget', async (t) => {
  const c = clock();
  const l = new FailureLimiter({ failures: 3, perMs: 60_000, now: c.now });
  l.fail('2001:db8:1:2::1');
  l.fail('2001:db8:1:2:aaaa::7');
  l.fail('2001:0db8:0001:0002:ffff:ffff:ffff:ffff');
  t.equal(l.blocked('2001:db8:1:2::99'), true, 'a fourth address in the same /64 is refused');
  t.equal(l.blocked('2001:db8:1:3::1'), false, 'the neighbouring /64 is not');
  t.equal(l.size, 1, 'one bucket for the whole /64');
});

t.test('an IPv4-mapped IPv6 address shares the bucket of its IPv4 form', async (t) => {
  const l = new FailureLimiter({ failures: 2, perMs: 60_000, now: clock().now });
  l.fail('::ffff:192.0.2.7');
  l.fail('192.0.2.7');
  t.equal(l.blocked('192.0.2.7'), true);
  t.equal(l.blocked('::ffff:192.0.2.7'), true);
});
