#!/usr/bin/env bash
# tools/run.sh - the README's first command: installs what is missing, builds
# the release configuration and runs the main job. Until the fraud-scorer job
# exists (issue 7), the runtime benchmarks stand in for it: ring throughput
# between two pinned shards, then cross-shard latency (busy-poll and sleeping).
# Extra arguments go to both benchmarks (e.g. --seconds 10, -D shards.pin=false).
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
