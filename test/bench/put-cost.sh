#!/usr/bin/env bash
# Where a put's cost goes: a 3-node cluster on 127.0.0.1, a warm-up run, then a measured run of
# puts, and per put (summed over the three agents): CPU, bytes the disk took (disk-bytes.sh), LMDB
# commits, write jobs and operations, Raft messages and frames, read from /proc and from each
# agent's /metrics.
#
#   test/bench/put-cost.sh                       # 64 partitions, concurrency 64
#   PARTITIONS=1 CONCURRENCY=1 test/bench/put-cost.sh
#   KEYS=100 test/bench/put-cost.sh              # puts over 100 keys instead of 10,000
#   PERF=1 test/bench/put-cost.sh                # also a perf profile of the agents by category
#   PERF=1 PERF_NODES=n2,n3 test/bench/put-cost.sh   # the profile of those agents only
#   ALLOC=1 test/bench/put-cost.sh               # also what the first agent allocates, by function
#   UP_ARGS="--snapshot-entries 10000" NODE_FLAGS="--max-semi-space-size=32" test/bench/put-cost.sh
#
# The profile (PERF=1, needs Debian's linux-perf) samples every CPU for PERF_SECONDS in the middle
# of the measured run and charges each sample of an agent to the innermost JavaScript frame's part
# of the code, or, in native code, to what the thread does (the LMDB write thread, garbage
# collection, the JIT compiler, the event loop's poll); then it lists the JavaScript functions
# that cost most, and how much ran in code V8 had not optimised yet. The agents write V8's jitdump
# (--perf-prof) and `perf inject --jit` names each sample after the code that was at its address
# at that moment: a plain perf map (--perf-basic-prof) names code that V8 freed after whatever
# later took its place, and once put 47 us/put on a function no put calls. V8's own
# --cpu-prof samples wall time, not CPU: it charges lmdb-js's startWriting with 11-13 % where perf
# finds 1 % (the main thread loses its core to the LMDB writer thread it has just woken).
#
# ALLOC=1 runs V8's sampling heap profiler on the first agent over the same window, counting
# objects the garbage collector already freed, so it shows what drives the scavenges. Taken with
# PERF=1, each perturbs the other.
set -euo pipefail
cd "$(dirname "$0")/../.."
PARTITIONS=${PARTITIONS:-64}
CONCURRENCY=${CONCURRENCY:-64}
# The agents' JIT settles after ~20 s of load: V8's compiler threads took 9 % of their CPU 8-13 s
# into a c=64 run, 4 % at 14-19 s and under 1 % after (perf, session 15).
WARMUP=${WARMUP:-20}
DURATION=${DURATION:-10}
PERF_SECONDS=${PERF_SECONDS:-6}
CLI="node dist/agent/src/cli/main.js"
[ -f dist/test/bench/put-cost.js ] || make build >/dev/null
# shellcheck source=test/bench/leaders-settled.sh
source test/bench/leaders-settled.sh

# shellcheck source=test/bench/bench-workdir.sh
source test/bench/bench-workdir.sh
bench_workdir put-cost

perf_flags=()
if [ "${PERF:-0}" = 1 ]; then
  command -v perf >/dev/null || { echo "PERF=1 needs perf (apt-get install linux-perf)" >&2; exit 2; }
  # Interpreted and baseline frames get code of their own too, so that they are named.
  perf_flags=(--perf-prof --interpreted-frames-native-stack)
fi
# shellcheck disable=SC2086 # NODE_FLAGS and UP_ARGS are word lists
# From $WORK: processes write their jitdump files where they run (the agents run in $WORK/c).
ROOT=$(pwd)
(cd "$WORK" && exec node "${perf_flags[@]}" ${NODE_FLAGS:-} "$ROOT/dist/agent/src/cli/main.js" cluster up \
  --nodes 3 --dir "$WORK/c" --partitions "$PARTITIONS" ${UP_ARGS:-} --json >"$WORK/up.json" 2>"$WORK/up.log") &
