# Sourced by the benchmarks: `bench_workdir NAME` makes a scratch directory $WORK under /tmp
# and, on exit, stops the local cluster whose `cluster up` pid the script put in $UP (Ctrl-C, as
# a user would) and deletes $WORK.

bench_workdir() { # NAME
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  UP=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "$UP" ]; then kill -INT "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
