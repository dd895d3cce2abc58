/**
 * From a key to its partition. A key's hash is a position on the 2^32 ring and its partition is
 * the arc that holds that position: partition p covers [⌈p·2^32/P⌉, ⌈(p+1)·2^32/P⌉), which is
 * the same as ⌊hash·P / 2^32⌋. Using the high bits (a range) rather than `hash mod P` keeps the
 * partition's position on the ring and its share of key hashes the same thing, and is unbiased
 * for any P up to 2^16 (the product stays below 2^53, so the double arithmetic is exact).
 *
 * Keys with a hash tag hash only the tag, as in Redis Cluster: the tag is the text between the
 * first `{` and the first `}` after it, when that text is not empty. `sensors/{kitchen}/t` and
 * `sensors/{kitchen}/rh` therefore share a partition, and so can be scanned together in order.
 */
import { xxhash32 } from "./hash.js";
import { MAX_PARTITIONS, RING_SIZE, RingArgumentError, type Ring } from "./types.js";

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const utf8 = new TextEncoder();

/**
 * The hash tag of a key, or null when it has none. Strings are searched by UTF-16 unit and byte
 * keys by byte; `{` and `}` are ASCII, so the UTF-8 bytes of a string's tag are the tag of its
 * UTF-8 bytes and both forms of a key land in the same partition.
 */
export function hashTag(key: string): string | null;
export function hashTag(key: Uint8Array): Uint8Array | null;
export function hashTag(key: string | Uint8Array): string | Uint8Array | null {
  if (typeof key === "string") {
    const open = key.indexOf("{");
    if (open < 0) return null;
    const close = key.indexOf("}", open + 1);
    return close > open + 1 ? key.slice(open + 1, close) : null;
  }
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return null;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  return close > open + 1 ? key.subarray(open + 1, close) : null;
}

/** The bytes that decide a key's partition: its tag when it has one, else the whole key. */
function hashedBytes(key: string | Uint8Array): Uint8Array {
  const bytes = typeof key === "string" ? utf8.encode(key) : key;
  return hashTag(bytes) ?? bytes;
}

/** The ring position of a key: XXH32 (seed 0) of its hash tag or, without one, of the whole key. */
export function keyHash(key: string | Uint8Array): number {
  return xxhash32(hashedBytes(key));
}

export function checkPartitionCount(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new RingArgumentError(`partitions must be a whole number from 1 to ${MAX_PARTITIONS}`);
  }
}

/** The partition whose arc holds ring position `hash` (an unsigned 32-bit integer). */
export function partitionOfPosition(hash: number, partitions: number): number {
  return Math.floor((hash * partitions) / RING_SIZE);
}

/** Where partition p starts on the ring: ⌈p·2^32/P⌉, the first position that maps to it. */
export function partitionPosition(partition: number, partitions: number): number {
  // The quotient of two exact integers can round across a whole number when P is not a power
  // of two, so the estimate is corrected with products that are exact (both below 2^53).
  const target = partition * RING_SIZE;
  let pos = Math.ceil(target / partitions);
  while (pos * partitions < target) pos++;
  while (pos > 0 && (pos - 1) * partitions >= target) pos--;
  return pos;
}

/** The partition that stores `key`, for a ring or for a partition count. */
export function partitionForKey(ringOrPartitions: Ring | number, key: string | Uint8Array): number {
  const partitions = typeof ringOrPartitions === "number" ? ringOrPartitions : ringOrPartitions.partitions;
  checkPartitionCount(partitions);
  return partitionOfPosition(keyHash(key), partitions);
}
