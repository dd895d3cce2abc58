# Sourced by the benchmarks: waits until a new local cluster's partition leaders have settled.
#
# A new cluster spends its first seconds electing and then handing partition leaders to the nodes
# that should lead them; measured in that window, puts/s came out 8-15 % lower.
# `wait_leaders_settled` waits until every partition is healthy and each node's count of led
# partitions has held still for 7 s: longer than the 5 s a new leader holds a partition before
# its balancer hands it to the preferred node. It prints the counts to stderr.

wait_leaders_settled() { # CLUSTER_JSON
  node dist/agent/src/cli/main.js health --wait 120 --cluster-file "$1" >/dev/null
  node -e '
    const { token, nodes } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const counts = () => Promise.all(nodes.map((n) =>
      fetch(`${n.api}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
        .then((r) => r.json()).then((s) => s.leaderOf ?? 0, () => -1)));
    (async () => {
      let last = "", still = 0;
      for (let i = 0; i < 120 && still < 7; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const now = (await counts()).join(",");
        still = now === last ? still + 1 : 0;
        last = now;
      }
      process.stderr.write(`partitions led per node: ${last}\n`);
    })();
  ' "$1"
}
