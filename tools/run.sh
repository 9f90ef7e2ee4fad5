#!/usr/bin/env bash
# tools/run.sh - the README's first command: installs what is missing, builds
# the release configuration and runs the main job. Until the fraud-scorer job
# exists (issue 7), the benchmarks stand in for it: ring throughput between
# two pinned shards, cross-shard latency (busy-poll and sleeping), and the
# DataStream API on every shard (a chained pipeline, a keyed count, tumbling
# and sliding windows, an interval join).
# Extra arguments go to every benchmark (e.g. -D shards.pin=false).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"

cpus=$(nproc)
extra=()
if [ "$cpus" -lt 2 ]; then
  # One CPU: two pinned shards are impossible; oversubscribe unpinned.
  extra=(-D shards.pin=false)
fi
build/release/bench/spate-bench-ring "${extra[@]}" "$@"
echo
build/release/bench/spate-bench-latency "${extra[@]}" "$@"
echo
build/release/bench/spate-bench-dataflow "${extra[@]}" "$@"
