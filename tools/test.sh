#!/usr/bin/env bash
# tools/test.sh - the README's second command: installs what is missing,
# builds and runs the whole test suite in three builds, and prints ctest's
# summary for each:
#   release    every test
#   asan       every test under AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan       the cross-shard tests (label xshard) under ThreadSanitizer
# Soak tests (label soak) are opt-in: SPATE_TEST_SOAK=1 tools/test.sh.
# SPATE_TEST_BUILDS="release" limits the builds (e.g. for a quick local run).
# Exit status: 0 only if every build passed.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
jobs=$(nproc)
builds=${SPATE_TEST_BUILDS:-"release asan tsan"}
exclude="soak"
[ "${SPATE_TEST_SOAK:-0}" = "1" ] && exclude="^$"

status=0
summary=()
for b in $builds; do
  echo "==== build: $b ===="
  cmake --preset "$b" >/dev/null
  cmake --build --preset "$b" -j "$jobs"
  echo "==== tests: $b ===="
  set +e
  ctest --preset "$b" -j "$jobs" --label-exclude "$exclude" --timeout 600
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then summary+=("$b: passed"); else summary+=("$b: FAILED"); status=1; fi
done
echo "==== summary ===="
printf '  %s\n' "${summary[@]}"
exit $status
