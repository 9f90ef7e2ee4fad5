#!/usr/bin/env bash
# bench/nexmark/run.sh - runs the Nexmark set on the release build, one
# query after another, and prints each run's figures with the load average
# before it (the machine may be shared: say so when you quote them).
#
# Usage: bench/nexmark/run.sh [BUILD_DIR] [extra spate-bench-nexmark options]
# Defaults: build/release, 2 shards, event-time rate 100,000/s (Nexmark V2),
# checkpoints every 500 ms (stateless and short runs) or 2 s (stateful).
set -euo pipefail
build=${1:-build/release}
shift || true
bin="$build/bench/spate-bench-nexmark"
[ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --build --preset release)" >&2; exit 2; }
run() {
  echo "### load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin" "$@" 2>&1 | grep -v ' WARN '
  echo
}
for q in q0 q1 q2; do
  run --query "$q" --events 20000000 --shards 2 --rate 100000 --checkpoint-interval 500 "$@"
done
for q in q3 q8 q10; do
  run --query "$q" --events 5000000 --shards 2 --rate 100000 --checkpoint-interval 500 "$@"
done
for q in q4 q5 q7 q9 q11 q12 q15 q16 q17 q18 q19 q20; do
  run --query "$q" --events 5000000 --shards 2 --rate 100000 --checkpoint-interval 2000 "$@"
done
