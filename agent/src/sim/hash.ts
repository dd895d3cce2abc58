/**
 * FNV-1a hashing for the simulator's fingerprints: entry payloads, state-machine images and the
 * run digest that tells two runs of one seed apart. Not cryptographic; it only has to make an
 * accidental collision between two different histories vanishingly unlikely.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hashBytes(bytes: Uint8Array, seed = FNV_OFFSET): number {
  let h = seed;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

export function hashString(s: string, seed = FNV_OFFSET): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * A running fingerprint of a sequence of numbers and strings. Two independent 32-bit lanes
 * (different offsets) give 64 bits, enough for comparing thousands of runs.
 */
export class Digest {
  private h1 = FNV_OFFSET;
  private h2 = 0x6c62272e;

  addNumber(n: number): void {
    // Numbers in the trace are integers; fold the high part in for values above 2^32.
    const lo = n >>> 0;
    const hi = Math.floor(n / 4294967296) >>> 0;
    this.mix(lo);
    if (hi !== 0) this.mix(hi);
  }

  addString(s: string): void {
    this.h1 = hashString(s, this.h1);
    this.h2 = hashString(s, this.h2 ^ 0x5bd1e995);
  }

  value(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, "0") + (this.h2 >>> 0).toString(16).padStart(8, "0");
  }

  private mix(word: number): void {
    for (let shift = 0; shift < 32; shift += 8) {
      const byte = (word >>> shift) & 0xff;
      this.h1 = Math.imul(this.h1 ^ byte, FNV_PRIME);
      this.h2 = Math.imul(this.h2 ^ byte, 0x5bd1e995);
    }
  }
}
