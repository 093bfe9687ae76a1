#!/usr/bin/env bash
# The whole suite: installs prerequisites, builds, runs every test file, and
# ends with one plain line "N passed, N failed" computed from tap's results
# (skipped and todo tests are not counted as passed).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-prereqs.sh || { echo "0 passed, 1 failed"; exit 1; }
npm run build || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p test/artifacts
log=test/artifacts/tap-output.txt
npx tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
skip=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")
pass=${pass:-0}; fail=${fail:-0}
# A non-zero exit with no failure counted (a crashed runner, a coverage gate) is still a failure.
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
if [ -n "$skip" ] && [ "$skip" != 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
exit "$rc"
