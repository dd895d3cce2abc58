/**
 * Store-and-forward: the outbox on LMDB, the sink that falls back to it, the forwarder that drains
 * it in order, exactly-once writes, and the time mapping that keeps keys stable.
 */
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import fc from "fast-check";
import { open } from "lmdb";
import { OutboxFullError } from "../src/errors.js";
import { BridgeMetrics } from "../src/metrics.js";
import { Outbox, outboxMapBytes, type OutboxEntry } from "../src/outbox.js";
import { DEFAULT_SINK_OPTIONS, ReadingSink, writeIdempotent, type WriteOutcome } from "../src/sink.js";
import { epochOf, shouldAnchor, timestampText, type Anchor } from "../src/time-map.js";
import { collectGarbage, within } from "../../test/support/gc.js";
import { FakeCluster, tempDir, testLogger, until } from "./support.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function entry(seq: number, device = "shed"): OutboxEntry {
  const time = timestampText(Date.UTC(2025, 5, 1) + seq * 10);
  return {
    key: `sensors/{${device}}/t/${time}`,
    value: JSON.stringify({ device, sensor: "t", value: seq, time, boot: 1, seq, uptimeMs: seq * 10 }),
    device,
    boot: 1,
    seq,
  };
}

function setup(
  limits = { maxEntries: 10_000, maxBytes: 1 << 22 },
  timeouts: Partial<typeof DEFAULT_SINK_OPTIONS> = {},
) {
  const tmp = tempDir("rl-outbox-");
  const outbox = Outbox.open({ dir: tmp.dir, limits });
  const cluster = new FakeCluster();
  const metrics = new BridgeMetrics({
    outboxDepth: () => outbox.depth,
    outboxBytes: () => outbox.bytes,
    devices: () => 0,
    decoderStats: () => ({
      framesOk: 0,
      resyncs: 0,
      badCrc: 0,
      oversized: 0,
      malformed: 0,
      bytesIn: 0,
      bytesDropped: 0,
    }),
  });
  const sink = new ReadingSink(cluster, outbox, metrics, testLogger(), {
    ...DEFAULT_SINK_OPTIONS,
    forwardBatch: 8,
    retryBaseMs: 5,
    retryMaxMs: 20,
    ...timeouts,
  });
  cleanups.push(() => tmp.remove());
  cleanups.push(() => outbox.close());
  cleanups.push(() => sink.stop());
  return { tmp, outbox, cluster, metrics, sink };
}

