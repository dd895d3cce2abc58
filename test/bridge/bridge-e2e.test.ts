/**
 * End to end, with no hardware: the real firmware (built by `make firmware`) runs in simavr with
 * its UART on a pseudo-terminal; the bridge reads it and writes into a real 3-node cluster. After
 * each scenario the board is paused and drained, and the cluster must hold every reading of the
 * boot exactly once, in order: sequence numbers 0..n-1 each once, and per sensor the keys in time
 * order carry increasing sequence numbers and uptimes.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { RingleaderClient } from "../../agent/src/client/client.js";
import type { Bridge } from "../../firmware-bridge/src/bridge.js";
import type { AckEvent } from "../../firmware-bridge/src/device-session.js";
import type { LocalCluster } from "../support/local-cluster.js";
import { buildFirmware, NoisyCable, SimBoard, startBridge, startCluster, waitFor } from "./sim-board.js";

interface Run {
  board: SimBoard;
  cable: NoisyCable | null;
  bridge: Bridge;
  acks: AckEvent[];
  device: string;
}

interface StoredReading {
  key: string;
  device: string;
  sensor: string;
  value: number;
  boot: number;
  seq: number;
  uptimeMs: number;
}

let cluster: LocalCluster;
let client: RingleaderClient;
let dir: string;

async function startRun(device: string, opts: { cable?: boolean; intervalMs: number }): Promise<Run> {
  const board = await SimBoard.start({ id: device, eeprom: join(dir, `${device}.eeprom`) });
  const cable = opts.cable
    ? await NoisyCable.start(board.pty, { seed: 7, flip: 0.002, drop: 0.001, garbage: 0.01, off: true })
    : null;
  const bridge = await startBridge({
    ports: [cable?.pty ?? board.pty],
    endpoints: cluster.endpoints(),
    token: cluster.token,
    stateDir: join(dir, `${device}-state`),
  });
  const acks: AckEvent[] = [];
  bridge.on("ack", (e) => acks.push(e));
  await waitFor("the bridge to open the port", 10_000, () => bridge.openPorts.length === 1);
  // Like a real Uno's reset on DTR when the host opens the port: the HELLO of the new boot
  // reaches an open port.
  board.reset();
  await waitFor("the device's HELLO and TIME", 15_000, () => {
    const s = bridge.session(device);
    return s?.device && bridge.outbox.anchors(device, s.device.boot).length > 0;
  });
  await bridge.session(device)!.configure(opts.intervalMs);
  return { board, cable, bridge, acks, device };
}

/**
 * Readings of the board's current boot the bridge acknowledged as committed or buffered, each
 * once: a resend is acknowledged again, and the boot before `startRun`'s reset left a few
 * acknowledgements too (3 here; counted, they once let the steady test stop at 297 readings).
 */
function committedOrBuffered(run: Run): number {
  const boot = run.bridge.session(run.device)?.device?.boot;
  const seqs = new Set<number>();
  for (const a of run.acks) {
    const ok = a.status === "committed" || a.status === "buffered";
    if (ok && a.device === run.device && a.boot === boot) seqs.add(a.seq);
  }
  return seqs.size;
}

async function readAll(device: string): Promise<StoredReading[]> {
  const out: StoredReading[] = [];
  for await (const item of client.scanAll({ prefix: `sensors/{${device}}/`, limit: 1000 })) {
    const v = JSON.parse(Buffer.from(item.value).toString("utf8")) as Omit<StoredReading, "key">;
    out.push({ key: item.key, ...v });
  }
  return out;
}

/** Pauses the board, waits until nothing is in flight anywhere, and checks the cluster. */
async function drainAndVerify(run: Run): Promise<{ readings: number }> {
  const session = run.bridge.session(run.device)!;
  await session.configure(0, 20_000);
  const stats = await waitFor(
    "the board's window and the outbox to empty",
    90_000,
    async () => {
      const s = await session.requestStats(5000).catch(() => null);
      return s && s.unacked === 0 && run.bridge.outbox.depth === 0 ? s : null;
    },
    200,
  );
  const boot = session.device!.boot;
  const all = (await readAll(run.device)).filter((r) => r.boot === boot);
  const seqs = all.map((r) => r.seq).sort((a, b) => a - b);
  assert.equal(all.length, stats.nextSeq, `readings stored for boot ${boot} vs readings the board made`);
  assert.deepEqual(
    seqs,
    Array.from({ length: stats.nextSeq }, (_, i) => i),
    "every sequence number once",
  );
  const bySensor = new Map<string, StoredReading[]>();
  for (const r of all) bySensor.set(r.sensor, [...(bySensor.get(r.sensor) ?? []), r]);
  assert.deepEqual([...bySensor.keys()].sort(), ["a0", "chip_temp", "count"]);
  for (const [sensor, rs] of bySensor) {
    // Scans return keys in order; the timestamps in the keys follow the board's clock.
    for (let i = 1; i < rs.length; i++) {
      assert.ok(rs[i]!.key > rs[i - 1]!.key);
      assert.ok(
        rs[i]!.seq > rs[i - 1]!.seq,
        `${sensor}: seq order at ${rs[i]!.key}: ${JSON.stringify([rs[i - 1], rs[i]])}, anchors ${JSON.stringify(run.bridge.outbox.anchors(run.device, boot))}`,
      );
      // Strictly: two readings of a sensor with one uptime would share a key.
      assert.ok(rs[i]!.uptimeMs > rs[i - 1]!.uptimeMs, `${sensor}: uptime order at ${rs[i]!.key}`);
    }
  }
  const counts = bySensor.get("count")!.map((r) => r.value);
  assert.deepEqual(
    counts,
    Array.from({ length: counts.length }, (_, i) => i + 1),
    "the counter has no gap",
  );
  return { readings: all.length };
}

