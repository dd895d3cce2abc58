#!/usr/bin/env bash
# What an idle cluster costs: a 3-node local cluster, left alone once its partition leaders have
# settled, and the CPU each agent uses per second of doing nothing (heartbeats, ticks, the
# controller's rounds, board health), with its RSS. On a Pi Zero 2 W this is the floor a board
# pays before it serves anything.
#
#   test/bench/idle-cpu.sh                   # 64 partitions, 30 s
#   PARTITIONS=16 SECONDS_IDLE=60 test/bench/idle-cpu.sh
#   UP_ARGS=--spread-leaders test/bench/idle-cpu.sh   # leaders spread, as over separate boards
set -euo pipefail
cd "$(dirname "$0")/../.."
PARTITIONS=${PARTITIONS:-64}
SECONDS_IDLE=${SECONDS_IDLE:-30}
CLI="node dist/agent/src/cli/main.js"
[ -f dist/agent/src/cli/main.js ] || make build >/dev/null
# shellcheck source=test/bench/leaders-settled.sh
source test/bench/leaders-settled.sh

# shellcheck source=test/bench/bench-workdir.sh
source test/bench/bench-workdir.sh
bench_workdir idle-cpu

# shellcheck disable=SC2086 # UP_ARGS is a word list
$CLI cluster up --nodes 3 --dir "$WORK/c" --partitions "$PARTITIONS" ${UP_ARGS:-} --json >"$WORK/up.json" 2>"$WORK/up.log" &
UP=$!
bench_cluster_ready "$WORK/c"
wait_leaders_settled "$WORK/c/cluster.json"
mapfile -t PIDS < <(cluster_pids "$WORK/c/cluster.json")
TICK_MS=$((1000 / $(getconf CLK_TCK)))
before=()
for p in "${PIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
echo "idle for ${SECONDS_IDLE} s ..." >&2
sleep "$SECONDS_IDLE"
printf "node\tcpu-ms/s\trss-MB\n"
total=0
for i in "${!PIDS[@]}"; do
  p=${PIDS[$i]}
  used=$(( ($(cpu_ticks "$p") - before[i]) * TICK_MS ))
  total=$((total + used))
  printf "n%d\t%s\t%s\n" $((i + 1)) "$(awk -v u="$used" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.1f", u / s }')" \
    "$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$p/status")"
done
echo "# mean idle CPU per agent: $(awk -v u="$total" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.1f", u / s / 3 }') ms/s, ${PARTITIONS} partitions"
