/**
 * The MBR partition table of a Raspberry Pi OS image: a FAT boot partition first, the ext4 root
 * second and last. Pure functions over the first sector, so tests feed bytes directly.
 */
import { NotRaspberryPiOsError } from "./errors.js";

export const SECTOR_BYTES = 512;
const TABLE_OFFSET = 446;
const ENTRY_BYTES = 16;
const DISK_ID_OFFSET = 440;

/** FAT12/16/32 partition types (CHS and LBA variants) that the Pi firmware boots from. */
const FAT_TYPES = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e]);
const LINUX_TYPE = 0x83;
const GPT_PROTECTIVE_TYPE = 0xee;

export interface MbrPartition {
  /** 1-based, as Linux names them (`p1`, `p2`). */
  readonly number: number;
  readonly type: number;
  readonly bootable: boolean;
  readonly startSector: number;
  readonly sectorCount: number;
}

export interface PartitionTable {
  /** The disk signature; Raspberry Pi OS names its root `PARTUUID=<diskId>-02` in cmdline.txt. */
  readonly diskId: number;
  readonly partitions: readonly MbrPartition[];
}

export interface RaspberryPiLayout {
  readonly diskId: number;
  readonly boot: MbrPartition;
  readonly root: MbrPartition;
  /** True when nothing follows the root partition, so it can grow into new space. */
  readonly rootIsLast: boolean;
}

export function parseMbr(sector0: Uint8Array): PartitionTable {
  if (sector0.length < SECTOR_BYTES) throw new NotRaspberryPiOsError("the file is shorter than one sector");
  const view = new DataView(sector0.buffer, sector0.byteOffset, SECTOR_BYTES);
  if (view.getUint16(510, true) !== 0xaa55) {
    throw new NotRaspberryPiOsError("no MBR partition table (boot signature 55AA missing)");
  }
  const partitions: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const at = TABLE_OFFSET + i * ENTRY_BYTES;
    const type = view.getUint8(at + 4);
    const sectorCount = view.getUint32(at + 12, true);
    if (type === 0 || sectorCount === 0) continue;
    partitions.push({
      number: i + 1,
      type,
      bootable: view.getUint8(at) === 0x80,
      startSector: view.getUint32(at + 8, true),
      sectorCount,
    });
  }
  return { diskId: view.getUint32(DISK_ID_OFFSET, true), partitions };
}

function hex(type: number): string {
  return `0x${type.toString(16).padStart(2, "0")}`;
}

/** Checks the table against Raspberry Pi OS's layout; `imageBytes` bounds the partitions. */
export function findRaspberryPiLayout(table: PartitionTable, imageBytes: number): RaspberryPiLayout {
  if (table.partitions.some((p) => p.type === GPT_PROTECTIVE_TYPE)) {
    throw new NotRaspberryPiOsError("it has a GPT partition table; Raspberry Pi OS images use MBR");
  }
  const boot = table.partitions.find((p) => p.number === 1);
  const root = table.partitions.find((p) => p.number === 2);
  if (!boot || !FAT_TYPES.has(boot.type)) {
    throw new NotRaspberryPiOsError(
      `partition 1 should be the FAT boot partition, found ${boot ? `type ${hex(boot.type)}` : "none"}`,
    );
  }
  if (!root || root.type !== LINUX_TYPE) {
    throw new NotRaspberryPiOsError(
      `partition 2 should be the Linux root partition (type 0x83), found ${root ? `type ${hex(root.type)}` : "none"}`,
    );
  }
  for (const p of [boot, root]) {
    const endBytes = (p.startSector + p.sectorCount) * SECTOR_BYTES;
    if (p.startSector === 0 || endBytes > imageBytes) {
      throw new NotRaspberryPiOsError(
        `partition ${p.number} lies outside the image (ends at byte ${endBytes}, image has ${imageBytes}); is the file complete?`,
      );
    }
  }
  if (root.startSector < boot.startSector + boot.sectorCount) {
    throw new NotRaspberryPiOsError("the root partition overlaps or precedes the boot partition");
  }
  const rootIsLast = table.partitions.every(
    (p) => p === root || p.startSector + p.sectorCount <= root.startSector,
  );
  return { diskId: table.diskId, boot, root, rootIsLast };
}

/**
 * The first sector with partition 2's size changed to `sectorCount`. The CHS end address is set to
 * the "use LBA" marker, as sfdisk does for partitions beyond CHS reach; Linux and the Pi firmware
 * read only the LBA fields.
 */
export function withRootSectors(sector0: Uint8Array, sectorCount: number): Buffer {
  if (!Number.isInteger(sectorCount) || sectorCount <= 0 || sectorCount > 0xffffffff) {
    throw new RangeError(`partition size ${sectorCount} sectors does not fit an MBR entry`);
  }
  const out = Buffer.from(sector0.subarray(0, SECTOR_BYTES));
  const at = TABLE_OFFSET + ENTRY_BYTES;
  out[at + 5] = 0xfe;
  out[at + 6] = 0xff;
  out[at + 7] = 0xff;
  out.writeUInt32LE(sectorCount, at + 12);
  return out;
}
