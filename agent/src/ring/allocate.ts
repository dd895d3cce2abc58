/**
 * Token allocation for a joining node, in the spirit of Cassandra's replication-aware allocation
 * (CASSANDRA-7032): tokens placed at random leave loads ±25 % off their share at 64 partitions, so
 * each new token is instead put where it best evens out the replica placement, evaluated exactly.
 *
 * Slots. Only the order of tokens relative to each other and to the partitions' positions
 * matters, so a new token can go into finitely many slots: between two neighbouring ring elements
 * (tokens or partition positions). A token of the joining node X at position t changes partition
 * p exactly when fewer than `replicationFactor + 1` distinct nodes have a token in [pos(p), t)
 * and none of them is X: X then enters p's walk at rank r = that count, everyone from rank r on
 * moves one rank down, and whoever was at rank `replicationFactor − 1` (the tail) drops out of the
 * replica set. Counting back from t's own partition those partitions form a contiguous run, so a
 * slot is evaluated by walking back until the count reaches the limit.
 *
 * Objective. A join can only take replicas from the tails of the partitions it enters, and ranks
 * never rise, so a balanced ring is not enough: it must also be ready for the next join. For each
 * node and each j = 0 … rf−1, the replicas it holds at ranks 0 … rf−1−j are compared with its
 * share of a ring that has j more nodes of unbounded weight (each holding every partition):
 *
 *   j = 0   all its replicas against its share: the balance bound itself;
 *   j = 1   its replicas except the tails against its share after the largest possible join (one
 *           that enters every partition and so drops every tail), which makes its tails exactly
 *           what it must give up then — and, for any smaller join, at least that;
 *   j = 2   its preferred leaderships against its share after two such joins, and so on.
 *
 * With many nodes this is simply "every rank in proportion to weight"; with few (when shares are
 * capped at one replica per partition) it makes heavy boards lead and light ones trail, which is
 * what lets a fourth or fifth board join without pushing anyone out of bounds. Each term is a
 * squared deviation in units of `balanceTolerance` of its target, with a steep extra penalty when
 * a load nears its bound. Smaller terms follow:
 *
 *   successors  the first node after a partition's replicas inherits a replica when one of them
 *               leaves; each node should succeed partitions in proportion to its weight, and no
 *               small node should succeed many partitions of one and the same node (which would
 *               all land on it if that node left), so removals stay near balance too;
 *   spread      prefer gaps between partition positions that hold none of X's tokens and few
 *               tokens at all, so that every gap stays crowded with distinct nodes and later joins
 *               can enter one partition at a time rather than whole runs of them.
 *
 * Search. Each of the node's `vnodesPerWeight × weight` tokens goes greedily to the slot that
 * lowers the cost most (per replica gained, while the node has tokens to spare); then every token
 * is revisited twice, taken out and put back where it now does best. Ties go to the first slot
 * clockwise from position 0. Nothing is random and the node id is not used, so the tokens are a
 * function of the ring and the weight: every node that computes them gets the same.
 */
import { partitionPosition } from "./keys.js";
import { balanceTolerance, weightedShares } from "./shares.js";
import { RING_SIZE, type Ring } from "./types.js";
import { buildTokenIndex, lowerBound, walkFrom, type TokenIndex } from "./walk.js";

/** Relative weights of the cost terms (see the module comment); the load term dominates. */
const COST_LOAD = 100;
/** Extra weight per squared unit a load strays beyond 0.9 of its tolerance. */
const COST_LOAD_BOUND = 100;
const COST_TAILS = 100;
const COST_LEADERS = 30;
const COST_SUCCESSORS = 1;
/** Per squared replica (in units of the heir's tolerance) that one heir inherits beyond its limit. */
const COST_PAIRS = 3;
const COST_SPREAD_OWN = 0.5;
const COST_SPREAD_CROWD = 0.02;
/** Passes of the revisiting search; a third pass rarely moves a token. */
const REVISIT_PASSES = 2;
/** A weight for the imaginary nodes that take every partition (any weight dwarfing a real one). */
const UNBOUNDED_WEIGHT = 1e12;

/** Where the scratch list of a candidate's changes lives: partition, X's new rank, X's offset. */
interface Changes {
  count: number;
  readonly partition: Int32Array;
  readonly rank: Int32Array;
  readonly offset: Float64Array;
}