async function stopRun(run: Run): Promise<void> {
  await run.bridge.stop();
  await run.cable?.stop();
  await run.board.stop();
}

describe("firmware bridge end to end (simavr + 3-node cluster)", { timeout: 300_000 }, () => {
  before(async () => {
    buildFirmware();
    dir = await mkdtemp(join(tmpdir(), "ringleader-bridge-e2e-"));
    cluster = await startCluster();
    client = new RingleaderClient({ endpoints: cluster.endpoints(), token: cluster.token, timeoutMs: 5000 });
  });

  after(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes every reading of the real firmware exactly once, in order", async () => {
    const run = await startRun("e2e-steady", { intervalMs: 20 });
    try {
      await waitFor("300 acknowledged readings", 30_000, () => committedOrBuffered(run) >= 300);
      const { readings } = await drainAndVerify(run);
      assert.ok(readings >= 300);
      assert.ok(run.acks.every((a) => a.status !== "rejected"));
    } finally {
      await stopRun(run);
    }
  });

  it("loses and doubles nothing when the leader is killed mid-stream", async () => {
    const run = await startRun("e2e-leader", { intervalMs: 20 });
    try {
      await waitFor("200 acknowledged readings", 30_000, () => committedOrBuffered(run) >= 200);
      const leader = await cluster.waitFor("a leader", 10_000, () => cluster.leader());
      cluster.kill9(leader);
      await cluster.waitExit(leader);
      const before = committedOrBuffered(run);
      await waitFor(
        "300 more readings without the old leader",
        60_000,
        () => committedOrBuffered(run) >= before + 300,
      );
      cluster.restart(leader);
      await cluster.waitFor("the node back", 20_000, () => cluster.status(leader));
      await drainAndVerify(run);
    } finally {
      await stopRun(run);
    }
  });

  it("keeps readings in the outbox while the whole cluster is down, then forwards them", async () => {
    const run = await startRun("e2e-outage", { intervalMs: 20 });
    let forwarded = 0;
    run.bridge.on("forwarded", () => forwarded++);
    try {
      await waitFor("100 acknowledged readings", 30_000, () => committedOrBuffered(run) >= 100);
      const ids = [...cluster.nodes.keys()];
      const acksBefore = run.acks.length;
      for (const id of ids) cluster.kill9(id);
      for (const id of ids) await cluster.waitExit(id);
      // The outbox's depth counts readings whose append is still being written, before their ACK:
      // wait for the ACKs themselves.
      // (A resend of a reading already buffered is acknowledged again: count readings, by key.)
      const buffered = () =>
        new Set(run.acks.slice(acksBefore).flatMap((a) => (a.status === "buffered" ? [a.key] : []))).size;
      await waitFor("200 readings acknowledged as buffered", 60_000, () => buffered() >= 200);
      // Nothing leaves the outbox while every node is down: each of them is still in it.
      assert.ok(run.bridge.outbox.depth >= buffered(), `${run.bridge.outbox.depth} in the outbox`);
      for (const id of ids) cluster.restart(id);
      await cluster.waitFor("a leader again", 30_000, () => cluster.leader());
      await waitFor("the outbox to drain", 60_000, () => run.bridge.outbox.depth === 0);
      assert.ok(forwarded >= 200, `${forwarded} readings forwarded`);
      await drainAndVerify(run);
    } finally {
      await stopRun(run);
    }
  });

  it("serves several boards at once", async () => {
    const boards = await Promise.all(
      ["e2e-multi-a", "e2e-multi-b"].map((id) => SimBoard.start({ id, eeprom: join(dir, `${id}.eeprom`) })),
    );
    const bridge = await startBridge({
      ports: boards.map((b) => b.pty),
      endpoints: cluster.endpoints(),
      token: cluster.token,
      stateDir: join(dir, "multi-state"),
    });
    const acks: AckEvent[] = [];
    bridge.on("ack", (e) => acks.push(e));
    try {
      await waitFor("both ports open", 10_000, () => bridge.openPorts.length === 2);
      for (const b of boards) b.reset();
      const runs: Run[] = ["e2e-multi-a", "e2e-multi-b"].map((device, i) => ({
        board: boards[i]!,
        cable: null,
        bridge,
        acks,
        device,
      }));
      for (const run of runs) {
        await waitFor(`${run.device} to link`, 15_000, () => {
          const s = bridge.session(run.device);
          return s?.device && bridge.outbox.anchors(run.device, s.device.boot).length > 0;
        });
        await bridge.session(run.device)!.configure(20);
      }
      await waitFor("200 readings from each board", 30_000, () =>
        runs.every((r) => committedOrBuffered(r) >= 200),
      );
      for (const run of runs) await drainAndVerify(run);
    } finally {
      await bridge.stop();
      for (const b of boards) await b.stop();
    }
  });

  it("stays exactly once and in order on a cable that flips, drops and injects bytes", async () => {
    const run = await startRun("e2e-noise", { cable: true, intervalMs: 20 });
    try {
      run.cable!.damageOn();
      const start = committedOrBuffered(run);
      await waitFor("600 readings through the noise", 60_000, () => committedOrBuffered(run) >= start + 600);
      run.cable!.damageOff();
      const decoder = run.bridge.decoderStats();
      assert.ok(
        decoder.resyncs > 0 && decoder.badCrc > 0,
        `the cable damaged frames: ${JSON.stringify(decoder)}`,
      );
      await drainAndVerify(run);
      const stats = await run.bridge.session(run.device)!.requestStats();
      assert.ok(stats.retransmits > 0, "lost frames were sent again");
      assert.ok(stats.rxBad > 0, "damaged ACKs reached the board too");
    } finally {
      await stopRun(run);
    }
  });
});
