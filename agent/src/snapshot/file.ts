/**
 * The backup file `ringleader snapshot save` writes and `snapshot restore` reads. One header
 * line of JSON, then one JSON line per key:
 *
 *     {"format":"ringleader-snapshot","version":1,"cluster":"shelf","createdAt":"...",
 *      "partitions":64,"keys":1200,"bodyBytes":53211,"sha256":"<hex of every byte after the header line>",
 *      "indexes":[...the Raft index each partition was read at...]}
 *     {"p":0,"k":"sensors/{kitchen}/temp","v":"MjEuNQ=="}
 *
 * Text so a person can look inside with `head`; line-based so neither side holds the whole key
 * space in memory. The checksum covers the body, and the header's counts must match it, so a
 * truncated or edited file is refused before anything is written to a cluster.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { once } from "node:events";
import { createInterface } from "node:readline";

export const SNAPSHOT_FORMAT = "ringleader-snapshot";
export const SNAPSHOT_VERSION = 1;
/** A header line longer than this is not ours. */
const MAX_HEADER_BYTES = 64 * 1024;
/** A 1 MiB value in base64 plus its key and the JSON around them. */
const MAX_LINE_CHARS = 2 * 1024 * 1024;

export interface SnapshotHeader {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: number;
  readonly cluster: string;
  readonly createdAt: string;
  readonly partitions: number;
  readonly keys: number;
  readonly bodyBytes: number;
  readonly sha256: string;
  /** Per partition, the Raft index its keys were read at. */
  readonly indexes: readonly number[];
}

export interface SnapshotItem {
  readonly partition: number;
  readonly key: string;
  readonly value: Uint8Array;
}

/** The file is damaged, truncated, or not a Ringleader snapshot; the message says how. */
export class SnapshotFileError extends Error {
  override readonly name = "SnapshotFileError";
}

/** Writes a snapshot: items go to a body file while they are hashed; `finish` adds the header. */
export class SnapshotWriter {
  private readonly hash = createHash("sha256");
  private readonly bodyPath: string;
  private readonly body: WriteStream;
  private keys = 0;
  private bytes = 0;

  constructor(private readonly path: string) {
    this.bodyPath = `${path}.body-${process.pid}`;
    this.body = createWriteStream(this.bodyPath, { mode: 0o600 });
  }

  get keyCount(): number {
    return this.keys;
  }