/** The state of the ring while one node's tokens are being chosen. */
class Allocation implements TokenIndex {
  /** Token positions ascending, and each one's owner (node index; the new node is `x`). */
  readonly positions: number[];
  readonly owners: number[];
  readonly partitions: number;
  readonly rf: number;
  /** Walks record ranks 0 … rf−1 (replicas) and rf (the successor). */
  readonly depth: number;
  /** The joining node's index. */
  readonly x: number;
  readonly starts: number[] = [];
  /** Per partition: distinct owners in walk order (up to depth), and the offset of each one's first token. */
  readonly walkOwners: number[][] = [];
  readonly walkOffsets: number[][] = [];
  /** counts[node × depth + rank]: the partitions that have `node` at `rank` of their walk. */
  readonly counts: Float64Array;
  /** target[j][node]: the node's share with j more nodes of unbounded weight; tol likewise. */
  readonly target: number[][] = [];
  readonly tolerance: number[][] = [];
  readonly successorTarget: number[];
  readonly successorTolerance: number[];
  /**
   * pairs[r × n + s]: partitions that r replicates and s succeeds, i.e. what s inherits when r
   * leaves. pairLimit is how many of them are no concentration yet: the expectation (r's share
   * times s's fraction of successors) plus half a replica, or Infinity where the expectation is
   * large (few nodes): there every node inherits many replicas and a tolerance of 15 % has room.
   */
  readonly pairs: Float64Array;
  readonly pairLimit: Float64Array;
  readonly nodeCount: number;
  private readonly pairKeys: number[] = [];
  private readonly pairDeltas: number[] = [];
  /** X's tokens per gap (gap q is [pos(q), pos(q+1))), and everyone's. */
  readonly ownPerGap: number[];
  readonly tokensPerGap: number[];
  /** The cost of each node's current counts, kept up to date by place and unplace. */
  private readonly cost: number[];
  /** A candidate's count changes, per node × rank, and the nodes they touch. */
  private readonly scratch: Float64Array;
  private readonly touched: number[] = [];
  private readonly isTouched: Uint8Array;
  readonly changes: Changes;

