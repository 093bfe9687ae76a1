/** The fuzz kit's own contract: what counts as a crash and as a hang. */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { fuzz } from './fuzz-kit.js';

t.test('a case slow on every run is a hang; one slow run followed by a fast one is not', async (t) => {
  let runs = 0;
  const s = await fuzz(t, {
    name: 'kit: slow cases',
    cases: 4,
    hangMs: 40,
    generate: (_rand, i) => i,
    run: async (i) => {
      runs++;
      // Case 1 is always slow; case 2 only on its first run (a stalled machine).
      if (i === 1 || (i === 2 && runs === 4)) await sleep(80);
      return 'ok';
    },
  });
  t.equal(s.hangs, 1, 'only the reproducibly slow case');
  t.equal(runs, 6, 'each slow case ran twice');
});

t.test('an unexpected error is a crash, an expected one a refusal', async (t) => {
  const s = await fuzz(t, {
    name: 'kit: errors',
    cases: 3,
    generate: (_rand, i) => i,
    run: (i) => {
      if (i === 0) throw new RangeError('expected');
      if (i === 1) throw new TypeError('unexpected');
      return 'accepted';
    },
    isExpected: (e) => e instanceof RangeError,
  });
  t.equal(s.crashes, 1);
  t.same(s.outcomes, { refused: 1, crash: 1, accepted: 1 });
});
