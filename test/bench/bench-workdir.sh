# Sourced by the benchmarks: a scratch directory, the local cluster started in it, and what its
# agents use.
#
# `bench_workdir NAME` makes a scratch directory $WORK under /tmp and, on exit, stops the local
# cluster whose `cluster up` pid the script put in $UP (Ctrl-C, as a user would) and deletes $WORK.

bench_workdir() { # NAME
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  UP=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "$UP" ]; then kill -INT "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

# Waits (up to 60 s) for `cluster up --dir DIR`, its stderr in $WORK/up.log, to write
# DIR/cluster.json; if it does not, prints that log and exits.
bench_cluster_ready() { # DIR
  for _ in $(seq 1 300); do [ -s "$1/cluster.json" ] && break; sleep 0.2; done
  [ -s "$1/cluster.json" ] || { echo "the cluster did not start; see its log:" >&2; cat "$WORK/up.log" >&2; exit 1; }
}

# A field (id, pid, api) of each node in a cluster.json, one per line.
cluster_node_field() { # CLUSTER_JSON FIELD
  node -e 'for (const n of JSON.parse(require("fs").readFileSync(process.argv[1])).nodes) console.log(n[process.argv[2]])' "$1" "$2"
}

# The agents' pids in a cluster.json, one per line.
cluster_pids() { cluster_node_field "$1" pid; }

# CPU time (user + system, in clock ticks) summed over processes.
cpu_ticks() { # PID...
  local t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