UP=$!
bench_cluster_ready "$WORK/c"
wait_leaders_settled "$WORK/c/cluster.json"

# Every agent's counters, and the device's, as JSON (put-cost.js snapshot).
cat >"$WORK/snapshot.sh" <<'EOF'
source test/bench/disk-bytes.sh
node dist/test/bench/put-cost.js snapshot "$1/c/cluster.json" "$(device_written_bytes "$1")"
EOF
# The warm-up runs in the bench's own process (the generator is JIT-compiled too), which takes
# the first snapshot between it and the measured run, with nothing in flight.
bench() { # → json
  $CLI bench --target ringleader --cluster-file "$WORK/c/cluster.json" --mix put=1 \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --value-size 100 --keys "${KEYS:-10000}" \
    --on-measure "bash $WORK/snapshot.sh $WORK >$WORK/before.json" --json 2>/dev/null
}
# A first scrape of /metrics, before the load. An agent's first /metrics answer under load undoes
# some of V8's optimised code for the hot path (prom-client and the write path share functions),
# and V8 compiles it again: perf found 11-12 % of the agents' CPU in the JIT compiler in the 5 s
# after the first scrape, against 1-3 % before it and after a second one. The snapshot between
# warm-up and measured run was that first scrape, so it charged that burst to the measured puts.
bash "$WORK/snapshot.sh" "$WORK" >/dev/null
echo "warming up for ${WARMUP} s (V8 compiles the hot path in the first seconds of load) ..." >&2
if [ "${PERF:-0}" = 1 ] || [ "${ALLOC:-0}" = 1 ]; then
  bench >"$WORK/bench.json" &
  BENCH=$!
  sleep $((WARMUP + (DURATION - PERF_SECONDS) / 2))
  if [ "${ALLOC:-0}" = 1 ]; then
    node --experimental-websocket --no-warnings dist/test/bench/put-cost.js allocations "$WORK/c/cluster.json" \
      "$PERF_SECONDS" >"$WORK/alloc.txt" &
    ALLOC_PID=$!
  fi
  if [ "${PERF:-0}" = 1 ]; then
    # The jitdump's timestamps are CLOCK_MONOTONIC; perf's must be the same clock (-k mono).
    perf record -k mono -e cpu-clock -F 999 -a -g -o "$WORK/perf.data" -- sleep "$PERF_SECONDS" 2>/dev/null
  fi
  if [ "${ALLOC:-0}" = 1 ]; then wait "$ALLOC_PID"; fi
  wait "$BENCH"
else
  bench >"$WORK/bench.json"
fi
bash "$WORK/snapshot.sh" "$WORK" >"$WORK/after.json"
node dist/test/bench/put-cost.js report "$WORK/bench.json" "$WORK/before.json" "$WORK/after.json"
# What each agent holds at the end: its peak RSS, and its LMDB file, whose pages count in that RSS
# once read (LMDB maps the file, and never shrinks it).
node -e 'for (const n of require(process.argv[1]).nodes) console.log(n.id, n.pid)' "$WORK/c/cluster.json" |
  while read -r id pid; do
    printf "%s: peak RSS %d MB, LMDB file %d MB\n" "$id" \
      "$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")" \
      "$(($(stat -c %s "$WORK/c/$id/data.mdb") / 1048576))"
  done
if [ "${PERF:-0}" = 1 ]; then
  perf inject --jit -i "$WORK/perf.data" -o "$WORK/perf.jit.data"
  perf script -i "$WORK/perf.jit.data" -F pid,tid,ip,sym 2>/dev/null |
    node dist/test/bench/put-cost.js profile "$WORK/c/cluster.json" "$WORK/bench.json" "$PERF_SECONDS"
fi
if [ "${ALLOC:-0}" = 1 ]; then cat "$WORK/alloc.txt"; fi
