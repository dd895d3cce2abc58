# Sourced by vs-etcd.sh and memory-vs-etcd.sh: the two 3-node clusters they compare on 127.0.0.1,
# how they start and stop, and what they read of the servers' memory. The caller sets $WORK
# (scratch directory), $CLI, $PARTITIONS and an array PIDS, and sources leaders-settled.sh and
# bench-workdir.sh; `start_<target>` sets NODE_PIDS (the three servers), DATA_DIRS (their data
# directories) and BENCH_ARGS (how `ringleader bench` reaches them), and `stop_servers` stops
# them. ETCD_ARGS adds flags to every etcd (for example --auto-compaction-retention=1m); by
# default etcd runs as Debian ships it.

# Installs Debian's etcd-server (3.4) unless etcd is there.
need_etcd() {
  command -v etcd >/dev/null && return 0
  echo "installing etcd-server (Debian) ..." >&2
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >/dev/null
}

# Stops the servers and what started them (`cluster up` stops its agents on SIGTERM), and waits.
stop_servers() {
  for p in "${NODE_PIDS[@]:-}" "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  NODE_PIDS=()
}

# A field of /proc/PID/status in MB for each PID: VmRSS (now), VmHWM (peak).
status_mb() { # FIELD PID...
  local field=$1
  shift
  for p in "$@"; do awk -v f="$field:" '$1 == f {printf "%d ", $2 / 1024}' "/proc/$p/status"; done
}
peak_rss_mb() { status_mb VmHWM "$@"; }
rss_mb() { status_mb VmRSS "$@"; }
# RSS now, split: anonymous (heap, buffers) / file-backed (the program's own binary and mapped
# database pages, which the kernel can drop and read back).
rss_split_mb() {
  for p in "$@"; do awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "%d/%d ", a / 1024, f / 1024}' /proc/$p/status; done
}

start_etcd() {
  local cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
  ETCD_PIDS=()
  rm -rf "$WORK/etcd"
  # shellcheck disable=SC2086 # ETCD_ARGS is a word list
  for i in 1 2 3; do
    etcd --name e$i --data-dir "$WORK/etcd/e$i" \
      --listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
      --listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token vs-etcd \
      --log-level error ${ETCD_ARGS:-} >"$WORK/etcd-e$i.log" 2>&1 &
    ETCD_PIDS+=($!)
    PIDS+=($!)
  done
  ENDPOINTS="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
  for _ in $(seq 1 100); do
    curl -sf -X POST -d '{"key":"aGVhbHRo"}' http://127.0.0.1:23791/v3/kv/range >/dev/null 2>&1 && break
    sleep 0.2
  done
  NODE_PIDS=("${ETCD_PIDS[@]}")
  DATA_DIRS=("$WORK/etcd/e1" "$WORK/etcd/e2" "$WORK/etcd/e3")
  BENCH_ARGS=(--target etcd --endpoints "$ENDPOINTS")
}

start_ringleader() {
  rm -rf "$WORK/rl"
  # By default one node leads every partition, as `cluster up` does: its agents share this
  # machine's cores. LEADERS=spread spreads the leaders as over three separate boards
  # (`--spread-leaders`), which on one machine costs ~30 % more CPU per put (session 16).
  local spread=()
  if [ "${LEADERS:-}" = spread ]; then spread=(--spread-leaders); fi
  $CLI cluster up --nodes 3 --dir "$WORK/rl" --partitions "$PARTITIONS" "${spread[@]}" --json >"$WORK/rl.json" 2>"$WORK/rl.log" &
  PIDS+=($!)
  for _ in $(seq 1 150); do [ -s "$WORK/rl.json" ] && break; sleep 0.2; done
  [ -s "$WORK/rl.json" ] || { echo "ringleader cluster did not start:" >&2; tail "$WORK/rl.log" >&2; exit 1; }
  mapfile -t NODE_PIDS < <(cluster_pids "$WORK/rl/cluster.json")
  mapfile -t DATA_DIRS < <(cluster_node_field "$WORK/rl/cluster.json" id)
  DATA_DIRS=("${DATA_DIRS[@]/#/$WORK/rl/}")
  BENCH_ARGS=(--target ringleader --cluster-file "$WORK/rl/cluster.json")
  wait_leaders_settled "$WORK/rl/cluster.json"
  # The bench sends each key to its partition leader, as the client does; ROUTE=0 spreads
  # requests over the nodes instead and lets the agents forward them.
  if [ "${ROUTE:-1}" = 0 ]; then BENCH_ARGS+=(--no-route); fi
}

