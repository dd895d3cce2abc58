/**
 * Where the network blocks multicast, the fallbacks carry the promise: boards given each other as
 * `--join` seeds form one cluster, a fourth joins through one seed, and when that board comes back
 * with a new DHCP address (its seed gone, with no flags at all or with its original `--join`), it
 * rejoins through the peer list it learned from the cluster (the member table on its disk), and
 * the members learn its new address from its probes (`agent/src/discovery/README.md`, "Address
 * changes").
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Lan, lanUnavailable, type Status } from "./lan.js";

const skip = lanUnavailable();
let lan: Lan;
const FOUNDERS = ["m1", "m2", "m3"];
const address = (name: string): string => lan.boards.get(name)!.address;

before(async () => {
  if (skip) return;
  lan = await Lan.create();
  for (let i = 1; i <= 4; i++) {
    lan.addBoard(`m${i}`, `10.77.0.${80 + i}`);
    lan.blockMulticast(`m${i}`);
  }
});

after(async () => {
  if (!skip) await lan.destroy();
});

const status = (name: string): Promise<Status | null> => lan.api<Status>(name, "/v1/status");

function multicastBlocked(name: string): boolean {
  return lan.exec(name, "ip", ["route", "show", "224.0.0.0/4"]).trim() === "";
}

test(
  "with multicast blocked, boards given each other as --join seeds form one cluster; a fourth joins",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    for (const b of FOUNDERS) {
      const seeds = FOUNDERS.filter((o) => o !== b).map((o) => `${address(o)}:7000`);
      lan.start(b, { extra: ["--join", seeds.join(",")] });
    }
    const ids = await lan.waitFor("one healthy cluster of three", 60_000, async () => {
      const all = await Promise.all(FOUNDERS.map(status));
      return all.every((s) => s?.health.ok && s.members.length === 3) ? all.map((s) => s!.clusterId) : null;
    });
    assert.ok(ids[0]);
    assert.deepEqual(ids, [ids[0], ids[0], ids[0]]);
    // m4 is told about m1 only; it learns the rest from the cluster.
    lan.start("m4", { extra: ["--join", `${address("m1")}:7000`] });
    await lan.waitFor("m4 to be an up member holding replicas", 60_000, async () => {
      const s = await status("m4");
      return s?.members.some((m) => m.id === "m4" && m.state === "up") && s.replicaOf > 0;
    });
    await lan.waitFor(
      "a write to succeed",
      30_000,
      async () => (await fetchIn("m2", "PUT", "/v1/kv/greeting", "hello")) === 200,
    );
    for (let i = 1; i <= 4; i++) assert.ok(multicastBlocked(`m${i}`), `m${i} has no multicast route`);
  },
);

test(
  "back with a new address, no --join and its seed gone, a board rejoins through the peers it learned",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    const learned = (await status("m4"))!.members.filter((m) => m.id !== "m4").map((m) => m.peer);
    assert.deepEqual(learned.sort(), ["10.77.0.81:7100", "10.77.0.82:7100", "10.77.0.83:7100"]);
    await lan.stopBoard("m1");
    await rejoinsAt("10.77.0.94", []);
  },
);

test(
  "the same with its original flags (--join of the dead seed, so no mDNS either)",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    await rejoinsAt("10.77.0.95", ["--join", "10.77.0.81:7000"]);
  },
);

/**
 * Restarts m4 at a new address with `extra` flags, multicast still blocked, and checks that the
 * members learn the address and that m4 is the same member, with its data.
 */
async function rejoinsAt(newAddress: string, extra: string[]): Promise<void> {
  const before = (await status("m4"))!;
  await lan.stopBoard("m4");
  lan.readdress("m4", newAddress);
  lan.blockMulticast("m4");
  assert.ok(multicastBlocked("m4"));
  lan.start("m4", { extra });
  const peer = `${newAddress}:7100`;
  let last = "";
  await lan
    .waitFor("m2 and m3 to hold m4's new address, and m4 a leader", 60_000, async () => {
      const [s2, s3, s4] = await Promise.all(["m2", "m3", "m4"].map(status));
      const rec = (s: Status | null | undefined): string | undefined =>
        s?.members.find((m) => m.id === "m4")?.peer;
      last = `m2 has ${rec(s2)}, m3 has ${rec(s3)}, m4 leader ${s4?.leader}`;
      return rec(s2) === peer && rec(s3) === peer && s4?.leader;
    })
    .catch((err: Error) => {
      throw new Error(`${last}\n${err.message}`);
    });
  process.stderr.write(
    `# measured: restart at ${newAddress} to members holding it: ${Date.now() - lan.boards.get("m4")!.startedAt} ms\n`,
  );
  const s4 = (await status("m4"))!;
  assert.equal(s4.id, "m4");
  assert.equal(s4.clusterId, before.clusterId, "the same cluster");
  assert.equal(s4.members.filter((m) => m.id === "m4").length, 1, "still one member m4");
  assert.ok(s4.replicaOf > 0, "m4 still holds replicas");
  const value = await lan.waitFor("a strong read through m4", 60_000, () =>
    lan.api<string>("m4", "/v1/kv/greeting?consistency=strong"),
  );
  assert.equal(value, "hello");
}

async function fetchIn(name: string, method: string, path: string, body: string): Promise<number> {
  const script = `fetch("http://127.0.0.1:7000${path}",{method:${JSON.stringify(method)},body:${JSON.stringify(body)},headers:{authorization:"Bearer ${lan.token}"},signal:AbortSignal.timeout(5000)}).then(r=>process.stdout.write(String(r.status))).catch(e=>process.stdout.write("0"))`;
  return Number(lan.exec(name, process.execPath, ["-e", script]));
}
