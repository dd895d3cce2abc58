/**
 * Backups with real clusters: backup.yml takes `ringleader snapshot save` through one board and
 * fetches the file to the controller; `ringleader snapshot restore` writes it into a second,
 * brand-new cluster, where every key must come back with its bytes; damaged files are refused
 * before a single write.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";
import { CLI, ansiblePlaybook, localInventory, recap, run } from "./support.js";

const KEYS = 300;

function valueOf(i: number): Buffer {
  // Text, binary (every byte value) and empty values.
  if (i % 7 === 0) return Buffer.from(Array.from({ length: 256 }, (_, b) => (b + i) % 256));
  if (i % 11 === 0) return Buffer.alloc(0);
  return Buffer.from(`value-${i}`);
}

function keyOf(i: number): string {
  return i % 3 === 0 ? `sensors/{board${i % 5}}/t/${i}` : `plain/${i}`;
}

/** A PUT, retried while the cluster answers 503 (an election under load), up to 30 s. */
async function put(c: LocalCluster, key: string, value: Buffer): Promise<void> {
  const status = await c.waitFor(`PUT ${key}`, 30_000, async () => {
    const res = await fetch(`${c.endpoints()[0]}/v1/kv/${encodeURIComponent(key)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${c.token}` },
      body: value,
    });
    await res.arrayBuffer();
    return res.status === 503 ? null : res.status;
  });
  assert.equal(status, 200, key);
}

/** Every key and value in the cluster (strong scan, all pages). */
async function dump(c: LocalCluster): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after = "";
  for (;;) {
    const q = new URLSearchParams({ limit: "1000", ...(after ? { after } : {}) });
    const res = await fetch(`${c.endpoints()[0]}/v1/kv?${q}`, {
      headers: { authorization: `Bearer ${c.token}` },
    });
    if (res.status !== 200) {
      assert.fail(
        `scan answered ${res.status}: ${await res.text()}\n${await c.leaderless()}\n${c.logTail(6000)}`,
      );
    }
    const page = (await res.json()) as { items: { key: string; value: string }[]; next: string | null };
    for (const item of page.items) out.set(item.key, item.value);
    if (!page.next) return out;
    after = page.next;
  }
}

function cli(c: LocalCluster, args: string[]) {
  return run([process.execPath, CLI, ...args, "--endpoints", c.endpoints().join(","), "--token", c.token], {
    timeoutMs: 120_000,
  });
}