  async add(item: SnapshotItem): Promise<void> {
    const v = Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength).toString("base64");
    const line = Buffer.from(`${JSON.stringify({ p: item.partition, k: item.key, v })}\n`, "utf8");
    this.hash.update(line);
    this.keys++;
    this.bytes += line.length;
    if (!this.body.write(line)) await once(this.body, "drain");
  }

  /** Writes header and body to `path` (through a temporary name, so a crash leaves no half file). */
  async finish(meta: {
    cluster: string;
    createdAt: Date;
    partitions: number;
    indexes: number[];
  }): Promise<SnapshotHeader> {
    await new Promise<void>((resolve, reject) =>
      this.body.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    const header: SnapshotHeader = {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      cluster: meta.cluster,
      createdAt: meta.createdAt.toISOString(),
      partitions: meta.partitions,
      keys: this.keys,
      bodyBytes: this.bytes,
      sha256: this.hash.digest("hex"),
      indexes: meta.indexes,
    };
    const tmp = `${this.path}.tmp-${process.pid}`;
    try {
      const out = createWriteStream(tmp, { mode: 0o600 });
      out.write(`${JSON.stringify(header)}\n`);
      for await (const chunk of createReadStream(this.bodyPath)) {
        if (!out.write(chunk as Buffer)) await once(out, "drain");
      }
      await new Promise<void>((resolve, reject) =>
        out.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      const fh = await open(tmp, "r+");
      await fh.sync();
      await fh.close();
      await rename(tmp, this.path);
    } finally {
      await rm(tmp, { force: true });
      await rm(this.bodyPath, { force: true });
    }
    return header;
  }

  /** Throws the half-made file away. */
  async abort(): Promise<void> {
    this.body.destroy();
    await rm(this.bodyPath, { force: true });
  }
}

async function readHeaderLine(path: string): Promise<{ header: SnapshotHeader; bodyStart: number }> {
  const fh = await open(path, "r").catch((err: NodeJS.ErrnoException) => {
    throw new SnapshotFileError(`cannot open ${path}: ${err.code ?? err.message}`);
  });
  let head: Buffer;
  try {
    head = Buffer.alloc(MAX_HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, MAX_HEADER_BYTES, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const nl = head.indexOf(0x0a);
  if (nl < 0) throw new SnapshotFileError(`${path} is not a Ringleader snapshot (no header line)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(head.subarray(0, nl).toString("utf8"));
  } catch {
    throw new SnapshotFileError(`${path} is not a Ringleader snapshot (the header is not JSON)`);
  }
  return { header: validateHeader(parsed, path), bodyStart: nl + 1 };
}

function validateHeader(value: unknown, path: string): SnapshotHeader {
  const h = value as Partial<SnapshotHeader> | null;
  if (typeof h !== "object" || h === null || h.format !== SNAPSHOT_FORMAT) {
    throw new SnapshotFileError(`${path} is not a Ringleader snapshot (format is not ${SNAPSHOT_FORMAT})`);
  }
  if (h.version !== SNAPSHOT_VERSION) {
    throw new SnapshotFileError(
      `${path} is snapshot format version ${String(h.version)}; this ringleader reads version ${SNAPSHOT_VERSION}`,
    );
  }
  const count = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  if (
    typeof h.cluster !== "string" ||
    typeof h.createdAt !== "string" ||
    !count(h.partitions) ||
    !count(h.keys) ||
    !count(h.bodyBytes) ||
    typeof h.sha256 !== "string" ||
    !/^[0-9a-f]{64}$/.test(h.sha256) ||
    !Array.isArray(h.indexes)
  ) {
    throw new SnapshotFileError(`${path}: the snapshot header is incomplete or malformed`);
  }
  return h as SnapshotHeader;
}

function parseItem(line: string, lineNo: number, header: SnapshotHeader, path: string): SnapshotItem {
  const bad = (why: string): SnapshotFileError => new SnapshotFileError(`${path}, line ${lineNo}: ${why}`);
  if (line.length > MAX_LINE_CHARS) throw bad("the line is longer than any key and value can be");
  let rec: { p?: unknown; k?: unknown; v?: unknown };
  try {
    rec = JSON.parse(line) as typeof rec;
  } catch {
    throw bad("not JSON");
  }
  if (!Number.isInteger(rec.p) || (rec.p as number) < 0 || (rec.p as number) >= header.partitions)
    throw bad("bad partition number");
  if (typeof rec.k !== "string" || rec.k.length === 0) throw bad("bad key");
  if (typeof rec.v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(rec.v))
    throw bad("the value is not base64");
  return { partition: rec.p as number, key: rec.k, value: Buffer.from(rec.v, "base64") };
}

async function* bodyLines(path: string, bodyStart: number): AsyncGenerator<Buffer> {
  // Lines as raw bytes, so the checksum sees exactly what is on disk.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of createReadStream(path, { start: bodyStart }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      if (nl < 0) break;
      pending.push(chunk.subarray(from, nl + 1));
      yield Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      from = nl + 1;
    }
    if (from < chunk.length) {
      pending.push(chunk.subarray(from));
      pendingBytes += chunk.length - from;
      if (pendingBytes > MAX_LINE_CHARS * 2) throw new SnapshotFileError(`${path}: a line is far too long`);
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

/**
 * Reads the whole file once and checks it: header, every line, the key count, the byte count
 * and the checksum. Throws `SnapshotFileError` naming the first problem.
 */
export async function verifySnapshot(path: string): Promise<SnapshotHeader> {
  const { header, bodyStart } = await readHeaderLine(path);
  const hash = createHash("sha256");
  let keys = 0;
  let bytes = 0;
  for await (const raw of bodyLines(path, bodyStart)) {
    hash.update(raw);
    bytes += raw.length;
    keys++;
    if (raw[raw.length - 1] !== 0x0a)
      throw new SnapshotFileError(`${path}: the last line is cut off (truncated file?)`);
    parseItem(raw.toString("utf8", 0, raw.length - 1), keys + 1, header, path);
  }
  if (keys !== header.keys || bytes !== header.bodyBytes) {
    throw new SnapshotFileError(
      `${path}: the header promises ${header.keys} keys in ${header.bodyBytes} bytes, the file has ${keys} in ${bytes} (truncated or edited?)`,
    );
  }
  const sum = hash.digest("hex");
  if (sum !== header.sha256) {
    throw new SnapshotFileError(
      `${path}: checksum mismatch (sha256 ${sum}, header says ${header.sha256}); the file is corrupt`,
    );
  }
  return header;
}

/** The items of a file `verifySnapshot` accepted, in file order. */
export async function* readSnapshotItems(path: string): AsyncGenerator<SnapshotItem> {
  const { header, bodyStart } = await readHeaderLine(path);
  const lines = createInterface({ input: createReadStream(path, { start: bodyStart }), crlfDelay: Infinity });
  let lineNo = 1;
  for await (const line of lines) {
    lineNo++;
    if (line.length > 0) yield parseItem(line, lineNo, header, path);
  }
}

export async function readSnapshotHeader(path: string): Promise<SnapshotHeader> {
  return (await readHeaderLine(path)).header;
}
