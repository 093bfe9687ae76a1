import t from 'tap';
import { FailedHandshakeLimiter } from '../../src/terminator/rate-limit.js';

function clock(start = 0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

t.test('an address is limited after its per-minute budget of failures, and only that address', async (t) => {
  const c = clock();
  const l = new FailedHandshakeLimiter({ perMinute: 3, now: c.now });
  for (let i = 0; i < 3; i++) {
    t.equal(l.isLimited('10.0.0.1'), false, `allowed before failure ${i + 1}`);
    l.recordFailure('10.0.0.1');
  }
  t.equal(l.isLimited('10.0.0.1'), true, 'limited after 3 failures');
  t.equal(l.isLimited('10.0.0.2'), false, 'another address is unaffected');
});

t.test('tokens refill steadily: one failure back every 60/N seconds', async (t) => {
  const c = clock();
  const l = new FailedHandshakeLimiter({ perMinute: 6, now: c.now });
  for (let i = 0; i < 6; i++) l.recordFailure('a');
  t.equal(l.isLimited('a'), true);
  c.advance(9_999);
  t.equal(l.isLimited('a'), true, 'not yet a whole token after 9.999 s');
  c.advance(2);
  t.equal(l.isLimited('a'), false, 'one token back after 10 s');
  l.recordFailure('a');
  t.equal(l.isLimited('a'), true, 'and spent again');
  c.advance(600_000);
  for (let i = 0; i < 5; i++) l.recordFailure('a');
  t.equal(l.isLimited('a'), false, 'the bucket never holds more than its capacity');
});

t.test('the table of addresses stays bounded under a scan from many addresses', async (t) => {
  const c = clock();
  const l = new FailedHandshakeLimiter({ perMinute: 10, maxAddresses: 1000, now: c.now });
  for (let i = 0; i < 50_000; i++) {
    l.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    c.advance(1);
  }
  t.ok(l.size <= 1000, `tracked ${l.size} addresses (limit 1000)`);
});
