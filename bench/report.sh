#!/usr/bin/env bash
# bench/report.sh - runs the whole benchmark set on the release build and
# writes the generated part of docs/benchmarks.md: the machine, the build
# flags, every command line with the load average before it, the results
# tables, the published reference rows, and plots (PNG, gnuplot) under
# docs/img/. Only the region between the lines <!-- report:begin --> and
# <!-- report:end --> is replaced; the hand-written history and analysis
# around it stay. Without the markers, the region is inserted before the
# first "## " heading (after the intro).
#
# A benchmark that fails (exit status not 0, or no figure in its output)
# shows as FAILED with its exit status; the script goes on with the others
# and exits 1 at the end. 124 is a timeout (per-run limit: 600 s full, 150 s
# quick). The machine may be shared: the 1-minute load average is recorded
# before every run.
#
# Usage: bench/report.sh [--quick] [--out FILE] [--img-dir DIR] [--build DIR]
#                        [--only LIST]
#   --quick      small sizes (the whole set in about 2 minutes)
#   --out FILE   the markdown file to update (default docs/benchmarks.md)
#   --img-dir D  where the PNGs go (default docs/img)
#   --build DIR  the release build (default build/release)
#   --only LIST  comma-separated sections to run (ring,latency,dataflow,
#                state,snapshot,checkpoint,kafka,nexmark,ysb); the others
#                are left out of the region (for trying the script)
# Environment: NEXMARK_QUERIES="q0 q5 ..." overrides the query list, which
# is otherwise read from spate-bench-nexmark --help (new queries are picked
# up without editing this script; their sizes come from nexmark_size below).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=full
out=$root/docs/benchmarks.md
img=$root/docs/img
build=$root/build/release
only=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) mode=quick ;;
    --out) out=$2; shift ;;
    --img-dir) img=$2; shift ;;
    --build) build=$2; shift ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "report.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
bin=$build/bench
for b in ring latency dataflow state snapshot checkpoint kafka nexmark ysb; do
  [ -x "$bin/spate-bench-$b" ] || { echo "report.sh: $bin/spate-bench-$b not built (cmake --build --preset release)" >&2; exit 2; }
