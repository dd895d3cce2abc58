/**
 * The simulator's only source of randomness: sfc32 (Chris Doty-Humphrey's Small Fast Counting
 * generator), seeded through splitmix32. It is small, fast in JavaScript (32-bit integer maths
 * only) and passes PractRand for far longer than any simulation runs. One seed gives one stream;
 * `fork` derives independent streams so that, for example, adding a client does not change the
 * network's choices, which keeps a failing seed's shape stable while a bug is being narrowed down.
 */

/** Thrown when a caller asks for a value from an empty range or list (a programmer error). */
export class RandomRangeError extends Error {
  override readonly name = "RandomRangeError";
  constructor(message: string) {
    super(message);
  }
}

const TWO_POW_32 = 4294967296;

/** One step of splitmix32; returns the new state and a well-mixed 32-bit output. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [next, z >>> 0];
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /**
   * @param seed any safe integer (the run's seed); both 32-bit halves are mixed in.
   * @param stream names an independent stream derived from the same seed.
   */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) throw new RandomRangeError(`seed must be a safe integer, got ${seed}`);
    if (!Number.isSafeInteger(stream))
      throw new RandomRangeError(`stream must be a safe integer, got ${stream}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    let s = lo ^ Math.imul(hi, 0x27d4eb2f) ^ Math.imul(stream >>> 0, 0x165667b1);
    let out: number;
    [s, out] = splitmix32(s);
    this.a = out;
    [s, out] = splitmix32(s);
    this.b = out;
    [s, out] = splitmix32(s);
    this.c = out;
    [s, out] = splitmix32(s ^ hi);
    this.d = out;
    // The first outputs of a freshly seeded sfc32 are still correlated with the seed.
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1), what `Math.random` would give. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** An integer in [lo, hi], both ends included. */
  int(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) {
      throw new RandomRangeError(`bad integer range [${lo}, ${hi}]`);
    }
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability `p` (0 never, 1 always). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RandomRangeError("cannot pick from an empty list");
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A new array with the items in a uniformly random order (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = out[i]!;
      out[i] = out[j]!;
      out[j] = tmp;
    }
    return out;
  }

  /** An independent generator derived from this one's current state and `stream`. */
  fork(stream: number): Random {
    const seed = this.nextUint32() * 2048 + (this.nextUint32() & 0x7ff);
    return new Random(seed, stream);
  }
}
