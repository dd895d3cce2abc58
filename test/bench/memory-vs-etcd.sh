#!/usr/bin/env bash
# Memory over a long run, Ringleader against etcd: a 3-node cluster of each on 127.0.0.1 (as in
# vs-etcd.sh), one after the other, each under DURATION seconds of puts at CONCURRENCY (100-byte
# values over KEYS keys, so the same keys are written again and again, as sensors do). Every
# SAMPLE seconds it prints each node's RSS (anonymous/file-backed) and the size of its data
# directory; at the end each target's puts/s, p99, peak RSS per node and data size.
#
#   test/bench/memory-vs-etcd.sh                     # 600 s per target (about 21 minutes)
#   DURATION=180 SAMPLE=15 test/bench/memory-vs-etcd.sh
#   ETCD_ARGS=--auto-compaction-retention=1m test/bench/memory-vs-etcd.sh   # etcd compacting its history
#   TARGETS=ringleader DURATION=3600 test/bench/memory-vs-etcd.sh
#
# vs-etcd.sh measures 10 s steps on fresh clusters, a few minutes of load in all (at c=64 alone,
# under one, the two peak alike). A home lab runs for months, and what a node holds after hours
# of writes is what a Pi has to fit. etcd keeps every revision of every key (in memory, its
# index; on disk, bbolt, which it maps) until it is compacted, which Debian's etcd-server does not
# do by default, and up to --snapshot-count (100,000) Raft entries in memory between snapshots.
# An agent keeps one version of each key in LMDB and compacts its Raft logs below each snapshot
# (--snapshot-entries).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-30}
CONCURRENCY=${CONCURRENCY:-64}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-10000}
TARGETS=${TARGETS:-"ringleader etcd"}
PARTITIONS=${PARTITIONS:-64}
CLI="node dist/agent/src/cli/main.js"

# shellcheck source=test/bench/leaders-settled.sh
source test/bench/leaders-settled.sh
# shellcheck source=test/bench/bench-workdir.sh
source test/bench/bench-workdir.sh
# shellcheck source=test/bench/vs-etcd-clusters.sh
source test/bench/vs-etcd-clusters.sh
if [[ " $TARGETS " == *" etcd "* ]]; then need_etcd; fi
[ -f dist/agent/src/cli/main.js ] || make build >/dev/null

WORK=$(mktemp -d /tmp/memory-vs-etcd.XXXXXX)
PIDS=()
cleanup() {
  stop_servers
  rm -rf "$WORK"
}
trap cleanup EXIT

data_mb() { for d in "$@"; do du -sm "$d" 2>/dev/null | awk '{printf "%d ", $1}'; done; }

echo "# ${DURATION} s of puts per target, concurrency ${CONCURRENCY}, ${VALUE_SIZE}-byte values over ${KEYS} keys${ETCD_ARGS:+; etcd ${ETCD_ARGS}}"
SUMMARY=()
for target in $TARGETS; do
  "start_$target"
  echo "# $target: seconds, then per node RSS MB (anonymous/file), data directory MB"
  out="$WORK/$target.json"
  $CLI bench "${BENCH_ARGS[@]}" --mix put=1 --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 0 \
    --value-size "$VALUE_SIZE" --keys "$KEYS" --json >"$out" 2>"$WORK/bench.log" &
  bench=$!
  start=$SECONDS
  next=$SAMPLE
  while kill -0 "$bench" 2>/dev/null; do
    # Sample on the clock (not after a fixed sleep) so that the lines stay SAMPLE s apart however
    # long `du` takes on a large data directory.
    if ((SECONDS - start >= next)); then
      echo "$target	$next	rss $(rss_mb "${NODE_PIDS[@]}")	anon/file $(rss_split_mb "${NODE_PIDS[@]}")	data $(data_mb "${DATA_DIRS[@]}")"
      next=$((next + SAMPLE))
    fi
    sleep 1
  done
  wait "$bench" || { echo "the bench against $target failed:" >&2; cat "$WORK/bench.log" >&2; exit 1; }
  puts=$(node -e '
    const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).ops.put;
    console.log(`${Math.round(o.opsPerSecond)} puts/s, p99 ${(o.latencyUs.p99 / 1000).toFixed(1)} ms, ${o.count} puts`);
  ' "$out")
  SUMMARY+=("$target: $puts; peak RSS per node MB: $(peak_rss_mb "${NODE_PIDS[@]}"); data MB: $(data_mb "${DATA_DIRS[@]}")")
  stop_servers
done
printf "%s\n" "${SUMMARY[@]}"
