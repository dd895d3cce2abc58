/**
 * The flasher against plain files: it writes every byte, verifies by reading back, notices a
 * card that returns something else, asks before erasing, and refuses the disks Etcher refuses.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { FlashRefusedError, NotConfirmedError, VerifyFailedError } from "../src/errors.js";
import { CHUNK_BYTES, blockDeviceFromLsblk, flashImage, refusalReasons } from "../src/flash.js";
import { silentProgress } from "../src/progress.js";
import { ToolRunner } from "../src/tools.js";

const HARNESS = fileURLToPath(new URL("./cli-harness.js", import.meta.url));
const tools = new ToolRunner();

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HARNESS, ...args], {
      env: { PATH: process.env["PATH"] ?? "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end();
  });
}

describe("images: flash", () => {
  let dir: string;
  let image: string;
  let content: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-flash-"));
    // Not a multiple of the chunk size, with zero runs like a real image's free space.
    content = Buffer.concat([
      randomBytes(3 * CHUNK_BYTES + 12345),
      Buffer.alloc(CHUNK_BYTES),
      randomBytes(777),
    ]);
    image = join(dir, "card.img");
    await writeFile(image, content);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const base = { tools, force: false, verify: true, progress: silentProgress };

  it("writes the image byte for byte and verifies it by reading back", async () => {
    const target = join(dir, "out1.img");
    await writeFile(target, randomBytes(10 * CHUNK_BYTES)); // an old, bigger card image
    let asked = "";
    const r = await flashImage({ ...base, image, target, confirm: async (q) => ((asked = q), true) });
    assert.match(
      asked,
      /Write 16\.0 MiB to the file .*out1\.img \(40\.0 MiB\)\? Everything on it will be erased\./,
    );
    const written = await readFile(target);
    assert.equal(written.length, content.length);
    assert.equal(sha256(written), sha256(content));
    assert.equal(r.sha256, sha256(content));
    assert.equal(r.verified, true);
    assert.equal(r.bytes, content.length);
  });

  it("decompresses an .img.xz on the way", async () => {
    const xz = join(dir, "card.img.xz");
    await tools
      .run("xz", ["-T0", "-0", "-k", "-c", image], { maxStdoutBytes: 64 * 1024 * 1024 })
      .then((r) => writeFile(xz, r.stdout));
    const target = join(dir, "out2.img");
    const r = await flashImage({ ...base, image: xz, target, confirm: async () => true });
    assert.equal(sha256(await readFile(target)), sha256(content));
    assert.equal(r.sha256, sha256(content));
  });

  it("detects a card that reads back different bytes, and says where", async () => {
    const target = join(dir, "out3.img");
    const badOffset = 2 * CHUNK_BYTES + 4242;
    const damage = async () => {
      const fh = await open(target, "r+");
      const one = Buffer.alloc(1);
      await fh.read(one, 0, 1, badOffset);
      one[0] = (one[0] ?? 0) ^ 0xff;
      await fh.write(one, 0, 1, badOffset);
      await fh.close();
    };
    await assert.rejects(
      flashImage({ ...base, image, target, confirm: async () => true, beforeVerify: damage }),
      (err: unknown) =>
        err instanceof VerifyFailedError &&
        err.firstBadOffsetBytes === 2 * CHUNK_BYTES &&
        err.expectedSha256 === sha256(content),
    );
  });

  it("detects a card that is shorter than the image (a fake-capacity card)", async () => {
    const target = join(dir, "out4.img");
    const shrink = async () => {
      const fh = await open(target, "r+");
      await fh.truncate(CHUNK_BYTES + 1);
      await fh.close();
    };
    await assert.rejects(
      flashImage({ ...base, image, target, confirm: async () => true, beforeVerify: shrink }),
      (err: unknown) => err instanceof VerifyFailedError && err.firstBadOffsetBytes === CHUNK_BYTES,
    );
  });

  it("writes nothing when the answer is no", async () => {
    const target = join(dir, "out5.img");
    const old = randomBytes(1000);
    await writeFile(target, old);
    await assert.rejects(
      flashImage({ ...base, image, target, confirm: async () => false }),
      NotConfirmedError,
    );
    assert.deepEqual(await readFile(target), old);
  });

  it("refuses to write the image onto itself", async () => {
    await assert.rejects(
      flashImage({ ...base, image, target: image, confirm: async () => true }),
      FlashRefusedError,
    );
  });

  it("from the command line: needs --yes without a terminal, and reports JSON", async () => {
    const target = join(dir, "out6.img");
    const refused = await cli(["image", "flash", image, target]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /pass --yes/);
    const ok = await cli(["image", "flash", image, target, "--yes", "--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    const report = JSON.parse(ok.stdout) as { sha256: string; verified: boolean };
    assert.equal(report.sha256, sha256(content));
    assert.equal(report.verified, true);
    assert.equal(sha256(await readFile(target)), sha256(content));
  });
});

describe("images: which disks the flasher refuses", () => {
  const lsblk = (dev: object) => JSON.stringify({ blockdevices: [dev] });
  const sdCard = {
    name: "sdb",
    path: "/dev/sdb",
    size: 31914983424,
    rm: true,
    hotplug: true,
    type: "disk",
    tran: "usb",
    model: "SD/MMC Reader",
    mountpoints: [null],
    children: [
      { name: "sdb1", path: "/dev/sdb1", size: 536870912, rm: true, type: "part", mountpoints: [null] },
    ],
  };

  it("accepts an unmounted SD card in a USB reader", () => {
    const d = blockDeviceFromLsblk(lsblk(sdCard), "/dev/sdb");
    assert.equal(d.removable, true);
    assert.match(d.description, /SD\/MMC Reader, USB, 29\.7 GiB/);
    assert.deepEqual(refusalReasons(d), []);
  });

  it("refuses a card with a partition mounted", () => {
    const mounted = { ...sdCard, children: [{ ...sdCard.children[0], mountpoints: ["/media/me/bootfs"] }] };
    const reasons = refusalReasons(blockDeviceFromLsblk(lsblk(mounted), "/dev/sdb"));
    assert.deepEqual(reasons, ["it is mounted at /media/me/bootfs; unmount it first"]);
  });

  it("refuses the system disk, which is also not removable", () => {
    const nvme = {
      name: "nvme0n1",
      path: "/dev/nvme0n1",
      size: 512110190592,
      rm: false,
      hotplug: false,
      type: "disk",
      tran: "nvme",
      model: "Samsung SSD",
      mountpoints: [null],
      children: [
        { name: "nvme0n1p1", type: "part", mountpoints: ["/boot/efi"] },
        { name: "nvme0n1p2", type: "part", mountpoints: ["/", "/home"] },
        { name: "nvme0n1p3", type: "part", mountpoints: ["[SWAP]"] },
      ],
    };
    const reasons = refusalReasons(blockDeviceFromLsblk(lsblk(nvme), "/dev/nvme0n1"));
    assert.equal(reasons.length, 2);
    assert.match(reasons[0] ?? "", /running system \(\/boot\/efi, \/, \/home, \[SWAP\]\)/);
    assert.equal(reasons[1], "it is not a removable disk");
  });

  it("refuses a partition instead of the whole card (old lsblk with strings for flags)", () => {
    const part = {
      name: "mmcblk0p2",
      path: "/dev/mmcblk0p2",
      size: "4000000000",
      rm: "0",
      hotplug: "1",
      type: "part",
      tran: null,
      mountpoint: null,
    };
    assert.deepEqual(refusalReasons(blockDeviceFromLsblk(lsblk(part), "/dev/mmcblk0p2")), [
      "it is a part, not a whole disk",
    ]);
  });
});