  constructor(ring: Ring, weight: number) {
    const weights = [...ring.nodes.map((n) => n.weight), weight];
    const n = weights.length;
    this.x = n - 1;
    this.partitions = ring.partitions;
    this.rf = ring.replicationFactor;
    this.depth = this.rf + 1;
    const index = buildTokenIndex(ring.nodes);
    this.positions = index.positions.slice();
    this.owners = index.owners.slice();
    this.counts = new Float64Array(n * this.depth);
    this.scratch = new Float64Array(n * this.depth);
    this.isTouched = new Uint8Array(n);
    this.changes = {
      count: 0,
      partition: new Int32Array(this.partitions),
      rank: new Int32Array(this.partitions),
      offset: new Float64Array(this.partitions),
    };
    for (let p = 0; p <= this.partitions; p++) this.starts.push(partitionPosition(p, this.partitions));
    for (let p = 0; p < this.partitions; p++) {
      const walk = walkFrom(index, this.starts[p]!, this.depth, RING_SIZE);
      this.walkOwners.push(walk.owners);
      this.walkOffsets.push(walk.offsets);
      walk.owners.forEach((owner, rank) => this.counts[owner * this.depth + rank]!++);
    }
    this.ownPerGap = new Array<number>(this.partitions).fill(0);
    this.tokensPerGap = new Array<number>(this.partitions).fill(0);
    for (const position of this.positions) this.tokensPerGap[this.gapOf(position)]!++;

    const real = weights.map((w, i) => ({ id: String(i), weight: w }));
    for (let j = 0; j < this.rf; j++) {
      const giants = Array.from({ length: j }, (_, g) => ({ id: `giant${g}`, weight: UNBOUNDED_WEIGHT }));
      const shares = weightedShares([...real, ...giants], this.partitions, this.rf);
      const row = real.map((r) => shares.get(r.id) ?? 0);
      this.target.push(row);
      this.tolerance.push(row.map(balanceTolerance));
    }
    // Every partition has a successor once there are more nodes than replicas. A node that holds
    // every partition can never be one; the others share the successors by weight.
    const share = this.target[0]!;
    const open = weights.map((w, i) => (share[i]! < this.partitions - 1e-9 ? w : 0));
    const openWeight = open.reduce((a, b) => a + b, 0);
    const successors = n > this.rf ? this.partitions : 0;
    this.successorTarget = open.map((w) => (openWeight > 0 ? (successors * w) / openWeight : 0));
    this.successorTolerance = this.successorTarget.map(balanceTolerance);
    this.cost = weights.map((_, node) => this.nodeCost(node, false));
    this.nodeCount = n;
    this.pairs = new Float64Array(n * n);
    this.pairLimit = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let su = 0; su < n; su++) {
        const expected = (share[r]! * this.successorTarget[su]!) / this.partitions;
        this.pairLimit[r * n + su] = expected < 1.5 ? expected + 0.5 : Infinity;
      }
    }
    for (let p = 0; p < this.partitions; p++) this.addPairs(this.walkOwners[p]!, +1);
  }

  private addPairs(walk: readonly number[], by: number): void {
    const successor = walk[this.rf];
    if (successor === undefined) return;
    for (let k = 0; k < this.rf; k++) this.pairs[walk[k]! * this.nodeCount + successor]! += by;
  }

  private bumpPair(replica: number, successor: number, by: number): void {
    const key = replica * this.nodeCount + successor;
    if (this.pairLimit[key] === Infinity) return;
    const at = this.pairKeys.indexOf(key);
    if (at >= 0) this.pairDeltas[at]! += by;
    else {
      this.pairKeys.push(key);
      this.pairDeltas.push(by);
    }
  }

  private pairCostDelta(): number {
    let delta = 0;
    for (let i = 0; i < this.pairKeys.length; i++) {
      const key = this.pairKeys[i]!;
      const limit = this.pairLimit[key]!;
      // In units of the inheriting node's tolerance: concentration only matters where it is small.
      const scale = this.tolerance[0]![key % this.nodeCount]!;
      const before = Math.max(0, this.pairs[key]! - limit) / scale;
      const after = Math.max(0, this.pairs[key]! + this.pairDeltas[i]! - limit) / scale;
      delta += COST_PAIRS * (after * after - before * before);
    }
    this.pairKeys.length = 0;
    this.pairDeltas.length = 0;
    return delta;
  }

  gapOf(position: number): number {
    return Math.floor((position * this.partitions) / RING_SIZE);
  }

  /** The cost of one node's counts, plus the scratch deltas when `withScratch`. */
  private nodeCost(node: number, withScratch: boolean): number {
    const base = node * this.depth;
    let cost = 0;
    let cumulative = 0;
    for (let rank = 0; rank < this.rf; rank++) {
      cumulative += this.counts[base + rank]! + (withScratch ? this.scratch[base + rank]! : 0);
      // Ranks 0 … rank are what the node keeps after j = rf−1−rank largest joins.
      const j = this.rf - 1 - rank;
      const d = (cumulative - this.target[j]![node]!) / this.tolerance[j]![node]!;
      if (j === 0) {
        const beyond = Math.max(0, Math.abs(d) - 0.9);
        cost += COST_LOAD * d * d + COST_LOAD * COST_LOAD_BOUND * beyond * beyond;
      } else {
        cost += (j === 1 ? COST_TAILS : COST_LEADERS) * d * d;
      }
    }
    const successors = this.counts[base + this.rf]! + (withScratch ? this.scratch[base + this.rf]! : 0);
    const ds = (successors - this.successorTarget[node]!) / this.successorTolerance[node]!;
    return cost + COST_SUCCESSORS * ds * ds;
  }

  /**
   * Fills `changes` with the partitions a token at `t` changes, from t's own partition backwards,
   * each with the rank X takes there. Stops at the first partition it does not change.
   */
  effect(t: number): void {
    const out = this.changes;
    out.count = 0;
    const q = this.gapOf(t);
    for (let step = 0; step < this.partitions; step++) {
      const p = (q - step + this.partitions) % this.partitions;
      const offset = (t - this.starts[p]! + RING_SIZE) % RING_SIZE;
      const owners = this.walkOwners[p]!;
      const offsets = this.walkOffsets[p]!;
      let rank = 0;
      while (rank < owners.length && offsets[rank]! < offset) {
        if (owners[rank] === this.x) return;
        rank++;
      }
      if (rank >= this.depth) return;
      out.partition[out.count] = p;
      out.rank[out.count] = rank;
      out.offset[out.count] = offset;
      out.count++;
    }
  }

  /**
   * Who is at rank `k` of a walk (`old`, with X at `xAt` or −1) once X enters it at rank `r` ≤ k:
   * X itself at r, after it the old walk from rank r on without X's old entry.
   */
  private ownerAfter(old: readonly number[], xAt: number, r: number, k: number): number | undefined {
    if (k === r) return this.x;
    const from = k - 1;
    return old[xAt >= 0 && from >= xAt ? from + 1 : from];
  }

  /** How much the cost changes if the partitions in `changes` take their new walks. */
  costDelta(): number {
    const c = this.changes;
    for (let i = 0; i < c.count; i++) {
      const old = this.walkOwners[c.partition[i]!]!;
      const xAt = old.indexOf(this.x);
      const r = c.rank[i]!;
      for (let k = r; k < this.depth; k++) {
        const before = old[k];
        const after = this.ownerAfter(old, xAt, r, k);
        if (before === after) continue;
        if (before !== undefined) this.bump(before, k, -1);
        if (after !== undefined) this.bump(after, k, +1);
      }
      const oldSuccessor = old[this.rf];
      const newSuccessor = this.ownerAfter(old, xAt, r, this.rf);
      for (let k = 0; k < this.rf; k++) {
        if (oldSuccessor !== undefined && old[k] !== undefined) this.bumpPair(old[k]!, oldSuccessor, -1);
        const replica = k < r ? old[k] : this.ownerAfter(old, xAt, r, k);
        if (newSuccessor !== undefined && replica !== undefined) this.bumpPair(replica, newSuccessor, +1);
      }
    }
    let delta = this.pairCostDelta();
    for (const node of this.touched) {
      delta += this.nodeCost(node, true) - this.cost[node]!;
      this.scratch.fill(0, node * this.depth, (node + 1) * this.depth);
      this.isTouched[node] = 0;
    }
    this.touched.length = 0;
    return delta;
  }

  private touch(node: number): void {
    if (this.isTouched[node] === 0) {
      this.isTouched[node] = 1;
      this.touched.push(node);
    }
  }

  private bump(node: number, rank: number, by: number): void {
    this.touch(node);
    this.scratch[node * this.depth + rank]! += by;
  }

  /** How many partitions X would newly replicate with the current `changes`. */
  replicasGained(): number {
    let gained = 0;
    for (let i = 0; i < this.changes.count; i++) {
      if (this.changes.rank[i]! >= this.rf) continue;
      const was = this.walkOwners[this.changes.partition[i]!]!.indexOf(this.x);
      if (was < 0 || was >= this.rf) gained++;
    }
    return gained;
  }

  load(node: number): number {
    let sum = 0;
    for (let rank = 0; rank < this.rf; rank++) sum += this.counts[node * this.depth + rank]!;
    return sum;
  }

  spreadCost(t: number, tokenCount: number): number {
    const q = this.gapOf(t);
    // The gap distance between X's tokens if they were spread evenly.
    const spacing = Math.max(1, this.partitions / tokenCount);
    let nearest = this.partitions;
    for (let d = 0; d < Math.min(spacing, this.partitions); d++) {
      const ahead = this.ownPerGap[(q + d) % this.partitions]!;
      const behind = this.ownPerGap[(q - d + this.partitions) % this.partitions]!;
      if (ahead > 0 || behind > 0) {
        nearest = d;
        break;
      }
    }
    const crowd = this.tokensPerGap[q]! / Math.max(1, this.positions.length / this.partitions);
    return (
      COST_SPREAD_OWN * (this.ownPerGap[q]! + Math.max(0, 1 - nearest / spacing)) + COST_SPREAD_CROWD * crowd
    );
  }

  /** The whole cost of a token at `t` given the others. */
  slotCost(t: number, tokenCount: number): number {
    this.effect(t);
    return (this.changes.count > 0 ? this.costDelta() : 0) + this.spreadCost(t, tokenCount);
  }

  private setWalk(p: number, owners: number[], offsets: number[]): void {
    this.addPairs(this.walkOwners[p]!, -1);
    this.addPairs(owners, +1);
    this.walkOwners[p]!.forEach((owner, rank) => this.counts[owner * this.depth + rank]!--);
    owners.forEach((owner, rank) => this.counts[owner * this.depth + rank]!++);
    for (const owner of this.walkOwners[p]!) this.touch(owner);
    for (const owner of owners) this.touch(owner);
    this.walkOwners[p] = owners;
    this.walkOffsets[p] = offsets;
  }

  private refreshCosts(): void {
    for (const node of this.touched) {
      this.cost[node] = this.nodeCost(node, false);
      this.isTouched[node] = 0;
    }
    this.touched.length = 0;
  }

  /** Adds X's token at `t`, updating walks, counts and costs. */
  place(t: number): void {
    this.effect(t);
    const c = this.changes;
    for (let i = 0; i < c.count; i++) {
      const p = c.partition[i]!;
      const owners: number[] = [];
      const offsets: number[] = [];
      const old = this.walkOwners[p]!;
      const oldOffsets = this.walkOffsets[p]!;
      const xAt = old.indexOf(this.x);
      for (let k = 0; k < this.depth; k++) {
        const owner = k < c.rank[i]! ? old[k] : this.ownerAfter(old, xAt, c.rank[i]!, k);
        if (owner === undefined) break;
        owners.push(owner);
        offsets.push(owner === this.x ? c.offset[i]! : oldOffsets[old.indexOf(owner)]!);
      }
      this.setWalk(p, owners, offsets);
    }
    const at = lowerBound(this.positions, t);
    this.positions.splice(at, 0, t);
    this.owners.splice(at, 0, this.x);
    this.ownPerGap[this.gapOf(t)]!++;
    this.tokensPerGap[this.gapOf(t)]!++;
    this.refreshCosts();
  }

  /** Takes X's token at `t` out again: the partitions whose walk met X first there walk anew. */
  unplace(t: number): void {
    const q = this.gapOf(t);
    const affected: number[] = [];
    for (let step = 0; step < this.partitions; step++) {
      const p = (q - step + this.partitions) % this.partitions;
      const offset = (t - this.starts[p]! + RING_SIZE) % RING_SIZE;
      const rank = this.walkOwners[p]!.indexOf(this.x);
      if (rank < 0 || this.walkOffsets[p]![rank] !== offset) break;
      affected.push(p);
    }
    const at = lowerBound(this.positions, t);
    this.positions.splice(at, 1);
    this.owners.splice(at, 1);
    for (const p of affected) {
      const walk = walkFrom(this, this.starts[p]!, this.depth, RING_SIZE);
      this.setWalk(p, walk.owners, walk.offsets);
    }
    this.ownPerGap[q]!--;
    this.tokensPerGap[q]!--;
    this.refreshCosts();
  }

  /**
   * The best free position for a token, or null when no slot has room. With `tokensLeft` at
   * least X's missing replicas, a slot's gain is counted per replica it brings, so that one
   * precise token is preferred to one that also takes a partition from a node already short.
   */
  bestSlot(tokenCount: number, tokensLeft: number): number | null {
    const plentiful = tokensLeft >= this.target[0]![this.x]! - this.load(this.x);
    let best: number | null = null;
    let bestCost = Infinity;
    let j = 0;
    for (let q = 0; q < this.partitions; q++) {
      const end = this.starts[q + 1]!;
      let low = this.starts[q]!;
      // The slots of gap q: before each of its tokens, then before the next partition's position.
      for (;;) {
        const high = j < this.positions.length && this.positions[j]! < end ? this.positions[j]! : end;
        if (high > low) {
          const t = low + Math.floor((high - 1 - low) / 2);
          let cost = this.slotCost(t, tokenCount);
          const changed = this.changes.count > 0;
          if (plentiful && cost < 0) cost /= Math.max(1, this.replicasGained());
          if (cost < bestCost) {
            bestCost = cost;
            best = t;
          }
          // A slot that changes nothing has the same effect as every later slot of its gap.
          if (!changed) {
            while (j < this.positions.length && this.positions[j]! < end) j++;
            break;
          }
        }
        if (high === end) break;
        low = high + 1;
        j++;
      }
    }
    return best;
  }
}

/**
 * The tokens a node of `weight` takes when it joins `ring`: `ring.vnodesPerWeight × weight`
 * distinct free positions, ascending. Deterministic: the same ring and weight give the same tokens.
 */
export function allocateTokens(ring: Ring, weight: number): number[] {
  const count = ring.vnodesPerWeight * weight;
  const state = new Allocation(ring, weight);
  const tokens: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = state.bestSlot(count, count - i);
    // Rings are bounded far below the 2^32 positions, so some slot always has room.
    if (t === null) throw new Error("no free ring position left for a token");
    state.place(t);
    tokens.push(t);
  }
  // The greedy pass chose each token knowing only the ones before it; revisiting each one with
  // all the others in place recovers most of what that myopia costs.
  for (let pass = 0; pass < REVISIT_PASSES; pass++) {
    let moved = 0;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      state.unplace(t);
      const stay = state.slotCost(t, count);
      const best = state.bestSlot(count, 0);
      if (best !== null && best !== t && state.slotCost(best, count) < stay - 1e-9) {
        tokens[i] = best;
        state.place(best);
        moved++;
      } else {
        state.place(t);
      }
    }
    if (moved === 0) break;
  }
  return tokens.sort((a, b) => a - b);
}
