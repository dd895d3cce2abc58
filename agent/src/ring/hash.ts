/**
 * 32-bit xxHash (XXH32, Yann Collet's reference algorithm), written here so that every board
 * computes the same key positions without a native module.
 *
 * Why XXH32: it is specified byte for byte (little-endian lanes, fixed primes), has published test
 * vectors, passes SMHasher, and distributes short keys well — which FNV-1a 32 does not (its last
 * byte only reaches the high bits through one multiply, so keys like `k1`…`k9` bunch together when
 * the high bits choose the partition, as ours do). It runs on 32-bit integer maths that JavaScript
 * does exactly with `Math.imul`, so an ARM board, an x86 laptop and a browser agree.
 */

const PRIME32_1 = 0x9e3779b1;
const PRIME32_2 = 0x85ebca77;
const PRIME32_3 = 0xc2b2ae3d;
const PRIME32_4 = 0x27d4eb2f;
const PRIME32_5 = 0x165667b1;

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function readU32LE(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function round(acc: number, lane: number): number {
  const mixed = (acc + Math.imul(lane, PRIME32_2)) | 0;
  return Math.imul(rotl32(mixed, 13), PRIME32_1);
}

/** XXH32 of `bytes` with `seed` (an unsigned 32-bit integer), as an unsigned 32-bit integer. */
export function xxhash32(bytes: Uint8Array, seed = 0): number {
  const len = bytes.length;
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + PRIME32_1 + PRIME32_2) | 0;
    let v2 = (seed + PRIME32_2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - PRIME32_1) | 0;
    const limit = len - 16;
    while (i <= limit) {
      v1 = round(v1, readU32LE(bytes, i));
      v2 = round(v2, readU32LE(bytes, i + 4));
      v3 = round(v3, readU32LE(bytes, i + 8));
      v4 = round(v4, readU32LE(bytes, i + 12));
      i += 16;
    }
    h = (rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18)) | 0;
  } else {
    h = (seed + PRIME32_5) | 0;
  }
  // The length is added modulo 2^32, as the reference does with its 32-bit accumulator.
  h = (h + len) | 0;
  while (i + 4 <= len) {
    h = (h + Math.imul(readU32LE(bytes, i), PRIME32_3)) | 0;
    h = Math.imul(rotl32(h, 17), PRIME32_4);
    i += 4;
  }
  while (i < len) {
    h = (h + Math.imul(bytes[i]!, PRIME32_5)) | 0;
    h = Math.imul(rotl32(h, 11), PRIME32_1);
    i++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, PRIME32_2);
  h ^= h >>> 13;
  h = Math.imul(h, PRIME32_3);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

/** XXH32 of the UTF-8 bytes of `text`. */
export function xxhash32String(text: string, seed = 0): number {
  return xxhash32(utf8.encode(text), seed);
}
