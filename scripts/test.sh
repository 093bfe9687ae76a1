#!/usr/bin/env bash
# The whole suite: installs prerequisites, builds, type-checks src and tests,
# runs every test file with tap, checks the coverage floor, and ends with one
# plain line "N passed, N failed" computed from tap's results (skipped and todo
# tests are not counted as passed; a failed type check or coverage floor counts
# as one failure each).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-prereqs.sh || { echo "0 passed, 1 failed"; exit 1; }
npm run build || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p test/artifacts
extra_fail=0
if ! npx tsc -p tsconfig.test.json; then echo "type check of src/ and test/ failed"; extra_fail=$((extra_fail + 1)); fi
log=test/artifacts/tap-output.txt
rm -f test/artifacts/dask-wall-time.jsonl
npx tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
skip=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")
pass=${pass:-0}; fail=${fail:-0}
# A non-zero exit with no failure counted (a crashed runner) is still a failure.
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
if [ $# -eq 0 ]; then
  # The floor only means something for the whole suite.
  if ! { npx tap report json-summary >/dev/null && node scripts/coverage-floor.mjs; }; then extra_fail=$((extra_fail + 1)); fi
fi
node scripts/dask-wall-time.mjs || true
# The failures' names go last, next to the count: a CI log is read from its tail.
node scripts/tap-failures.mjs "$log" || true
fail=$((fail + extra_fail))
[ "$fail" -eq 0 ] || rc=1
if [ -n "$skip" ] && [ "$skip" != 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
exit "$rc"
