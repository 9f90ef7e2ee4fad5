#!/usr/bin/env bash
# tools/install-deps.sh - installs the Debian 12 packages Spate needs to build
# and test, non-interactively. Does nothing (and needs no network) when all
# are present; otherwise runs `apt-get update` once and installs the missing
# ones. Needs root (or sudo) only when something is missing.
#
# Usage: tools/install-deps.sh [--check]   (--check: list what is missing, exit 1 if any)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config     # toolchain
  liburing-dev                         # io_uring (shard reactors)
  librdkafka-dev                       # Kafka source and sink
  libmimalloc-dev                      # per-shard heaps
  librocksdb-dev                       # RocksDB state backend
  libyaml-dev                          # config.yaml
  libxxhash-dev                        # key hashing (key groups)
  libjansson-dev                       # JSON lines records (and their error messages)
  libsimdjson-dev                      # JSON lines records, the fast path
  libcsv-dev                           # CSV records
  libgtest-dev                         # googletest suites
  libmicrohttpd-dev                    # REST API server (net/rest.c)
  libcurl4-openssl-dev                 # REST client of the spate CLI
  curl                                 # REST tests
  prometheus                           # promtool: /metrics checked in tests
  tmux                                 # spate top checked in an 80x24 terminal
  kcat                                 # Kafka tests: produce to and consume from the embedded broker
  sqlite3                              # the Nexmark SQL oracle (tests/bench)
  gnuplot-nox                          # bench/report.sh: the plots in docs/img
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "install-deps: missing: ${missing[*]}"
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-deps: error: missing packages (${missing[*]}) and not root; run as root or install them" >&2
    exit 1
  fi
fi
echo "install-deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
