/**
 * What rebalancing costs: a 3-node cluster is loaded with DATA_MB of values (1 KiB each, keys
 * spread over all partitions), then a 4th board joins. Prints the time until every partition
 * reached the new placement and the bytes the new board received (its transport counter).
 *
 *   node dist/test/bench/rebalance-bench.js [DATA_MB=100]
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { LocalCluster, CLI } from "../support/local-cluster.js";

const dataMb = Number(process.argv[2] ?? 100);
const VALUE = 1024;

interface Status {
  partitions: { partition: number; role: string; voters: string[]; learners: string[] }[];
}

async function leaders(c: LocalCluster, ids: string[]): Promise<Map<number, Status["partitions"][number]>> {
  const out = new Map<number, Status["partitions"][number]>();
  for (const id of ids) {
    const res = await fetch(`${c.nodes.get(id)!.api}/v1/status`, {
      headers: { authorization: `Bearer ${c.token}` },
    }).catch(() => null);
    if (!res?.ok) continue;
    for (const p of ((await res.json()) as Status).partitions)
      if (p.role === "leader") out.set(p.partition, p);
  }
  return out;
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} ([0-9.e+]+)`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

const cluster = await LocalCluster.start({ nodes: 3, tickMs: 100 });
try {
  const ops = Math.round((dataMb * 1024 * 1024) / VALUE);
  process.stderr.write(`loading ${ops} values of ${VALUE} B (${dataMb} MB)...\n`);
  const t0 = performance.now();
  const bench = spawn(
    process.execPath,
    [
      CLI,
      "bench",
      "--cluster-file",
      `${cluster.dir}/cluster.json`,
      "--ops",
      String(ops),
      "--keys",
      String(ops),
      "--value-size",
      String(VALUE),
      "--concurrency",
      "64",
      "--warmup",
      "0",
      "--json",
      "--key-prefix",
      "load/",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  bench.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  await once(bench, "exit");
  const loaded = JSON.parse(out) as { opsPerSecond: number; totalErrors: number };
  process.stdout.write(
    `load: ${Math.round(loaded.opsPerSecond)} puts/s, ${loaded.totalErrors} errors, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );

  const joinedAt = performance.now();
  const n4 = await cluster.join("n4", "n1", { tickMs: 100 });
  const all = ["n1", "n2", "n3", "n4"];
  await cluster.waitFor("n4 to take its share", 1_800_000, async () => {
    const l = await leaders(cluster, all);
    if (l.size !== 64) return null;
    const onN4 = [...l.values()].filter((p) => p.voters.includes("n4")).length;
    return onN4 >= 40 && [...l.values()].every((p) => p.learners.length === 0 && p.voters.length === 3)
      ? true
      : null;
  });
  const seconds = (performance.now() - joinedAt) / 1000;
  const received = await metric(n4.api, "ringleader_transport_bytes_received");
  process.stdout.write(
    `rebalance: ${seconds.toFixed(1)} s until the 4th board held its share; it received ${(received / 1e6).toFixed(1)} MB ` +
      `(${(received / 1e6 / seconds).toFixed(1)} MB/s) for ${dataMb} MB of data on 3 boards\n`,
  );
} finally {
  await cluster.stop();
}