done
command -v gnuplot >/dev/null || { echo "report.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
mkdir -p "$img" "$(dirname "$out")" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/spate-report-XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work # checkpoint and state directories of the benchmarks
q() { [ "$mode" = quick ]; }
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
t_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
limit=600; q && limit=150

# ---- running ------------------------------------------------------------------------
# run ID CMD...: runs one benchmark with its output in $work/ID.log; records
# the load before, the command (relative to the repo) and the exit status.
run() {
  local id=$1; shift
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local shown="${*#"$root"/}"
  shown=${shown//"$root/"/}
  printf '%s\t%s\t%s\n' "$id" "$load" "$shown" >> "$work/commands"
  printf 'report.sh: [%s] %s (load %s)\n' "$(date -u +%H:%M:%S)" "$id" "$load" >&2
  local t0; t0=$(date +%s)
  (cd "$root" && timeout "$limit" "$@") > "$work/$id.log" 2>&1
  local rc=$?
  echo "$rc" > "$work/$id.rc"
  echo "$load" > "$work/$id.load"
  echo $(( $(date +%s) - t0 )) > "$work/$id.secs"
  if [ "$rc" -ne 0 ]; then
    printf 'report.sh: %s FAILED (exit %s); last lines:\n' "$id" "$rc" >&2
    grep -v ' WARN ' "$work/$id.log" | tail -5 | sed 's/^/    /' >&2
  fi
  return 0
}
ok() { [ "$(cat "$work/$1.rc" 2>/dev/null)" = 0 ]; }
# pick ID REGEX: the first match (grep -P, \K to cut) in ID's output, or "".
pick() { grep -m1 -oP "$2" "$work/$1.log" 2>/dev/null | head -1; }
load_of() { cat "$work/$1.load" 2>/dev/null; }
fail_cell() { echo "FAILED (exit $(cat "$work/$1.rc" 2>/dev/null || echo '?'))"; }
# A figure that should be there and is not: the run counts as failed
# (recorded in its .rc file: this may run in a subshell).
need() { # need ID VALUE
  if [ -z "$2" ] && ok "$1"; then
    echo 99 > "$work/$1.rc"
    echo "report.sh: $1: no figure found in its output (marked exit 99)" >&2
  fi
}
# summary ID BENCH WHAT VALUE UNIT: one row of the summary table.
summary() {
  local cell
  if ok "$1" && [ -n "$4" ]; then cell="$4 $5"; else cell=$(fail_cell "$1"); fi
  printf '| %s | %s | %s | %s | %s s |\n' "$2" "$3" "$cell" "$(load_of "$1")" \
    "$(cat "$work/$1.secs" 2>/dev/null)" >> "$work/summary.md"
}
ns_us() { [ -n "$1" ] && awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
m() { [ -n "$1" ] && awk -v v="$1" 'BEGIN { printf "%.3f", v / 1e6 }'; }
sec() { cat >> "$work/sections.md"; }

# ---- ring -----------------------------------------------------------------------------
if want ring; then
  s=5; q && s=1
  run ring "$bin/spate-bench-ring" --seconds $s
  r=$(pick ring 'throughput: \K[0-9.]+'); need ring "$r"
  summary ring ring "shard 0 -> shard 1, 64-byte records" "$r" "M records/s"
  { echo "### Ring throughput"; echo
    echo '`'"$(grep -P '^ring\t' "$work/commands" | cut -f3)"'`'; echo
    echo "| M records/s | GB/s | producer / consumer utilization | lost or out of order | load before |"
    echo "|---|---|---|---|---|"
    if ok ring; then
      echo "| $r | $(pick ring ', \K[0-9.]+(?= GB/s)') | $(pick ring 'producer shard \(cpu \d+\) \K\d+')% / $(pick ring 'consumer shard \(cpu \d+\) \K\d+')% | $(pick ring 'received, \K\d+') | $(load_of ring) |"
    else echo "| $(fail_cell ring) | | | | $(load_of ring) |"; fi
    echo; } | sec
fi

# ---- cross-shard latency --------------------------------------------------------------
if want latency; then
  s=3; q && s=1
  run latency "$bin/spate-bench-latency" --seconds $s
  { echo "### Cross-shard latency (one way)"; echo
    echo '`'"$(grep -P '^latency\t' "$work/commands" | cut -f3)"'`'; echo
    echo "| mode | p50 µs | p99 µs | p99.9 µs | rounds |"
    echo "|---|---|---|---|---|"
    for mode_ in busy-poll sleeping floor; do
      line=$(grep -m1 "^$mode_ " "$work/latency.log")
      if ok latency && [ -n "$line" ]; then
        ow=${line##*one-way ns: }
        p50=$(grep -oP 'p50=\K\d+' <<< "$ow"); p99=$(grep -oP 'p99=\K\d+' <<< "$ow"); p999=$(grep -oP 'p99.9=\K\d+' <<< "$ow")
        echo "| $mode_ | $(ns_us "$p50") | $(ns_us "$p99") | $(ns_us "$p999") | $(grep -oP 'rounds=\K\d+' <<< "$line") |"
        printf 'cross-shard %s\t%s\t%s\n' "$mode_" "$(awk -v v="$p50" 'BEGIN{print v/1e6}')" \
          "$(awk -v v="$p99" 'BEGIN{print v/1e6}')" >> "$work/latency.dat"
      else echo "| $mode_ | $(fail_cell latency) | | | |"; fi
    done; echo; } | sec
  p99=$(grep -m1 '^sleeping ' "$work/latency.log" | grep -oP 'one-way ns: p50=\d+ p99=\K\d+'); need latency "$p99"
  summary latency latency "one-way p99, sleeping shards (woken by msg-ring)" "$(ns_us "$p99")" "µs"
fi

# ---- dataflow -------------------------------------------------------------------------
if want dataflow; then
  n=10000000; q && n=400000
  run dataflow "$bin/spate-bench-dataflow" --events=$n
  { echo "### DataStream API (2 shards)"; echo
    echo '`'"$(grep -P '^dataflow\t' "$work/commands" | cut -f3)"'`'; echo
    echo "| scenario | events | M events/s per core | latency p50 / p99 ms |"
    echo "|---|---|---|---|"
    for sc in chain keyed-count tumbling sliding interval-join; do
      line=$(grep -m1 "^$sc " "$work/dataflow.log")
      if ok dataflow && [ -n "$line" ]; then
        echo "| $sc | $(grep -oP 'events=\K\d+' <<< "$line") | $(grep -oP '[0-9.]+(?= M events/s per core)' <<< "$line") | $(awk -v a="$(grep -oP 'p50=\K[0-9.]+' <<< "$line")" -v b="$(grep -oP 'p99=\K[0-9.]+' <<< "$line")" 'BEGIN{printf "%.3f / %.3f", a/1000, b/1000}') |"
      else echo "| $sc | $(fail_cell dataflow) | | |"; fi
    done; echo; } | sec
  r=$(grep -m1 '^tumbling ' "$work/dataflow.log" | grep -oP '[0-9.]+(?= M events/s per core)'); need dataflow "$r"
  summary dataflow dataflow "tumbling window aggregate, per core" "$r" "M events/s"
fi

# ---- state ----------------------------------------------------------------------------
if want state; then
  if q; then
    run state-memory "$bin/spate-bench-state" --backend memory --keys 100000 --ops 200000
    run state-rocksdb "$bin/spate-bench-state" --backend rocksdb --keys 20000 --ops 40000
  else
    run state-memory "$bin/spate-bench-state" --backend memory --keys 1000000 --ops 2000000
    run state-rocksdb "$bin/spate-bench-state" --backend rocksdb --keys 300000 --ops 300000
  fi
  { echo "### Keyed state backends (one thread)"; echo
    for id in state-memory state-rocksdb; do echo '`'"$(grep -P "^$id\t" "$work/commands" | cut -f3)"'`  '; done; echo
    echo "| backend | keys | load (put) ops/s | update (get+put) ops/s | point read ops/s | bytes held / raw | load before |"
    echo "|---|---|---|---|---|---|---|"
    for id in state-memory state-rocksdb; do
      be=${id#state-}
      if ok $id; then
        echo "| $be | $(pick $id '^keys \K\d+') | $(pick $id 'load \(put\)\s+\d+ ops\s+[0-9.]+ s\s+\K\d+') | $(pick $id 'update \(get\+put\)\s+\d+ ops\s+[0-9.]+ s\s+\K\d+') | $(pick $id 'point read \(get\)\s+\d+ ops\s+[0-9.]+ s\s+\K\d+') | $(pick $id '[0-9.]+x(?= the raw)') | $(load_of $id) |"
      else echo "| $be | $(fail_cell $id) | | | | | $(load_of $id) |"; fi
    done; echo; } | sec
  for id in state-memory state-rocksdb; do
    r=$(pick $id 'update \(get\+put\)\s+\d+ ops\s+[0-9.]+ s\s+\K\d+'); need $id "$r"
    summary $id "state (${id#state-})" "updates (get+put), $(pick $id '^keys \K\d+') keys" "$(m "$r")" "M ops/s"
  done
fi

# ---- snapshot -------------------------------------------------------------------------
if want snapshot; then
  b=268435456; q && b=16777216
  run snapshot "$bin/spate-bench-snapshot" --bytes $b --value-bytes 200 --step-bytes 4194304 --batch 1000 --max-parallelism 128
  { echo "### Canonical snapshot and restore (memory backend)"; echo
    echo '`'"$(grep -P '^snapshot\t' "$work/commands" | cut -f3)"'`'; echo
    echo "| state MiB | sync snapshot s (MiB/s) | async: longest pause ms | restore 1 shard s | restore 2 shards, slowest s | load before |"
    echo "|---|---|---|---|---|---|"
    if ok snapshot; then
      echo "| $(pick snapshot '\K\d+(?= MiB held)') | $(pick snapshot 'sync snapshot: \K[0-9.]+') ($(pick snapshot 'sync snapshot: .*?\K\d+(?= MiB/s)')) | $(pick snapshot 'pause_ns\): \K[0-9.]+') | $(pick snapshot 'onto 1 shard: slowest shard \K[0-9.]+') | $(pick snapshot 'onto 2 shards: slowest shard \K[0-9.]+') | $(load_of snapshot) |"
    else echo "| $(fail_cell snapshot) | | | | | $(load_of snapshot) |"; fi
    echo; } | sec
  r=$(pick snapshot 'pause_ns\): \K[0-9.]+'); need snapshot "$r"
  summary snapshot snapshot "asynchronous snapshot, longest shard pause" "$r" "ms"
fi

# ---- checkpoints ----------------------------------------------------------------------
if want checkpoint; then
  if q; then
    run ckpt-backpressure "$bin/spate-bench-checkpoint" --part backpressure --seconds 2
    run ckpt-overhead "$bin/spate-bench-checkpoint" --part overhead --events 2000000 --rounds 1
    run ckpt-recovery "$bin/spate-bench-checkpoint" --part recovery --rec-keys 100000 --rec-rate 200000 --rec-warmup 2
  else
    run ckpt-backpressure "$bin/spate-bench-checkpoint" --part backpressure --seconds 10
    run ckpt-overhead "$bin/spate-bench-checkpoint" --part overhead --events 20000000 --rounds 2
    run ckpt-recovery "$bin/spate-bench-checkpoint" --part recovery
  fi
  { echo "### Checkpoints (2 shards)"; echo
    for id in ckpt-backpressure ckpt-overhead ckpt-recovery; do echo '`'"$(grep -P "^$id\t" "$work/commands" | cut -f3)"'`  '; done; echo
    echo "| part | figure | load before |"
    echo "|---|---|---|"
    for mode_ in unaligned aligned; do
      line=$(grep -m1 "^backpressure $mode_" "$work/ckpt-backpressure.log")
      if ok ckpt-backpressure && [ -n "$line" ]; then echo "| backpressure, $mode_ | ${line#*: } | $(load_of ckpt-backpressure) |"
      else echo "| backpressure, $mode_ | $(fail_cell ckpt-backpressure) | $(load_of ckpt-backpressure) |"; fi
    done
    for id in ckpt-overhead ckpt-recovery; do
      line=$(grep -m1 "^${id#ckpt-} \+:" "$work/$id.log")
      if ok $id && [ -n "$line" ]; then echo "| ${id#ckpt-} | ${line#*: } | $(load_of $id) |"
      else echo "| ${id#ckpt-} | $(fail_cell $id) | $(load_of $id) |"; fi
    done; echo; } | sec
  r=$(pick ckpt-backpressure '^backpressure unaligned.*?duration p50\s+\K[0-9.]+'); need ckpt-backpressure "$r"
  summary ckpt-backpressure checkpoint "unaligned under backpressure, duration p50" "$r" "ms"
  r=$(pick ckpt-overhead '^overhead.*?: \K[0-9.]+(?= M events/s per core off)')
  r2=$(pick ckpt-overhead '^overhead.*?per core off, \K[0-9.]+(?= on)'); need ckpt-overhead "$r2"
  summary ckpt-overhead checkpoint "keyed count, per core, checkpoints off / on" "$r / $r2" "M events/s"
  r=$(pick ckpt-recovery 'to new checkpoint \K[0-9.]+'); need ckpt-recovery "$r"
  summary ckpt-recovery checkpoint "recovery after SIGKILL ($(pick ckpt-recovery '^recovery\s+: \K[0-9.]+ MiB') state), restart to first checkpoint" "$r" "ms"
fi

# ---- kafka ----------------------------------------------------------------------------
if want kafka; then
  if q; then run kafka "$bin/spate-bench-kafka" --records 100000 --produce-records 200000 --seconds 2
  else run kafka "$bin/spate-bench-kafka" --seconds 5; fi
  { echo "### Kafka source and sink (embedded broker, 1 shard)"; echo
    echo '`'"$(grep -P '^kafka\t' "$work/commands" | cut -f3)"'`'; echo
    echo "| part | figure |"
    echo "|---|---|"
    for part in consume-raw consume-json produce-alo produce-eos latency baseline; do
      line=$(grep -m1 "^$part " "$work/kafka.log")
      if [ -n "$line" ]; then echo "| $part | $(sed -E "s/^$part +//" <<< "$line") |"
      else echo "| $part | $(fail_cell kafka) |"; fi
    done
    echo; echo "Load before: $(load_of kafka)."; echo; } | sec
  r=$(pick kafka '^consume-json\s+\K\d+'); need kafka "$r"
  summary kafka kafka "consume JSON (100 B), per shard" "$(m "$r")" "M records/s"
  for part in latency baseline; do
    line=$(grep -m1 "^$part " "$work/kafka.log")
    [ -n "$line" ] && printf 'kafka %s\t%s\t%s\n' "$part" "$(grep -oP 'p50 \K[0-9.]+' <<< "$line")" \
      "$(grep -oP 'p99 \K[0-9.]+' <<< "$line")" >> "$work/latency.dat"
  done
fi

# ---- nexmark --------------------------------------------------------------------------
# Sizes per query: stateless and light queries run long, stateful ones short;
# a query this script does not know is treated as stateful.
nexmark_size() { # prints "events checkpoint_ms"
  case $1 in
    q0|q1|q2|q13|q14|q21|q22) if q; then echo "2000000 500"; else echo "20000000 500"; fi ;;
    q3|q8|q10|q20) if q; then echo "1000000 500"; else echo "5000000 500"; fi ;;
    *) if q; then echo "300000 2000"; else echo "5000000 2000"; fi ;;
  esac
}
# Flink's published figures (nexmark/nexmark README, "Nexmark Benchmark
# Result", commit 0c6d9cf): Throughput/Cores in K events/s.
flink_ref() {
  case $1 in
    q0) echo 155.02 ;; q1) echo 157.94 ;; q2) echo 175.21 ;; q3) echo 152.12 ;; q4) echo 34.33 ;;
    q5) echo 22.14 ;; q7) echo 12.33 ;; q8) echo 146.14 ;; q9) echo 14.24 ;; q10) echo 57.81 ;;
    q11) echo 39.7 ;; q12) echo 75.67 ;; q13) echo 130.73 ;; q14) echo 161.23 ;; q15) echo 72.42 ;;
    q16) echo 18.65 ;; q17) echo 116.8 ;; q18) echo 53.7 ;; q19) echo 44.04 ;; q20) echo 18.98 ;;
    q21) echo 98.49 ;; q22) echo 129.96 ;; *) echo "" ;;
  esac
}
if want nexmark; then
  # The help names them as "q0-q5|q7-q22": ranges are expanded.
  spec=$("$bin/spate-bench-nexmark" --help 2>&1 | grep -m1 -oP -- '--query \K[q0-9|-]+')
  queries=""
  for part in ${spec//|/ }; do
    if [[ $part =~ ^q([0-9]+)-q([0-9]+)$ ]]; then
      for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do queries+="q$i "; done
    else
      queries+="$part "
    fi
  done
  queries=${NEXMARK_QUERIES:-$queries}
  for qq in $queries; do
    read -r ev ck <<< "$(nexmark_size "$qq")"
    run "nexmark-$qq" "$bin/spate-bench-nexmark" --query "$qq" --events "$ev" --shards 2 --rate 100000 --checkpoint-interval "$ck"
  done
  if q; then lat_queries="q5"; lat_events=500000; else lat_queries="q0 q5 q7"; lat_events=2000000; fi
  for qq in $lat_queries; do
    run "nexmark-lat-$qq" "$bin/spate-bench-nexmark" --query "$qq" --events $lat_events --rate 100000 --real-time --watermark-lag 0 --checkpoint-interval 2000
  done
  { echo "### Nexmark (2 shards, event-time rate 100,000/s, memory backend, checkpoints on)"; echo
    echo "Commands: \`spate-bench-nexmark --query qN --events E --shards 2 --rate 100000 --checkpoint-interval MS\` (each row's E and MS; full lines below). *Per CPU-s* is events over the CPU time of the whole process (all threads), the figure comparable with Flink's Throughput/Cores."; echo
    echo "| query | events | ckpt ms | checkpoints | wall s | M events/s total | M events/s per core | **M events / CPU-s** | peak RSS MiB | load before | Flink K events/s per core |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for qq in $queries; do
      id=nexmark-$qq; read -r ev ck <<< "$(nexmark_size "$qq")"
      if ok $id; then
        tot=$(pick $id '[0-9.]+(?= M events/s total)')
        pc=$(pick $id '[0-9.]+(?= M events/s per core)')
        cpu=$(pick $id '[0-9.]+(?= M events per CPU-second)')
        need $id "$cpu"
        echo "| $qq | $ev | $ck | $(pick $id 'checkpoints: every \d+ ms, \K\d+') | $(pick $id 'time=\K[0-9.]+') | $tot | $pc | **$cpu** | $(pick $id 'max RSS\): \K[0-9.]+') | $(load_of $id) | $(flink_ref "$qq") |"
        printf '%s\t%s\t%s\t%s\n' "$qq" "${pc:-0}" "${cpu:-0}" "$(awk -v v="$(flink_ref "$qq")" 'BEGIN{print (v==""?0:v/1000)}')" >> "$work/nexmark.dat"
      else
        echo "| $qq | $ev | $ck | $(fail_cell $id) | | | | | | $(load_of $id) | $(flink_ref "$qq") |"
      fi
    done
    echo
    echo "Latency, throttled (\`--real-time --watermark-lag 0 --checkpoint-interval 2000\`, $lat_events events at 100,000 events/s on the wall clock): result emitted minus its event time (windows: minus window end)."; echo
    echo "| query | p50 ms | p99 ms | max ms | results sampled | load before |"
    echo "|---|---|---|---|---|---|"
    for qq in $lat_queries; do
      id=nexmark-lat-$qq
      if ok $id; then
        p50=$(pick $id 'ms: p50=\K[0-9.]+'); p99=$(pick $id 'ms: p50=[0-9.]+ p99=\K[0-9.]+'); need $id "$p50"
        echo "| $qq | $p50 | $p99 | $(pick $id ' max=\K[0-9.]+(?= \()') | $(pick $id '\(\K\d+(?= sampled)') | $(load_of $id) |"
        [ -n "$p50" ] && printf 'nexmark %s\t%s\t%s\n' "$qq" "$p50" "$p99" >> "$work/latency.dat"
      else echo "| $qq | $(fail_cell $id) | | | | $(load_of $id) |"; fi
    done; echo; } | sec
  for qq in $queries; do
    id=nexmark-$qq
    summary $id "nexmark $qq" "per CPU-second (process)" "$(pick $id '[0-9.]+(?= M events per CPU-second)')" "M events/s"
  done
  for qq in $lat_queries; do
    summary nexmark-lat-$qq "nexmark $qq latency" "p99, throttled to 100,000 events/s" "$(pick nexmark-lat-$qq 'ms: p50=[0-9.]+ p99=\K[0-9.]+')" "ms"
  done
fi

# ---- ysb ------------------------------------------------------------------------------
if want ysb; then
  if q; then
    run ysb-binary "$bin/spate-bench-ysb" --events=5000000 --rate=100000 -D execution.checkpointing.interval=500 -D "execution.checkpointing.dir=$work/ysb-ckpt"
    run ysb-binary-latency "$bin/spate-bench-ysb" --events=1500000 --throttle=100000
    run ysb-kafka "$bin/spate-bench-ysb" --variant=kafka --events=300000
    run ysb-kafka-latency "$bin/spate-bench-ysb" --variant=kafka --events=480000 --throttle=40000 --partitions=4
  else
    run ysb-binary "$bin/spate-bench-ysb" --events=50000000 --rate=100000 -D execution.checkpointing.interval=500 -D "execution.checkpointing.dir=$work/ysb-ckpt"
    run ysb-binary-latency "$bin/spate-bench-ysb" --events=25000000 --throttle=1000000
    run ysb-kafka "$bin/spate-bench-ysb" --variant=kafka --events=4000000
    run ysb-kafka-latency "$bin/spate-bench-ysb" --variant=kafka --events=1600000 --throttle=40000 --partitions=4
  fi
  { echo "### Yahoo Streaming Benchmark (2 shards)"; echo
    echo "Binary: events generated in memory. Kafka: JSON events (about 245 bytes) produced to the embedded broker by a thread of the same process while the job reads them (flow-controlled per partition), event time = wall clock at production, watermarks 1 s behind. Latency = window count at the sink minus window end (for Kafka it includes the 1 s out-of-orderness bound). The run's last windows, closed early by the end of input, are not counted."; echo
    echo "| variant | command | M events/s total | per core | M events / CPU-s | latency p50 / p99 / max ms | windows (with a latency) | load before |"
    echo "|---|---|---|---|---|---|---|---|"
    for id in ysb-binary ysb-binary-latency ysb-kafka ysb-kafka-latency; do
      cmd=$(grep -P "^$id\t" "$work/commands" | cut -f3); cmd=${cmd//"$work"/\$TMP}
      line=$(grep -m1 '^result: bench=ysb' "$work/$id.log")
      kv() { grep -oP " $1=\K[^ ]+" <<< "$line"; }
      if ok $id && [ -n "$line" ]; then
        lat="-"; w=$(kv windows)
        if [[ $id == *latency ]]; then
          lat="$(kv latency_p50_ms) / $(kv latency_p99_ms) / $(kv latency_max_ms)"
          w=$(kv latency_windows); w=${w:-$(kv windows)}
        fi
        echo "| ${id#ysb-} | \`$cmd\` | $(m "$(kv eps_total)") | $(m "$(kv eps_per_core)") | $(m "$(kv eps_per_cpu_s)") | $lat | $w | $(load_of $id) |"
        [[ $id == *latency ]] && printf 'ysb %s\t%s\t%s\n' "${id#ysb-}" "$(kv latency_p50_ms)" "$(kv latency_p99_ms)" >> "$work/latency.dat"
      else
        need $id "$line"
        echo "| ${id#ysb-} | \`$cmd\` | $(fail_cell $id) | | | | | $(load_of $id) |"
      fi
    done
    v=$(grep -m1 '^views:' "$work/ysb-kafka.log"); [ -n "$v" ] && { echo; echo "Kafka, max speed: $v."; }
    echo; } | sec
  for id in ysb-binary ysb-kafka; do
    e=$(grep -m1 '^result: bench=ysb' "$work/$id.log" | grep -oP ' eps_per_core=\K[0-9.]+')
    summary $id "ysb ${id#ysb-}" "max speed, per core" "$(m "$e")" "M events/s"
  done
  for id in ysb-binary-latency ysb-kafka-latency; do
    e=$(grep -m1 '^result: bench=ysb' "$work/$id.log" | grep -oP ' latency_p99_ms=\K[0-9.]+')
    summary $id "ysb ${id#ysb-}" "window latency p99, throttled" "$e" "ms"
  done
fi

# ---- plots ----------------------------------------------------------------------------
rel_img=$(realpath -m --relative-to="$(dirname "$(realpath -m "$out")")" "$img")
plots=
if [ -s "$work/nexmark.dat" ]; then
  gnuplot > "$work/gnuplot-nexmark.log" 2>&1 <<EOF
set terminal pngcairo size 1000,480 font ",10"
set output "$img/nexmark-throughput.png"
set title "Nexmark throughput ($mode run; shared 2-vCPU VM, load $(cut -d' ' -f1 /proc/loadavg))"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.005:*]
set ylabel "M events/s (log scale)"
set key outside top center horizontal
set grid ytics
plot "$work/nexmark.dat" using 2:xtic(1) title "Spate, per core (wall clock)", \
     "" using 3 title "Spate, per CPU-second", \
     "" using 4 title "Flink 1.13 published, per core"
EOF
  [ $? -eq 0 ] && plots="$plots nexmark-throughput" || { echo "report.sh: gnuplot failed (nexmark)" >&2; cat "$work/gnuplot-nexmark.log" >&2; echo 1 > "$work/gnuplot-nexmark.rc"; }
fi
if [ -s "$work/latency.dat" ]; then
  # Labels with spaces: tab-separated columns.
  gnuplot > "$work/gnuplot-latency.log" 2>&1 <<EOF
set terminal pngcairo size 1000,520 font ",10"
set output "$img/latency-percentiles.png"
set title "Latency percentiles ($mode run; shared 2-vCPU VM)"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.0001:*]
set ylabel "ms (log scale)"
set xtics rotate by -30
set grid ytics
set key outside top center horizontal
set bmargin 7
plot "$work/latency.dat" using (\$2 > 0 ? \$2 : 0.0001):xtic(1) title "p50", \
     "" using (\$3 > 0 ? \$3 : 0.0001) title "p99"
