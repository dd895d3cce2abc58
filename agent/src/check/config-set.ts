/**
 * The memo table of the linearizability search: a set of configurations, each one being "this set
 * of operations is already linearized (a bitset) and the register holds this value (an interned
 * id)". Lowe's observation is that reaching the same configuration twice can never lead anywhere
 * new, so the search remembers every configuration it has entered and refuses to enter it again.
 *
 * Written as an open-addressing hash table over typed arrays rather than a `Map` of strings because
 * the search adds one entry per step it takes forward, and building a string key from a bitset on
 * every step costs more than the rest of the step put together.
 */

/** What `add` did. */
export const ADDED = 0;
export const ALREADY_PRESENT = 1;
/** The table would grow past its word limit; the caller stops searching and reports `unknown`. */
export const FULL = 2;
export type AddOutcome = typeof ADDED | typeof ALREADY_PRESENT | typeof FULL;

const INITIAL_SLOTS = 1024;
/** Hash and state (one word each) plus two slots (the load factor stays at or below one half). */
const ENTRY_OVERHEAD_WORDS = 4;

/** Mixes 32 bits (the finaliser of MurmurHash3) so that nearby inputs land in distant slots. */
export function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/**
 * The Zobrist key of operation `index`: the hash of a set of operations is the XOR of its members'
 * keys, so adding or removing one operation updates the hash in O(1) instead of rehashing the set.
 */
export function zobristKey(index: number): number {
  return mix32(Math.imul(index + 1, 0x9e3779b9));
}

export class ConfigSet {
  /** Open-addressing slots: 0 is empty, otherwise entry index + 1. Length is a power of two. */
  private slots: Int32Array;
  private hashes: Int32Array;
  private states: Int32Array;
  /** Entry e's bitset lives in `arena[e * words .. (e + 1) * words)`. */
  private arena: Uint32Array;
  private count = 0;

  /**
   * @param words length of every bitset in 32-bit words
   * @param maxWords bound on the table's memory in 32-bit words, counting each entry's bitset and
   *   `ENTRY_OVERHEAD_WORDS` of bookkeeping; past it `add` answers `FULL`
   */
  constructor(
    private readonly words: number,
    private readonly maxWords: number,
  ) {
    if (!Number.isInteger(words) || words < 1)
      throw new RangeError(`bitset words must be >= 1, got ${words}`);
    this.slots = new Int32Array(INITIAL_SLOTS);
    this.hashes = new Int32Array(INITIAL_SLOTS / 2);
    this.states = new Int32Array(INITIAL_SLOTS / 2);
    this.arena = new Uint32Array((INITIAL_SLOTS / 2) * words);
  }

  get size(): number {
    return this.count;
  }

  /**
   * Adds the configuration (`bits`, `state`) unless it is already present.
   * @param setHash the Zobrist hash of `bits` (XOR of `zobristKey` over its members)
   */
  add(bits: Uint32Array, setHash: number, state: number): AddOutcome {
    const hash = mix32(setHash ^ Math.imul(state + 1, 0x27d4eb2d));
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    for (;;) {
      const occupant = this.slots[slot] ?? 0;
      if (occupant === 0) break;
      const entry = occupant - 1;
      if (this.hashes[entry] === hash && this.states[entry] === state && this.sameBits(entry, bits)) {
        return ALREADY_PRESENT;
      }
      slot = (slot + 1) & mask;
    }
    if (!this.reserve()) return FULL;
    const entry = this.count++;
    this.hashes[entry] = hash;
    this.states[entry] = state;
    this.arena.set(bits.subarray(0, this.words), entry * this.words);
    if (this.slots.length === mask + 1) {
      this.slots[slot] = entry + 1;
    } else {
      // `reserve` grew and rehashed the slots, so the free slot found above is stale.
      this.insertSlot(entry);
    }
    return ADDED;
  }

  private sameBits(entry: number, bits: Uint32Array): boolean {
    const base = entry * this.words;
    for (let w = 0; w < this.words; w++) {
      if (this.arena[base + w] !== bits[w]) return false;
    }
    return true;
  }

  /** Makes room for one more entry; false when that would pass the memory bound. */
  private reserve(): boolean {
    const needed = this.count + 1;
    if (needed * (this.words + ENTRY_OVERHEAD_WORDS) > this.maxWords) return false;
    if (needed > this.hashes.length) {
      const capacity = this.hashes.length * 2;
      this.hashes = grownInt32(this.hashes, capacity);
      this.states = grownInt32(this.states, capacity);
      const arena = new Uint32Array(capacity * this.words);
      arena.set(this.arena);
      this.arena = arena;
    }
    // Keep the load factor at or below one half so that linear probing stays short.
    if (needed * 2 > this.slots.length) {
      this.slots = new Int32Array(this.slots.length * 2);
      for (let e = 0; e < this.count; e++) this.insertSlot(e);
    }
    return true;
  }

  private insertSlot(entry: number): void {
    const mask = this.slots.length - 1;
    let slot = (this.hashes[entry] ?? 0) & mask;
    while ((this.slots[slot] ?? 0) !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
  }
}

function grownInt32(old: Int32Array, capacity: number): Int32Array {
  const grown = new Int32Array(capacity);
  grown.set(old);
  return grown;
}
