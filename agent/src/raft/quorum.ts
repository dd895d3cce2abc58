/**
 * Majority quorum maths, kept apart from the rest of the core so that property tests can compare
 * it against a naive reference.
 */
import type { NodeId } from "./types.js";

/** The size of a majority of `n` voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Scratch space for `committedIndex`, which runs on every append answer: it allocates nothing. */
const scratch: number[] = [];

/**
 * The largest index that a majority of voters have acknowledged: sort the match indexes in
 * descending order and take the one at position `majority - 1`. Voters missing from `match`
 * count as 0. An empty voter set commits nothing (returns `Infinity` would be unsafe).
 */
export function committedIndex(voters: readonly NodeId[], match: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return 0;
  // An insertion sort, descending: a group has a handful of voters.
  for (let i = 0; i < n; i++) {
    const v = match(voters[i]!);
    let j = i;
    while (j > 0 && scratch[j - 1]! < v) {
      scratch[j] = scratch[j - 1]!;
      j--;
    }
    scratch[j] = v;
  }
  return scratch[majority(n) - 1]!;
}

export type VoteResult = "won" | "lost" | "pending";

/**
 * Whether the votes collected so far decide an election: won once a majority granted, lost once
 * a majority can no longer be reached.
 */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return "won";
  if (voters.length - rejected < need) return "lost";
  return "pending";
}

/** Whether the voters for which `active` holds form a majority. */
export function hasQuorum(voters: readonly NodeId[], active: (id: NodeId) => boolean): boolean {
  let n = 0;
  for (const id of voters) if (active(id)) n++;
  return n >= majority(voters.length);
}