EOF
  [ $? -eq 0 ] && plots="$plots latency-percentiles" || { echo "report.sh: gnuplot failed (latency)" >&2; cat "$work/gnuplot-latency.log" >&2; echo 1 > "$work/gnuplot-latency.rc"; }
fi

# ---- the region -----------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem_mib=$(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)
cache=$build/CMakeCache.txt
cvar() { grep -m1 "^$1:" "$cache" 2>/dev/null | cut -d= -f2-; }
btype=$(cvar CMAKE_BUILD_TYPE)
btype_uc=$(tr '[:lower:]' '[:upper:]' <<< "$btype")
cc=$(cvar CMAKE_C_COMPILER)
# The flags a benchmark was compiled with (compile_commands.json: the
# project's flags too), less includes, output and input; else CMakeCache.
cflags=$(grep -m1 -oP '"command": "\K[^"]*bench/ysb\.c(?=")' "$build/compile_commands.json" 2>/dev/null |
  tr -s ' ' '\n' | sed '1d' | grep -v -e '^-I' -e '^-o$' -e '^-c$' -e '\.o$' -e '\.c$' | tr '\n' ' ' | sed 's/ *$//')
cflags_from="compile_commands.json, bench/ysb.c"
if [ -z "$cflags" ]; then
  cflags=$(echo "$(cvar CMAKE_C_FLAGS) $(cvar "CMAKE_C_FLAGS_$btype_uc")" | sed 's/^ *//')
  cflags_from="CMakeCache.txt; the project adds its warnings"
