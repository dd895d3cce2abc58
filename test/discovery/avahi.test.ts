/**
 * Interoperability: avahi-daemon (the Linux mDNS stack on every Raspberry Pi OS) sees each agent's
 * `_ringleader._tcp` advertisement with its TXT records, and sees it leave (goodbye packets). An
 * agent killed without a goodbye drops out of the other agents' discovery view, and Avahi's.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, Lan, lanUnavailable, type Status } from "./lan.js";

/** The version every agent should advertise: the repository's package.json. */
const VERSION = (
  JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

const skip = lanUnavailable();
let lan: Lan;
let env: Record<string, string> = {};

before(async () => {
  if (skip) return;
  lan = await Lan.create();
  lan.addBoard("av", "10.77.0.2");
  lan.addBoard("n1", "10.77.0.21");
  lan.addBoard("n2", "10.77.0.22");
  lan.addBoard("n3", "10.77.0.23");
  env = await lan.startAvahi("av");
});

after(async () => {
  if (!skip) await lan.destroy();
});

/** One `avahi-browse -rpt` pass: resolved lines (`=`) of our service type, by instance name. */
async function browse(): Promise<Map<string, { address: string; port: string; txt: string }>> {
  const b = lan.boards.get("av")!;
  const child = spawn(
    "ip",
    ["netns", "exec", b.ns, "avahi-browse", "-rpt", "--no-db-lookup", "_ringleader._tcp"],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await new Promise((r) => child.once("exit", r));
  clearTimeout(timer);
  const found = new Map<string, { address: string; port: string; txt: string }>();
  for (const line of out.split("\n")) {
    const f = line.split(";");
    // =;eth0;IPv4;ringleader-n1;_ringleader._tcp;local;host.local;10.77.0.21;7000;"k=v" "k=v"
    if (f[0] === "=" && f[4] === "_ringleader._tcp")
      found.set(f[3]!, { address: f[7]!, port: f[8]!, txt: f.slice(9).join(";") });
  }
  return found;
}

test(
  "avahi-browse, `ringleader discover` and `ringleader inventory` see every agent, with its version",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    lan.start("n1", { expect: 2 });
    lan.start("n2", { expect: 2 });
    const seen = await lan.waitFor("avahi to resolve both agents as cluster members", 60_000, async () => {
      const m = await browse();
      const a = m.get("ringleader-n1");
      const b = m.get("ringleader-n2");
      return a?.txt.includes('"state=member"') && b?.txt.includes('"state=member"') ? m : null;
    });
    const n1 = seen.get("ringleader-n1")!;
    assert.equal(n1.address, "10.77.0.21");
    assert.equal(n1.port, "7000");
    for (const field of ['"cluster=lab"', '"id=n1"', '"peer=7100"', '"api=7000"', `"ver=${VERSION}"`])
      assert.ok(n1.txt.includes(field), `${field} in ${n1.txt}`);
    assert.match(n1.txt, /"cid=[0-9a-f]{8}"/);
    // The operator's view of the same LAN, from inside the avahi board's namespace.
    const discovered = JSON.parse(
      lan.exec("av", process.execPath, [CLI, "discover", "--json", "--timeout", "3"]),
    ) as {
      nodes: {
        node: string;
        address: string;
        state: string;
        cluster: string;
        clusterId: string;
        version: string;
      }[];
    };
    const d1 = discovered.nodes.find((n) => n.node === "n1");
    assert.ok(d1, JSON.stringify(discovered));
    assert.equal(d1.address, "10.77.0.21");
    assert.equal(d1.state, "member");
    assert.equal(d1.cluster, "lab");
    assert.match(VERSION, /^\d+\.\d+\.\d+/);
    assert.equal(d1.version, VERSION, "discover shows the agent's version");
    assert.ok(discovered.nodes.some((n) => n.node === "n2"));
    const viaApi = JSON.parse(
      lan.exec("av", process.execPath, [
        CLI,
        "inventory",
        "--ansible",
        "--from",
        "both",
        "--listen-seconds",
        "2",
        "--endpoints",
        "http://10.77.0.21:7000",
        "--token",
        lan.token,
      ]),
    ) as { _meta: { hostvars: Record<string, Record<string, unknown>> }; [g: string]: unknown };
    assert.deepEqual((viaApi["ringleader"] as { hosts: string[] }).hosts, ["n1", "n2"]);
    assert.equal((viaApi["leaders"] as { hosts: string[] }).hosts.length, 1);
    assert.deepEqual((viaApi["up"] as { hosts: string[] }).hosts, ["n1", "n2"]);
    assert.equal(viaApi._meta.hostvars["n1"]!["ansible_host"], "10.77.0.21");
    assert.equal(viaApi._meta.hostvars["n1"]!["ringleader_api_port"], 7000);
    assert.equal(viaApi._meta.hostvars["n1"]!["ringleader_peer_port"], 7100);
    assert.match(String(viaApi._meta.hostvars["n1"]!["ringleader_version"]), /^\d+\.\d+\.\d+/);
    // Ansible itself reads it as a dynamic inventory script.
    const script = join(lan.dir, "inventory.sh");
    writeFileSync(
      script,
      `#!/bin/sh\nexec ip netns exec ${lan.boards.get("av")!.ns} ${process.execPath} ${CLI} inventory --ansible --from mdns --listen-seconds 2\n`,
      { mode: 0o755 },
    );
    const graph = execFileSync("ansible-inventory", ["-i", script, "--graph"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.match(graph, /@ringleader:[\s\S]*n1[\s\S]*n2/);
  },
);

/** The ids n1's discovery verified (answered a probe recently), with the state each reported. */
async function verifiedByN1(): Promise<Map<string, string> | null> {
  const s = await lan.api<Status & { discovery: { verified: { id: string; state: string }[] } }>(
    "n1",
    "/v1/status",
  );
  return s?.discovery ? new Map(s.discovery.verified.map((v) => [v.id, v.state])) : null;
}

test(
  "an agent killed without a goodbye drops out of the other agents' discovery view, and avahi's",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    const n3 = lan.start("n3", { expect: 2 });
    await lan.waitFor("n1 to verify n3 as a member", 60_000, async () => {
      const v = await verifiedByN1();
      return v?.get("n3") === "member" && v.has("n2");
    });
    await lan.waitFor("avahi to resolve n3", 30_000, async () => (await browse()).has("ringleader-n3"));
    n3.proc!.kill("SIGKILL");
    const killedAt = Date.now();
    await lan.waitFor("n1 to forget n3", 60_000, async () => {
      const v = await verifiedByN1();
      return v && !v.has("n3");
    });
    const forgotMs = Date.now() - killedAt;
    process.stderr.write(
      `# measured: SIGKILLed agent dropped from a member's discovery view after ${forgotMs} ms\n`,
    );
    // Bounded by 5 unanswered probe rounds (1 s each at --tick-ms 50), not by any mDNS TTL.
    assert.ok(forgotMs < 30_000, `forgotten after ${forgotMs} ms`);
    assert.ok((await verifiedByN1())!.has("n2"), "the live agent is still verified");
    // Avahi drops it too, long before any record's TTL (SRV 120 s, PTR 28800 s): it sees the other
    // agents' once-a-second queries go unanswered (RFC 6762 10.5, passive observation of failures).
    await lan.waitFor(
      "avahi to drop the killed n3",
      60_000,
      async () => !(await browse()).has("ringleader-n3"),
    );
  },
);

test(
  "avahi sees an agent leave at once (goodbye packets)",
  { skip: skip ?? false, timeout: 60_000 },
  async () => {
    await lan.stopBoard("n2");
    await lan.waitFor("avahi to drop n2 after its goodbye", 30_000, async () => {
      const m = await browse();
      return m.has("ringleader-n1") && !m.has("ringleader-n2");
    });
  },
);
