/**
 * The ring's tokens in clockwise order, and walks along it: a partition's replicas are the first
 * distinct owners met going clockwise from the partition's position (tokens at or after it).
 */
import type { RingNode } from "./types.js";

export interface TokenIndex {
  /** Token positions, ascending. */
  readonly positions: readonly number[];
  /** `owners[i]` is the index (into the ring's node list) of the node owning `positions[i]`. */
  readonly owners: readonly number[];
}

export function buildTokenIndex(nodes: readonly RingNode[]): TokenIndex {
  const pairs: [number, number][] = [];
  nodes.forEach((node, owner) => {
    for (const position of node.tokens) pairs.push([position, owner]);
  });
  pairs.sort((a, b) => a[0] - b[0]);
  return { positions: pairs.map((p) => p[0]), owners: pairs.map((p) => p[1]) };
}

/** The index of the first position ≥ `position`, or `positions.length` when there is none. */
export function lowerBound(positions: readonly number[], position: number): number {
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (positions[mid]! < position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The first `limit` distinct owners clockwise from `start` (fewer when the ring has fewer owners),
 * with the clockwise distance from `start` to each one's first token.
 */
export function walkFrom(
  index: TokenIndex,
  start: number,
  limit: number,
  ringSize: number,
): { owners: number[]; offsets: number[] } {
  const owners: number[] = [];
  const offsets: number[] = [];
  const count = index.positions.length;
  const first = lowerBound(index.positions, start);
  for (let step = 0; step < count && owners.length < limit; step++) {
    const i = (first + step) % count;
    const owner = index.owners[i]!;
    if (owners.includes(owner)) continue;
    owners.push(owner);
    offsets.push((index.positions[i]! - start + ringSize) % ringSize);
  }
  return { owners, offsets };
}