describe("provisioning: backup.yml and snapshot save/restore on real clusters", { timeout: 600_000 }, () => {
  let source: LocalCluster;
  let target: LocalCluster;
  let work = "";
  let backupFile = "";
  const expected = new Map<string, string>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "ringleader-backup-"));
    [source, target] = (await LocalCluster.startAll([{ nodes: 3 }, { nodes: 3 }])) as [
      LocalCluster,
      LocalCluster,
    ];
    await Promise.all([source.waitHealthy(), target.waitHealthy()]);
    for (let i = 0; i < KEYS; i++) {
      await put(source, keyOf(i), valueOf(i));
      expected.set(keyOf(i), valueOf(i).toString("base64"));
    }
    // A deleted key must not come back.
    await put(source, "gone", Buffer.from("x"));
    const del = await fetch(`${source.endpoints()[0]}/v1/kv/gone`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${source.token}` },
    });
    assert.equal(del.status, 200);
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("backup.yml saves a snapshot on one board and fetches it to the controller", async () => {
    const inventory = join(work, "inventory.yml");
    const backups = join(work, "backups");
    await writeFile(
      inventory,
      localInventory(source, {
        vars: [`ringleader_backup_dir: ${backups}`, `ringleader_backup_remote_dir: ${join(work, "remote")}`],
      }),
    );
    await run(["mkdir", "-p", join(work, "remote")], { timeoutMs: 5000 });
    const r = await ansiblePlaybook(["-i", inventory, "backup.yml"], 300_000);
    assert.equal(r.code, 0, r.stdout.slice(-6000) + r.stderr);
    assert.equal(recap(r.stdout).get("n1")?.failed, 0);
    assert.ok(!recap(r.stdout).has("n2"), "one board takes the snapshot");
    const files = await readdir(backups);
    assert.equal(files.length, 1, files.join(", "));
    assert.match(files[0]!, /^ringleader-\d{8}T\d{6}Z\.rlsnap$/);
    backupFile = join(backups, files[0]!);
    assert.deepEqual(await readdir(join(work, "remote")), [], "the board's copy is removed");
    const header = JSON.parse((await readFile(backupFile, "utf8")).split("\n")[0]!) as {
      format: string;
      cluster: string;
      partitions: number;
      keys: number;
      sha256: string;
      indexes: number[];
    };
    assert.equal(header.format, "ringleader-snapshot");
    assert.equal(header.cluster, "local");
    assert.equal(header.partitions, 64);
    assert.equal(header.indexes.length, 64);
    assert.equal(header.keys, KEYS);
    assert.match(r.stdout, new RegExp(`${KEYS} keys\\s+from 64 partitions`));
  });

  it("refuses damaged files before writing anything", async () => {
    const good = await readFile(backupFile);
    const text = good.toString("utf8");
    const cases: [string, Buffer, RegExp][] = [
      ["truncated", good.subarray(0, good.length - 40), /cut off|truncated/],
      ["bit flip", Buffer.from(text.replace("plain/1", "plain/9")), /checksum mismatch/],
      ["not a snapshot", Buffer.from("hello\n"), /not a Ringleader snapshot/],
      [
        "line removed",
        Buffer.from(
          text
            .split("\n")
            .filter((_, i) => i !== 5)
            .join("\n"),
        ),
        /promises \d+ keys/,
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(work, `${name.replace(/ /g, "-")}.rlsnap`);
      await writeFile(file, bytes);
      const r = await cli(target, ["snapshot", "restore", file]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /refusing to restore/, name);
      assert.match(r.stderr, message, name);
    }
    assert.equal((await dump(target)).size, 0, "nothing was written to the target");
  });

  it("restores every key into a new cluster, with progress", async () => {
    const r = await cli(target, ["snapshot", "restore", backupFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`restoring: ${KEYS}/${KEYS} keys \\(100%\\)`));
    assert.match(r.stdout, new RegExp(`Restored ${KEYS} keys`));
    const restored = await dump(target);
    assert.equal(restored.size, KEYS);
    assert.deepEqual(restored, expected);
    assert.ok(!restored.has("gone"));
  });

  it("save refuses to overwrite a file, and a fresh save of the target matches the source", async () => {
    const again = await cli(target, ["snapshot", "save", backupFile]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --force/);
    const file = join(work, "target.rlsnap");
    const r = await cli(target, ["snapshot", "save", file, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { keys: number }).keys, KEYS);
    const lines = (f: string) =>
      readFile(f, "utf8").then((t) => t.split("\n").slice(1).filter(Boolean).sort());
    // Same keys in the same partitions with the same bytes (versions are new in the target).
    assert.deepEqual(await lines(file), await lines(backupFile));
  });

  it("members step-down hands a board's leaderships over, also when asked through another board", async () => {
    const n1 = source.nodes.get("n1")!;
    // Writers enter through every board, so many writes are forwarded to partition leaders while
    // leadership moves. A forward the old leader refuses is proposed again, so none may fail.
    const statuses = new Map<number, number>();
    let writing = true;
    const writer = async (w: number) => {
      const endpoints = source.endpoints();
      for (let i = 0; writing; i++) {
        const res = await fetch(`${endpoints[i % endpoints.length]}/v1/kv/step-down-${w}-${i}`, {
          method: "PUT",
          headers: { authorization: `Bearer ${source.token}` },
          body: "x",
        });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    const writers = Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
    // Strong readers too: a read whose leader steps down is asked again of the next one, so none
    // may fail either (before, a read index request the old leader dropped waited 5 s for a 503).
    const reads = new Map<string, number>();
    const keys = [...expected.keys()];
    const reader = async (w: number) => {
      const endpoints = source.endpoints();
      for (let i = 0; writing; i++) {
        const key = keys[(w * 37 + i) % keys.length]!;
        const res = await fetch(`${endpoints[(w + i) % endpoints.length]}/v1/kv/${encodeURIComponent(key)}`, {
          headers: { authorization: `Bearer ${source.token}` },
        });
        const body = Buffer.from(await res.arrayBuffer());
        const outcome =
          res.status !== 200
            ? `${res.status} ${body.toString()}`
            : body.toString("base64") === expected.get(key)
              ? "200"
              : `200 with the wrong value for ${key}`;
        reads.set(outcome, (reads.get(outcome) ?? 0) + 1);
      }
    };
    const readers = Promise.all(Array.from({ length: 8 }, (_, w) => reader(w)));
    for (const id of ["n2", "n3"]) {
      // Asked through n1's API: n1 forwards to the board itself.
      const r = await run(
        [
          process.execPath,
          CLI,
          "members",
          "step-down",
          id,
          "--json",
          "--endpoints",
          n1.api,
          "--token",
          source.token,
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as {
        id: string;
        ledBefore: number;
        transferred: number;
        stillLeading: number;
      };
      assert.equal(out.id, id);
      assert.equal(out.transferred, out.ledBefore, JSON.stringify(out));
      assert.equal(out.stillLeading, 0, JSON.stringify(out));
    }
    writing = false;
    await Promise.all([writers, readers]);
    assert.ok((statuses.get(200) ?? 0) > 0, "the writers wrote");
    assert.deepEqual(
      [...statuses.keys()],
      [200],
      `answers during the hand-overs: ${JSON.stringify([...statuses])}`,
    );
    assert.ok((reads.get("200") ?? 0) > 0, "the readers read");
    assert.deepEqual(
      [...reads.keys()],
      ["200"],
      `reads during the hand-overs: ${JSON.stringify([...reads])}`,
    );
    // The leader balancers (one hand-over per partition every 5 s) leave stepped-down boards
    // alone: watched for 8 s, neither n2 nor n3 leads anything again.
    const watchUntil = Date.now() + 8000;
    while (Date.now() < watchUntil) {
      for (const id of ["n2", "n3"]) {
        const st = (await source.status(id)) as { leaderOf?: number } | null;
        assert.equal(st?.leaderOf ?? 0, 0, `${id} took leadership back after stepping down`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const unknown = await cli(source, ["members", "step-down", "nobody"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no member nobody/);
  });
});
