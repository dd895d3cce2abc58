/**
 * The member-phase discovery driver over real HTTP on loopback: a node of another cluster with
 * our name is flagged, its Raft traffic refused and counted; once it stops answering it is
 * forgotten and the alarm clears. And `--join` values are checked before anything starts.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../../../test/support/wait.js";
import { BootstrapServer } from "./bootstrap-server.js";
import { DiscoveryService, SeedError, seedUrl } from "./service.js";

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const stops: (() => Promise<void>)[] = [];

after(async () => {
  for (const stop of stops.reverse()) await stop();
});

function node(id: string, apiPort: number, seeds: string[], peerPort = 7100): DiscoveryService {
  const service = new DiscoveryService({
    nodeId: id,
    clusterName: "lab",
    secret: "a-secret-of-at-least-16-bytes",
    version: "0.1.0",
    expect: 3,
    seeds,
    mdns: null,
    advertiseHost: "127.0.0.1",
    apiPort,
    peerPort,
    tickMs: 20,
    probeEveryTicks: 2,
    durable: { load: () => ({ kind: "new" }), save: () => Promise.resolve() },
    logger: quiet,
  });
  stops.push(() => service.stop());
  return service;
}

test("a foreign node's traffic is refused and counted; once it vanishes it is forgotten", async () => {
  let foreign: DiscoveryService | null = null;
  const server = new BootstrapServer((body, remote) => foreign!.respond(body, remote));
  const port = await server.start("127.0.0.1", 0);
  let serving = true;
  stops.push(() => (serving ? server.stop() : Promise.resolve()));
  foreign = node("b1", port, []);
  foreign.becomeMember({ clusterId: () => "b".repeat(32), memberApis: () => [] });
  const ours = node("a1", 1, [`127.0.0.1:${port}`]);
  ours.becomeMember({ clusterId: () => "a".repeat(32), memberApis: () => [] });

  await waitFor("a1 to flag b1 as foreign", 10_000, () => ours.isForeign("b1"));
  assert.equal(ours.refuseTraffic("a2"), false, "a node of our own cluster is not refused");
  assert.equal(ours.refuseTraffic("b1"), true);
  assert.equal(ours.refuseTraffic("b1"), true);
  assert.equal(ours.counters.refusedForeignTraffic, 2);
  assert.match(String((ours.status() as { alarm: string | null }).alarm), /split brain: 1 node/);
  assert.equal(ours.peerAddress("b1"), undefined, "a foreign node's address is never used");

  serving = false;
  await server.stop();
  // 5 unanswered probe rounds of 2 ticks of 20 ms: gone well within a second or two.
  await waitFor("a1 to forget b1", 10_000, () => !ours.isForeign("b1"));
  const status = ours.status() as { alarm: string | null; verified: unknown[] };
  assert.equal(status.alarm, null);
  assert.deepEqual(status.verified, []);
  assert.equal(ours.refuseTraffic("b1"), false);
});

/** A member of cluster "a…" answering probes on an HTTP port of its own. */
async function servedMember(id: string, peerPort: number): Promise<number> {
  let service: DiscoveryService | null = null;
  const server = new BootstrapServer((body, remote) => service!.respond(body, remote));
  const port = await server.start("127.0.0.1", 0);
  stops.push(() => server.stop());
  service = node(id, port, [], peerPort);
  service.becomeMember({ clusterId: () => "a".repeat(32), memberApis: () => [] });
  return port;
}

test("a member started on an ephemeral peer port is dialled at the member table's address", async () => {
  const fixed = await servedMember("a2", 7100);
  const ephemeral = await servedMember("a3", 0);
  const ours = node("a1", 1, [`127.0.0.1:${fixed}`, `127.0.0.1:${ephemeral}`]);
  ours.becomeMember({ clusterId: () => "a".repeat(32), memberApis: () => [] });
  const verified = () => (ours.status() as { verified: { id: string }[] }).verified.map((v) => v.id);
  await waitFor(
    "a1 to verify a2 and a3",
    10_000,
    () => verified().includes("a2") && verified().includes("a3"),
  );
  assert.deepEqual(ours.peerAddress("a2"), { host: "127.0.0.1", port: 7100 });
  // Its card says port 0: dialling that would fail forever (a board joined with `--peer host:0`
  // stayed a learner nobody reached), so the answer is "ask the member table".
  assert.equal(ours.peerAddress("a3"), undefined);
});

test("--join values: API URLs and host:port become base URLs; anything else is a clear error", () => {
  assert.equal(seedUrl("10.0.0.5:7000"), "http://10.0.0.5:7000");
  assert.equal(seedUrl("https://pi-1.local:7000/v1/status"), "https://pi-1.local:7000");
  assert.equal(seedUrl("[fd00::5]:7000"), "http://[fd00::5]:7000");
  for (const bad of ["foo bar", "", "http://"])
    assert.throws(
      () => seedUrl(bad),
      (err: unknown) => err instanceof SeedError && /--join/.test(err.message),
    );
});