describe("outbox and sink", () => {
  it("buffers while the cluster is down and forwards everything in order once it is back", async () => {
    const { outbox, cluster, sink } = setup();
    const forwarded: number[] = [];
    sink.onForwarded = (e) => forwarded.push(e.seq);
    sink.start();
    cluster.down = true;
    const outcomes = await Promise.all(Array.from({ length: 50 }, (_, i) => sink.submit(entry(i))));
    assert.ok(outcomes.every((o) => o.status === "buffered"));
    assert.equal(outbox.depth, 50);
    // While the outbox holds readings, new ones queue behind them even if the cluster answers.
    cluster.down = false;
    assert.equal((await sink.submit(entry(50))).status, "buffered");
    await until("the outbox to drain", () => outbox.depth === 0);
    assert.equal(cluster.data.size, 51);
    // Forwarded in batches of 8 that are written together: batch order is kept.
    const batches = Array.from({ length: Math.ceil(forwarded.length / 8) }, (_, b) =>
      forwarded.slice(b * 8, b * 8 + 8),
    );
    for (let b = 1; b < batches.length; b++)
      assert.ok(Math.min(...batches[b]!) > Math.max(...batches[b - 1]!));
    // And once it is empty, readings go straight to the cluster again.
    assert.deepEqual(await sink.submit(entry(51)), {
      status: "committed",
      duplicate: false,
      key: entry(51).key,
    });
  });

  it("empties the outbox after an outage while a board samples faster than a forward round", async () => {
    const { outbox, cluster, sink } = setup();
    sink.start();
    cluster.down = true;
    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => sink.submit(entry(i))));
    assert.ok(before.every((o) => o.status === "buffered"));
    // The cluster is back, slower than the board: a write takes 30 ms, a reading comes every 5 ms.
    cluster.down = false;
    cluster.delayOf = () => 30;
    const outcomes: Promise<WriteOutcome>[] = [];
    for (let seq = 20; seq < 220; seq++) {
      outcomes.push(sink.submit(entry(seq)));
      await new Promise((r) => setTimeout(r, 5)); // the board's sampling interval
    }
    const after = await Promise.all(outcomes);
    const direct = after.flatMap((o, i) => (o.status === "committed" ? [20 + i] : []));
    assert.ok(
      after.slice(-50).every((o) => o.status === "committed"),
      `the last 50 readings went straight to the cluster (direct: ${direct.length} of 200)`,
    );
    await until("the outbox to drain", () => outbox.depth === 0);
    assert.equal(cluster.data.size, 220);
    // Nothing direct overtook a reading that waited in the outbox.
    const position = new Map([...cluster.data.keys()].map((k, i) => [k, i]));
    const firstDirect = Math.min(...direct.map((seq) => position.get(entry(seq).key)!));
    for (let seq = 0; seq < direct[0]!; seq++)
      assert.ok(
        position.get(entry(seq).key)! < firstDirect,
        `reading ${seq} was written before the direct ones`,
      );
  });

  it("gives up on writes the cluster takes and never answers, garbage collection or not", async () => {
    const { outbox, cluster, sink } = setup(undefined, { directTimeoutMs: 100, forwardTimeoutMs: 100 });
    sink.start();
    cluster.hanging = true;
    const outcome = sink.submit(entry(1));
    // A collection while the write waits: AbortSignal.any([.., AbortSignal.timeout()]) loses its
    // timeout to it, so the reading's answer, and the forwarder's round after it, never came.
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    assert.equal((await within("the direct write", 5000, outcome)).status, "buffered");
    collectGarbage();
    cluster.hanging = false;
    await until("the outbox to drain", () => outbox.depth === 0);
    assert.deepEqual([...cluster.data.keys()], [entry(1).key]);
  });

  it("turns a write that committed but reported a failure into one key, not two", async () => {
    const { outbox, cluster, sink, metrics } = setup();
    sink.start();
    cluster.commitThenFail = 1;
    assert.equal((await sink.submit(entry(1))).status, "buffered");
    await until("the outbox to drain", () => outbox.depth === 0);
    assert.equal(cluster.data.size, 1);
    const text = await metrics.registry.getSingleMetricAsString("ringleader_bridge_readings_duplicate_total");
    assert.match(text, /_total 1$/m);
  });

  it("tells the device to retry when the outbox is full, and never drops what it acknowledged", async () => {
    const { outbox, cluster, sink } = setup({ maxEntries: 5, maxBytes: 1 << 20 });
    cluster.down = true;
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => sink.submit(entry(i))));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ["buffered", "buffered", "buffered", "buffered", "buffered", "retry", "retry", "retry"],
    );
    assert.equal(outbox.depth, 5);
    await assert.rejects(outbox.append(entry(99)), OutboxFullError);
    cluster.down = false;
    sink.start();
    await until("the outbox to drain", () => outbox.depth === 0);
    assert.deepEqual([...cluster.data.keys()].sort(), [0, 1, 2, 3, 4].map((i) => entry(i).key).sort());
  });

  it("keeps readings and time anchors across a restart", async () => {
    const tmp = tempDir("rl-outbox-reopen-");
    cleanups.push(() => tmp.remove());
    const limits = { maxEntries: 100, maxBytes: 1 << 20 };
    const first = Outbox.open({ dir: tmp.dir, limits });
    await Promise.all([first.append(entry(1)), first.append(entry(2))]);
    first.saveAnchors("shed", 1, [{ uptimeMs: 10, epochMs: 1000 }]);
    await first.close();
    const second = Outbox.open({ dir: tmp.dir, limits });
    cleanups.push(() => second.close());
    assert.equal(second.depth, 2);
    assert.ok(second.has("shed", 1, 2));
    assert.deepEqual(
      second.peek(10).map((e) => e.entry.seq),
      [1, 2],
    );
    assert.deepEqual(second.anchors("shed", 1), [{ uptimeMs: 10, epochMs: 1000 }]);
    assert.deepEqual(second.anchors("shed", 2), []);
  });

  it("keeps its files inside --state-dir when the directory's name has a dot (bridge.d)", async () => {
    const tmp = tempDir("rl-outbox-dot-");
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.dir, "bridge.d");
    // The bridge makes its state directory before it opens the outbox.
    mkdirSync(dir);
    const limits = { maxEntries: 100, maxBytes: 1 << 20 };
    const first = Outbox.open({ dir, limits });
    await first.append(entry(1));
    await first.close();
    assert.ok(statSync(join(dir, "data.mdb")).isFile());
    const second = Outbox.open({ dir, limits });
    cleanups.push(() => second.close());
    assert.equal(second.depth, 1);
  });

  it("keeps anchors only for each device's newest boot and boots with readings in the outbox", async () => {
    const tmp = tempDir("rl-outbox-anchors-");
    cleanups.push(() => tmp.remove());
    const limits = { maxEntries: 100, maxBytes: 1 << 20 };
    const anchor = (b: number) => [{ uptimeMs: b, epochMs: 1000 * b }];
    const booted = (box: Outbox, device: string) =>
      Array.from({ length: 300 }, (_, b) => b).filter((b) => box.anchors(device, b).length > 0);
    const first = Outbox.open({ dir: tmp.dir, limits });
    // A board that reboots 200 times keeps one boot's anchors, not 200.
    for (let b = 1; b <= 200; b++) first.saveAnchors("attic", b, anchor(b));
    assert.deepEqual(booted(first, "attic"), [200]);
    // Boot 1 of "shed" has readings waiting in the outbox: its anchors stay through reboots.
    first.saveAnchors("shed", 1, anchor(1));
    await Promise.all([first.append(entry(1)), first.append(entry(2))]);
    first.saveAnchors("shed", 2, anchor(2));
    first.saveAnchors("shed", 3, anchor(3));
    assert.deepEqual(booted(first, "shed"), [1, 3]);
    // A new anchor of the newest boot (clock drift) keeps it and prunes nothing else.
    first.saveAnchors("shed", 3, [...anchor(3), { uptimeMs: 9000, epochMs: 9_000_000 }]);
    assert.deepEqual(booted(first, "shed"), [1, 3]);
    assert.deepEqual(booted(first, "attic"), [200], "another device's anchors are its own");
    await first.close();

    // Which boot is newest survives a restart: draining boot 1 then drops its anchors.
    const second = Outbox.open({ dir: tmp.dir, limits });
    cleanups.push(() => second.close());
    assert.deepEqual(booted(second, "shed"), [1, 3]);
    await second.remove(second.peek(1));
    assert.deepEqual(booted(second, "shed"), [1, 3], "one reading of boot 1 is still held");
    await second.remove(second.peek(10));
    assert.equal(second.depth, 0);
    assert.deepEqual(booted(second, "shed"), [3]);
    assert.equal(second.anchors("shed", 3).length, 2);
  });

  it("reserves an LMDB map that a full outbox fits in", async () => {
    const tmp = tempDir("rl-outbox-map-");
    cleanups.push(() => tmp.remove());
    const limits = { maxEntries: 1_000_000, maxBytes: 4 << 20 };
    const box = Outbox.open({ dir: tmp.dir, limits });
    cleanups.push(() => box.close());
    // lmdb-js shares one environment per path within a process: this handle sees the outbox's map.
    const mapSize = async () => {
      const env = open({ path: tmp.dir, readOnly: true });
      const size = (env.getStats() as { mapSize: number }).mapSize;
      await env.close();
      return size;
    };
    assert.equal(await mapSize(), outboxMapBytes(limits));
    const emptyFile = statSync(join(tmp.dir, "data.mdb")).size;
    let full = false;
    for (let n = 0; !full; n += 1000) {
      const results = await Promise.allSettled(
        Array.from({ length: 1000 }, (_, i) => box.append({ ...entry(n + i), seq: n + i })),
      );
      full = results.some((r) => r.status === "rejected" && r.reason instanceof OutboxFullError);
    }
    assert.ok(box.bytes > limits.maxBytes - 1024, `filled to ${box.bytes} bytes`);
    assert.equal(await mapSize(), outboxMapBytes(limits), "the map never had to grow");
    const grown = statSync(join(tmp.dir, "data.mdb")).size - emptyFile;
    assert.ok(grown <= 2 * limits.maxBytes, `the file grew by ${grown} bytes for ${box.bytes} bytes held`);
  });

  it("a later reading in the same millisecond waits for the earlier one, so keys sort in sequence order", async () => {
    const { cluster, sink } = setup();
    // Reading 1's write is slow to reach the cluster; reading 2 (same sensor, same millisecond)
    // must still not take the primary key before it.
    cluster.delayOf = (value) => ((JSON.parse(value) as { seq: number }).seq === 1 ? 30 : 0);
    const first = entry(1);
    const second = { ...entry(2), key: first.key };
    const [a, b] = await Promise.all([sink.submit(first), sink.submit(second)]);
    assert.deepEqual(a, { status: "committed", duplicate: false, key: first.key });
    assert.deepEqual(b, { status: "committed", duplicate: false, key: `${first.key}~1.2` });
  });

  it("writes exactly once through retries, and takes the alternate key for a different reading", async () => {
    const cluster = new FakeCluster();
    const signal = AbortSignal.timeout(1000);
    const a = entry(1);
    assert.deepEqual(await writeIdempotent(cluster, a, signal), { key: a.key, duplicate: false });
    assert.deepEqual(await writeIdempotent(cluster, a, signal), { key: a.key, duplicate: true });
    const other = { ...entry(2), key: a.key };
    assert.deepEqual(await writeIdempotent(cluster, other, signal), {
      key: `${a.key}~1.2`,
      duplicate: false,
    });
    assert.deepEqual(await writeIdempotent(cluster, other, signal), { key: `${a.key}~1.2`, duplicate: true });
    assert.equal(cluster.data.size, 2);
  });
});

