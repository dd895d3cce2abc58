/**
 * `ringleader snapshot save FILE` and `ringleader snapshot restore FILE`: a backup of the whole
 * key space through the API, and putting one back through ordinary writes.
 *
 * What "consistent" means here: each partition is read at one linearizable point (a ReadIndex
 * barrier, then one pass over the replica's table; `GET /v1/snapshot`), so within a partition
 * the file shows exactly the state after some prefix of its log, never half of a write. The
 * partitions are read one after another, so two partitions may be seen at different moments:
 * keys that share a `{hash tag}` share a partition and are always seen together. The file
 * records each partition's Raft index.
 */
import { stat } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { EndpointsUnreachableError } from "../../client/errors.js";
import {
  SnapshotFileError,
  SnapshotWriter,
  readSnapshotItems,
  verifySnapshot,
  type SnapshotHeader,
} from "../../snapshot/file.js";
import { CheckFailedError, UsageError } from "../errors.js";
import {
  clientFromArgs,
  withClientErrors,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { writeJson, writeLine } from "../output.js";
import { adminRequest } from "./admin-request.js";

interface SnapshotArgs extends GlobalArgs, ClientArgs {
  action: string;
  file: string;
  concurrency: number;
  "retry-for": number;
  force: boolean;
}

interface StatusView {
  cluster?: string;
  ring?: { partitions?: number } | null;
}

interface PartitionBody {
  partition: number;
  index: number;
  items: { key: string; value: string; version: string }[];
}

function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K`);
}

/** `work` again while no endpoint can answer (an election, a restarting node), up to `retryForMs`. */
async function retrying<T>(retryForMs: number, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + retryForMs;
  for (let delayMs = 100; ; delayMs = Math.min(2000, delayMs * 2)) {
    try {
      return await work();
    } catch (err) {
      // Unreachable nodes and 503s arrive as CheckFailedError; a UsageError will not go away.
      const transient = err instanceof CheckFailedError || err instanceof EndpointsUnreachableError;
      if (!transient || Date.now() + delayMs > deadline) throw err;
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

async function save(args: SnapshotArgs): Promise<void> {
  const startedMs = Date.now();
  if (!args.force && (await stat(args.file).catch(() => null))) {
    throw new UsageError(`${args.file} exists; pass --force to replace it`);
  }
  const status = await retrying(args["retry-for"], () => adminRequest<StatusView>(args, "GET", "/v1/status"));
  const partitions = status.ring?.partitions;
  if (!Number.isInteger(partitions) || partitions === undefined || partitions < 1) {
    throw new UsageError("the node answered without a ring; is the cluster formed? (ringleader status)");
  }
  const writer = new SnapshotWriter(args.file);
  const indexes: number[] = [];
  try {
    for (let p = 0; p < partitions; p++) {
      const body = await retrying(args["retry-for"], () =>
        adminRequest<PartitionBody>(args, "GET", `/v1/snapshot?partition=${p}`),
      );
      indexes.push(body.index);
      for (const item of body.items)
        await writer.add({ partition: p, key: item.key, value: Buffer.from(item.value, "base64") });
      progress(`saving: partition ${p + 1}/${partitions}, ${writer.keyCount} keys`);
    }
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const header = await writer.finish({
    cluster: status.cluster ?? "unknown",
    createdAt: new Date(),
    partitions,
    indexes,
  });
  progress("");
  if (args.json) return writeJson({ file: args.file, ...header, elapsedMs: Date.now() - startedMs });
  await writeLine(
    `Saved ${header.keys} keys from ${partitions} partitions of cluster ${header.cluster} to ${args.file} ` +
      `(${header.bodyBytes} bytes, sha256 ${header.sha256.slice(0, 16)}…) in ${((Date.now() - startedMs) / 1000).toFixed(1)} s.`,
  );
}

async function restore(args: SnapshotArgs): Promise<void> {
  const startedMs = Date.now();
  if (!Number.isInteger(args.concurrency) || args.concurrency < 1 || args.concurrency > 256)
    throw new UsageError("--concurrency must be 1-256");
  let header: SnapshotHeader;
  try {
    header = await verifySnapshot(args.file);
  } catch (err) {
    if (err instanceof SnapshotFileError) throw new UsageError(`refusing to restore: ${err.message}`, 1);
    throw err;
  }
  const client = clientFromArgs(args);
  let done = 0;
  let lastReportMs = 0;
  const report = (): void => {
    const pct = header.keys === 0 ? 100 : Math.floor((done * 100) / header.keys);
    const line = `restoring: ${done}/${header.keys} keys (${pct}%)`;
    if (process.stderr.isTTY) progress(line);
    else if (Date.now() - lastReportMs >= 1000 || done === header.keys) {
      lastReportMs = Date.now();
      process.stderr.write(`${line}\n`);
    }
  };
  await withClientErrors(async () => {
    const inFlight = new Set<Promise<void>>();
    for await (const item of readSnapshotItems(args.file)) {
      const put = client.put(item.key, item.value).then(() => {
        done++;
        report();
      });
      inFlight.add(put);
      void put.finally(() => inFlight.delete(put)).catch(() => undefined);
      if (inFlight.size >= args.concurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  });
  progress("");
  if (args.json)
    return writeJson({
      file: args.file,
      restored: done,
      cluster: header.cluster,
      elapsedMs: Date.now() - startedMs,
    });
  await writeLine(
    `Restored ${done} keys from ${args.file} (cluster ${header.cluster}, saved ${header.createdAt}) ` +
      `in ${((Date.now() - startedMs) / 1000).toFixed(1)} s.`,
  );
}

export const snapshotCommand: CommandModule<object, SnapshotArgs> = {
  command: "snapshot <action> <file>",
  describe: "Back up the whole key space to a file, or restore one into a cluster",
  builder: (y: Argv<object>): Argv<SnapshotArgs> =>
    withClientOptions(y)
      .positional("action", { type: "string", choices: ["save", "restore"], demandOption: true })
      .positional("file", { type: "string", demandOption: true, describe: "The snapshot file" })
      .option("concurrency", { type: "number", default: 16, describe: "restore: writes in flight at once" })
      .option("retry-for", {
        type: "number",
        default: 30_000,
        describe: "Milliseconds to keep retrying while no node can answer (an election)",
      })
      .option("force", { type: "boolean", default: false, describe: "save: replace an existing file" })
      .example("$0 snapshot save shelf-2026-11-26.rlsnap", "every key, partition by partition, checksummed")
      .example(
        "$0 snapshot restore shelf-2026-11-26.rlsnap --endpoints http://new-pi.local:7000",
        "verify the file, then write every key into this (new or existing) cluster",
      )
      .epilog(
        "Each partition is read at one linearizable point; partitions are read one after another. " +
          "Restore verifies the whole file (counts, sha256) before it writes anything, and writes " +
          "through ordinary PUTs, so keys get new versions in the target cluster.",
      ) as Argv<SnapshotArgs>,
  handler: async (args) => {
    if (args.action === "save") return save(args);
    return restore(args);
  },
};