fi
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)
# Uncommitted changes, not counting what this script writes itself.
excludes=()
for p in "$out" "$img"; do
  p=$(realpath -m --relative-to="$root" "$p")
  [[ $p == ..* ]] || excludes+=(":(exclude)$p")
done
dirty=$(git -C "$root" status --porcelain --untracked-files=no -- . "${excludes[@]}" 2>/dev/null |
  grep -q . && echo " plus uncommitted changes")
elapsed=$(( $(date +%s) - t_start ))
failed=$(cat "$work"/*.rc 2>/dev/null | grep -cv '^0$')
region=$work/region.md
{
  echo "<!-- report:begin -->"
  echo "## Generated report"
  echo
  echo "Written by \`bench/report.sh$(q && echo ' --quick')\` (do not edit between the markers; rerun the script). $(date -u '+%Y-%m-%d %H:%M') UTC, commit $commit$dirty, $mode mode, $((elapsed / 60)) min $((elapsed % 60)) s."
  echo
  echo "**Machine:** $cpu_model, $(nproc) online CPUs, $mem_mib MiB, Linux $(uname -r). Load average (1/5/15 min) at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg). The machine is shared with other engineers' builds and tests: each row gives the 1-minute load before its run; read single runs to ±25 % or worse."
  echo
  echo "**Build:** \`$(realpath -m --relative-to="$root" "$build")\`, CMAKE_BUILD_TYPE=$btype, $($cc --version 2>/dev/null | head -1), C flags \`$cflags\` ($cflags_from)."
  echo
  echo "### Summary"
  echo
  echo "| benchmark | what | figure | load before | run time |"
  echo "|---|---|---|---|---|"
  cat "$work/summary.md" 2>/dev/null
  echo
  [ "$failed" -gt 0 ] && { echo "**$failed run(s) FAILED** (see the rows marked FAILED)."; echo; }
  cat "$work/sections.md" 2>/dev/null
  if want nexmark; then
    echo "### Reference: Flink's published Nexmark figures"
    echo
    echo "From the nexmark/nexmark README (\"Nexmark Benchmark Result\", github.com/nexmark/nexmark, commit 0c6d9cf): Flink 1.13 on 3 worker machines of 8 cores and 32 GB with SSDs, 8 TaskManagers of 1 slot, parallelism 8, RocksDB with incremental checkpoints every 3 min, exactly-once, mini-batch on; 100 M events at an event-time rate of 10 M/s. Throughput/Cores = events / (cores used x time), comparable with Spate's *M events / CPU-s* column (Spate's rate is 100,000/s, Nexmark V2's density; Flink's V1 rate puts 100x more events in each window)."
    echo
    echo "| query | Flink cores used | time s | K events/s per core |"
    echo "|---|---|---|---|"
    echo "| q0 | 8.45 | 76.3 | 155.02 |"
    echo "| q1 | 8.26 | 76.6 | 157.94 |"
    echo "| q2 | 8.23 | 69.3 | 175.21 |"
    echo "| q3 | 8.59 | 76.5 | 152.12 |"
    echo "| q4 | 12.85 | 226.6 | 34.33 |"
    echo "| q5 | 10.8 | 418.2 | 22.14 |"
    echo "| q7 | 14.21 | 571.0 | 12.33 |"
    echo "| q8 | 9.42 | 72.7 | 146.14 |"
    echo "| q9 | 16.11 | 435.9 | 14.24 |"
    echo "| q11 | 10.6 | 237.6 | 39.7 |"
    echo "| q13 | 8.24 | 92.8 | 130.73 |"
    echo "| q14 | 8.28 | 74.9 | 161.23 |"
    echo "| q21 | 8.33 | 121.8 | 98.49 |"
    echo "| q22 | 8.25 | 93.2 | 129.96 |"
    echo
  fi
  if [ -n "$plots" ]; then
    echo "### Plots"
    echo
    for p in $plots; do echo "![$p]($rel_img/$p.png)"; echo; done
  fi
  echo "### Commands, in the order run"
  echo
  echo "Load = 1-minute load average before the run."
  echo
  echo '```'
  while IFS=$'\t' read -r id load cmd; do
    printf '# %s (load %s, exit %s)\n%s\n' "$id" "$load" "$(cat "$work/$id.rc")" "${cmd//"$work"/\$TMP}"
  done < "$work/commands"
  echo '```'
  echo "<!-- report:end -->"
} > "$region"

# Replace the region in $out (or insert it before the first "## " heading).
if [ -f "$out" ] && grep -q '^<!-- report:begin -->$' "$out" && grep -q '^<!-- report:end -->$' "$out"; then
  awk -v r="$region" '
    /^<!-- report:begin -->$/ { while ((getline l < r) > 0) print l; skip = 1; next }
    /^<!-- report:end -->$/ { skip = 0; next }
    !skip { print }' "$out" > "$work/out.md"
elif [ -f "$out" ]; then
  awk -v r="$region" '
    !done && /^## / { while ((getline l < r) > 0) print l; print ""; done = 1 }
    { print }
    END { if (!done) { print ""; while ((getline l < r) > 0) print l } }' "$out" > "$work/out.md"
else
  cp "$region" "$work/out.md"
fi
cp "$work/out.md" "$out" || exit 2
echo "report.sh: wrote $out and$( [ -n "$plots" ] && printf ' %s.png' $plots || echo ' no plots') in $img ($((elapsed / 60)) min $((elapsed % 60)) s, $failed failed)" >&2
[ "$failed" -eq 0 ]
