#!/usr/bin/env bash
# Writes during planned leadership moves: a 3-node local cluster, writers entering through every
# node (so most writes are forwarded to their partition's leader), and `members step-down` of two
# boards while they write. Prints how many writes failed and the tail latency. A write the old
# leader refuses during a hand-over is proposed again, so the expected number of failures is 0.
#
#   test/bench/step-down-writes.sh
#   CONCURRENCY=32 DURATION=20 test/bench/step-down-writes.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-12}
CLI="node dist/agent/src/cli/main.js"
[ -f dist/agent/src/cli/main.js ] || make build >/dev/null

# shellcheck source=test/bench/bench-workdir.sh
source test/bench/bench-workdir.sh
bench_workdir step-down

$CLI cluster up --nodes 3 --dir "$WORK/rl" --json >"$WORK/up.json" 2>"$WORK/up.log" &
UP=$!
for _ in $(seq 1 150); do [ -s "$WORK/up.json" ] && break; sleep 0.2; done
CF="$WORK/rl/cluster.json"
$CLI health --wait 120 --cluster-file "$CF" >/dev/null

echo "writing with $CONCURRENCY writers for $DURATION s; n1 steps down after 3 s, n2 after 6 s" >&2
$CLI bench --cluster-file "$CF" --no-route --mix put=1 --concurrency "$CONCURRENCY" \
  --duration "$DURATION" --warmup 0 --keys 1000 --json >"$WORK/bench.json" 2>/dev/null &
BENCH=$!
sleep 3
$CLI members step-down n1 --cluster-file "$CF" >&2
sleep 3
$CLI members step-down n2 --cluster-file "$CF" >&2
wait "$BENCH"
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const o = r.ops.put, ms = (us) => (us / 1000).toFixed(1);
  console.log(`puts ${o.count}  failed ${r.totalErrors}  p99 ${ms(o.latencyUs.p99)} ms  p99.9 ${ms(o.latencyUs.p999)} ms  max ${ms(o.latencyUs.max ?? 0)} ms`);
' "$WORK/bench.json"
