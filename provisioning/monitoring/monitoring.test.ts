/**
 * The monitoring kit: the Grafana dashboard imports cleanly (the structure Grafana's importer
 * needs, a datasource input, panels on a 24-column grid that do not overlap) and asks only for
 * metrics the agent and the bridge really export; the Prometheus config reads its targets from
 * a file with the bearer token; the targets playbook writes that file from an inventory.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { BridgeMetrics } from "../../firmware-bridge/src/metrics.js";
import { BridgeMetricsProxy } from "../../agent/src/health/bridge-metrics.js";
import { registerGroupSnapshotMetrics, registerHealthMetrics } from "../../agent/src/health/metrics.js";
import { HealthMonitor } from "../../agent/src/health/monitor.js";
import { AgentMetrics } from "../../agent/src/node/metrics.js";

const exec = promisify(execFile);
// Compiled to dist/provisioning/monitoring/: the sources are three levels up.
const HERE = fileURLToPath(new URL("../../../provisioning/monitoring/", import.meta.url));

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
}

/** Every series name the agent (with board health and the bridge proxy) and the bridge export. */
async function exportedNames(): Promise<Set<string>> {
  const agent = new AgentMetrics(
    "n1",
    () => [],
    () => null,
  );
  const monitor = new HealthMonitor({
    nodeId: "n1",
    sampler: { sample: async () => Promise.reject(new Error("not sampled in this test")) },
    token: "t",
    members: () => [],
    leads: () => [],
    placement: () => null,
  });
  registerHealthMetrics(agent.registry, monitor);
  registerGroupSnapshotMetrics(agent.registry, () => new Map());
  new BridgeMetricsProxy("http://127.0.0.1:9/metrics", "n1", agent.registry);
  const bridge = new BridgeMetrics({
    outboxDepth: () => 0,
    outboxBytes: () => 0,
    devices: () => 0,
    decoderStats: () => ({
      framesOk: 0,
      badCrc: 0,
      oversized: 0,
      malformed: 0,
      resyncs: 0,
      bytesIn: 0,
      bytesDropped: 0,
    }),
  });
  const names = new Set<string>(["up"]);
  for (const reg of [agent.registry, bridge.registry] as Registry[]) {
    for (const m of await reg.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === "histogram")
        for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
    }
  }
  return names;
}

describe("monitoring kit", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rl-monitoring-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the Grafana dashboard has the structure the importer needs", async () => {
    const d = JSON.parse(await readFile(join(HERE, "grafana/ringleader-dashboard.json"), "utf8")) as {
      __inputs: { name: string; type: string; pluginId: string }[];
      uid: string;
      title: string;
      schemaVersion: number;
      panels: Panel[];
      templating: { list: { name: string; datasource: { uid: string } }[] };
      time: { from: string; to: string };
    };
    assert.deepEqual(
      d.__inputs.map((i) => [i.name, i.type, i.pluginId]),
      [["DS_PROMETHEUS", "datasource", "prometheus"]],
    );
    assert.match(d.uid, /^[a-z0-9-]{1,40}$/);
    assert.ok(d.title.length > 0 && d.schemaVersion >= 36);
    assert.equal(d.templating.list[0]?.name, "node");
    assert.equal(d.templating.list[0]?.datasource.uid, "${DS_PROMETHEUS}");
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    const cells = new Set<string>();
    for (const p of d.panels) {
      const g = p.gridPos;
      assert.ok(
        g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0,
        `${p.title}: gridPos ${JSON.stringify(g)}`,
      );
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      if (p.type === "row") continue;
      assert.ok(["timeseries", "stat"].includes(p.type), `${p.title}: ${p.type}`);
      assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", p.title);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
      for (const t of p.targets ?? []) assert.ok(t.refId && t.expr.length > 0, p.title);
    }
  });

  it("the dashboard queries only metrics the agent and the bridge export", async () => {
    const names = await exportedNames();
    const d = JSON.parse(await readFile(join(HERE, "grafana/ringleader-dashboard.json"), "utf8")) as {
      panels: Panel[];
    };
    const used = new Set<string>();
    for (const p of d.panels)
      for (const t of p.targets ?? [])
        for (const m of t.expr.matchAll(/\bringleader_[a-z0-9_]+/g)) used.add(m[0]);
    assert.ok(used.size >= 20, `only ${used.size} metrics used`);
    const unknown = [...used].filter((n) => !names.has(n));
    assert.deepEqual(unknown, [], "metrics the dashboard asks for but nobody exports");
  });

  it("Prometheus reads the targets file and sends the bearer token", async () => {
    const { stdout } = await exec("python3", [
      "-c",
      "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
      join(HERE, "prometheus.yml"),
    ]);
    const cfg = JSON.parse(stdout) as {
      scrape_configs: {
        job_name: string;
        metrics_path: string;
        authorization: { type: string; credentials_file: string };
        file_sd_configs: { files: string[] }[];
      }[];
    };
    const job = cfg.scrape_configs.find((j) => j.job_name === "ringleader");
    assert.ok(job);
    assert.equal(job.metrics_path, "/metrics");
    assert.equal(job.authorization.type, "Bearer");
    assert.match(job.authorization.credentials_file, /^\/etc\/prometheus\//);
    assert.deepEqual(job.file_sd_configs[0]?.files, ["/etc/prometheus/targets/ringleader.json"]);
  });

  it("the targets playbook writes file_sd targets from the inventory", { timeout: 120_000 }, async () => {
    const inventory = join(dir, "hosts.yml");
    await writeFile(
      inventory,
      [
        "ringleader:",
        "  hosts:",
        "    shelf2: { ansible_host: 192.168.1.22 }",
        "    shelf1: { ansible_host: 192.168.1.21, ringleader_api_port: 7010 }",
        "    attic: {}",
        "",
      ].join("\n"),
    );
    const out = join(dir, "targets.json");
    await exec(
      "ansible-playbook",
      ["-i", inventory, join(HERE, "targets.yml"), "-e", `targets_file=${out}`],
      {
        env: { ...process.env, ANSIBLE_NOCOLOR: "1", ANSIBLE_RETRY_FILES_ENABLED: "0" },
      },
    );
    assert.deepEqual(JSON.parse(await readFile(out, "utf8")), [
      { targets: ["attic:7000"], labels: { board: "attic" } },
      { targets: ["192.168.1.21:7010"], labels: { board: "shelf1" } },
      { targets: ["192.168.1.22:7000"], labels: { board: "shelf2" } },
    ]);
  });
});