describe("time mapping", () => {
  const anchorsArb = fc
    .array(fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: -500, max: 500 })), {
      minLength: 1,
      maxLength: 8,
    })
    .map((steps) => {
      const out: Anchor[] = [];
      let u = 0;
      let e = 1_700_000_000_000;
      for (const [du, drift] of steps) {
        u += du;
        e += du + drift;
        out.push({ uptimeMs: u, epochMs: e });
      }
      return out;
    });

  it("gives a reading the same time whenever it is seen, once its anchor exists", () => {
    // The bridge knows every anchor below a reading's uptime before it sees the reading (the
    // device sends TIME_REPLY before anything sampled later). Anchors added afterwards must not
    // change the reading's time.
    fc.assert(
      fc.property(anchorsArb, fc.integer({ min: 0, max: 900_000 }), (anchors, u) => {
        const known = anchors.filter((a, i) => i === 0 || a.uptimeMs < u);
        assert.equal(epochOf(known, u), epochOf(anchors, u));
      }),
    );
  });

  it("adds anchors only for drift beyond the tolerance", () => {
    const first: Anchor = { uptimeMs: 1000, epochMs: 50_000 };
    assert.ok(shouldAnchor([], first, 100));
    assert.ok(!shouldAnchor([first], { uptimeMs: 11_000, epochMs: 60_050 }, 100));
    assert.ok(shouldAnchor([first], { uptimeMs: 11_000, epochMs: 60_200 }, 100));
    assert.ok(!shouldAnchor([first], { uptimeMs: 900, epochMs: 0 }, 100));
  });

  it("writes timestamps that sort as text in time order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 253_402_300_799_999 }),
        fc.integer({ min: 0, max: 253_402_300_799_999 }),
        (a, b) => {
          const ta = timestampText(a);
          const tb = timestampText(b);
          assert.equal(ta.length, 24);
          assert.equal(Math.sign(a - b), ta < tb ? -1 : ta > tb ? 1 : 0);
        },
      ),
    );
  });
});
