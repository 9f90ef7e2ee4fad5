#!/usr/bin/env bash
# tools/run.sh - the README's first command: installs what is missing, builds
# the release configuration and runs the main job, the payment fraud scorer
# (tools/fraud/demo.c: embedded Kafka broker, payment producer, the job on
# every core, the alert checker, a summary). Extra arguments go to
# spate-fraud-demo (--payments N, --partitions N, --seed N, -D key=value).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"

cpus=$(nproc)
extra=()
if [ "$cpus" -lt 2 ]; then
  # One CPU: oversubscribe unpinned shards.
  extra=(-D shards.pin=false -D shards.count=2)
fi
exec build/release/tools/spate-fraud-demo "${extra[@]}" "$@"
