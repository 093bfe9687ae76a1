#!/usr/bin/env bash
# The fuzz targets of the CI suite, run much longer. Same files,
# same generators, more cases per target:
#
#   scripts/fuzz-long.sh                         # 2,000,000 cases per target
#   FUZZ_CASES=10000000 scripts/fuzz-long.sh     # longer
#   FUZZ_SEED=123456 scripts/fuzz-long.sh        # replay a printed seed
#
# Every target prints its seed ("replay with FUZZ_SEED=...") and a summary
# line (cases, crashes, hangs, outcomes, heap growth). Targets: every owned
# parser (test/fuzz/parsers.test.ts), port 8786 (test/fuzz/port-8786.test.ts),
# port 8787 (test/fuzz/port-8787.test.ts), plus the wire engineer's frame
# parser fuzz (test/wire/fuzz.test.ts, fixed size).
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES="${FUZZ_CASES:-2000000}"
# Roughly 1 ms per network case: allow that, and never less than an hour.
timeout_s=$(( FUZZ_CASES / 500 > 3600 ? FUZZ_CASES / 500 : 3600 ))
echo "fuzz-long.sh: ${FUZZ_CASES} cases per target${FUZZ_SEED:+, seed $FUZZ_SEED}; per-file timeout ${timeout_s}s" >&2
exec npx tap --disable-coverage --jobs=1 --timeout="$timeout_s" --reporter=tap \
  test/fuzz/parsers.test.ts test/fuzz/port-8786.test.ts test/fuzz/port-8787.test.ts test/wire/fuzz.test.ts
