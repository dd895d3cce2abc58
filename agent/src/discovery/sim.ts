/**
 * A deterministic simulation of the bootstrap agreement (`protocol.ts`): one seed drives a set of
 * brand-new nodes that discover each other only partly and late, over a network that loses and
 * delays messages, is split into groups that are joined later, and crashes nodes (a crash keeps
 * only what the protocol persists). A safety phase with faults is followed by a liveness phase
 * without them; then the checkers run:
 *
 *  - agreement: every node that founded a cluster holds the same founder set and cluster id as
 *    every other founder of that cluster, and every member of a committed founder set founded it;
 *  - one cluster: with fewer than 2 × expect nodes, all of them end in one cluster (when the
 *    network is whole at the end, one connected component);
 *  - liveness: every node ends in a cluster (founded or joined).
 *
 * A failure names the seed; `runBootstrapSim(seed)` replays it.
 */
import { Random } from "../sim/random.js";
import { BootstrapProtocol, clusterIdOf, type Attempt, type PrepareReply, type Report } from "./protocol.js";

export interface BootstrapSimOptions {
  readonly nodes?: number;
  readonly expect?: number;
  readonly faultTicks?: number;
  readonly livenessTicks?: number;
}

type Payload =
  | { kind: "probe"; token: number }
  | { kind: "report"; report: Report; token: number }
  | { kind: "prepare"; attempt: Attempt }
  | { kind: "prepareReply"; nonce: string; reply: PrepareReply };

interface InFlight {
  at: number;
  from: number;
  to: number;
  payload: Payload;
}

interface SimNode {
  readonly id: string;
  proto: BootstrapProtocol;
  /** Node indexes this node's mDNS browser has heard (grows over time). */
  readonly discovered: Set<number>;
  up: boolean;
  /** The cluster it joined through a member (the join path itself is the agent's). */
  joined: string | null;
}

export interface BootstrapSimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly expect: number;
  readonly clusters: string[];
  readonly ticks: number;
  readonly violations: string[];
}

export function runBootstrapSim(seed: number, opts: BootstrapSimOptions = {}): BootstrapSimResult {
  const rng = new Random(seed);
  const expect = opts.expect ?? rng.int(1, 5);
  const n = opts.nodes ?? rng.int(expect, 2 * expect - 1);
  const faultTicks = opts.faultTicks ?? 400;
  const livenessTicks = opts.livenessTicks ?? 1500;
  const netRng = rng.fork(1);
  const protoRng = rng.fork(2);
  const loss = netRng.next() * 0.3;
  const maxDelay = netRng.int(1, 8);
  // Network groups joined at `mergeTick` (boards plugged into switches that are linked later).
  const groups = Array.from({ length: n }, () => netRng.int(0, netRng.int(0, 2)));
  const mergeTick = netRng.int(0, faultTicks);
  // Each directed pair hears each other's mDNS at some tick, some never during the fault phase.
  const hearAt = Array.from({ length: n }, () =>
    Array.from({ length: n }, () => (netRng.chance(0.3) ? Infinity : netRng.int(0, faultTicks))),
  );
  const ids = Array.from({ length: n }, (_, i) => `n${(netRng.int(0, 0xffff) * 64 + i).toString(36)}`);
  const make = (i: number, durable?: ReturnType<BootstrapProtocol["durable"]>): BootstrapProtocol =>
    new BootstrapProtocol({
      id: ids[i]!,
      expect,
      settleTicks: 5,
      prepareTimeoutTicks: 40,
      reportTtlTicks: 60,
      random: () => protoRng.next(),
      ...(durable ? { durable } : {}),
    });
  const nodes: SimNode[] = ids.map((id, i) => ({
    id,
    proto: make(i),
    discovered: new Set<number>(),
    up: true,
    joined: null,
  }));
  const byId = new Map(ids.map((id, i) => [id, i]));
  let queue: InFlight[] = [];
  const violations: string[] = [];

  let now = 0;
  const faults = (): boolean => now < faultTicks;
  const connected = (a: number, b: number): boolean => now >= mergeTick || groups[a] === groups[b];
  const send = (from: number, to: number, payload: Payload): void => {
    if (faults() && netRng.chance(loss)) return;
    queue.push({ at: now + (faults() ? netRng.int(1, maxDelay) : 1), from, to, payload });
  };
  /** The report a node gives: the protocol's, or a member's once it joined. */
  const reportOf = (node: SimNode): Report =>
    node.joined ? { id: node.id, state: "member", clusterId: node.joined, known: [] } : node.proto.report();

  const deliver = (m: InFlight): void => {
    const node = nodes[m.to]!;
    if (!node.up || !connected(m.from, m.to)) return;
    const p = m.payload;
    if (p.kind === "probe") send(m.to, m.from, { kind: "report", report: reportOf(node), token: p.token });
    else if (p.kind === "report") node.proto.observe(p.report, p.token);
    else if (p.kind === "prepare") {
      const reply: PrepareReply = node.joined
        ? { granted: false, reason: "member", report: reportOf(node) }
        : node.proto.onPrepare(p.attempt);
      send(m.to, m.from, { kind: "prepareReply", nonce: p.attempt.nonce, reply });
    } else node.proto.onPrepareReply(nodes[m.from]!.id, p.nonce, p.reply);
  };

  const step = (): void => {
    const due = queue.filter((m) => m.at <= now);
    queue = queue.filter((m) => m.at > now);
    for (const m of due) deliver(m);
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      if (faults() && node.up && netRng.chance(0.002)) {
        // Crash: only what the protocol persists survives.
        node.up = false;
        node.proto = make(i, node.proto.durable());
        // Its connections die with it: nothing sent to or by the old process arrives later.
        queue = queue.filter((m) => m.to !== i && m.from !== i);
        node.discovered.clear();
      } else if (!node.up && (!faults() || netRng.chance(0.05))) node.up = true;
      if (!node.up) continue;
      for (let j = 0; j < n; j++) {
        if (j !== i && connected(i, j) && (hearAt[j]![i]! <= now || !faults())) node.discovered.add(j);
      }
      if (node.joined) continue;
      const out = node.proto.outcome();
      if (out?.type === "join") {
        node.joined = out.clusterId;
        continue;
      }
      // Probe what mDNS showed plus what peers gossiped, every few ticks.
      if (now % 3 === i % 3) {
        const targets = new Set(node.discovered);
        for (const id of node.proto.known()) {
          const j = byId.get(id);
          if (j !== undefined && j !== i) targets.add(j);
        }
        for (const j of targets) send(i, j, { kind: "probe", token: node.proto.probeToken() });
      }
      for (const a of node.proto.tick()) {
        if (a.type === "prepare") send(i, byId.get(a.to)!, { kind: "prepare", attempt: a.attempt });
      }
    }
    now++;
  };

  while (now < faultTicks + livenessTicks) {
    step();
    if (!faults() && nodes.every((x) => x.joined !== null || x.proto.outcome()?.type === "found")) break;
  }
  check(nodes, expect, violations);
  const clusters = [...new Set(nodes.map((x) => clusterOf(x)).filter((c): c is string => c !== null))];
  if (n < 2 * expect && clusters.length > 1)
    violations.push(`${clusters.length} clusters formed among ${n} nodes with expect ${expect}`);
  return { seed, nodes: n, expect, clusters, ticks: now, violations };
}

function clusterOf(node: SimNode): string | null {
  if (node.joined) return node.joined;
  const out = node.proto.outcome();
  return out?.type === "found" ? out.clusterId : null;
}

function check(nodes: SimNode[], expect: number, violations: string[]): void {
  const founded = new Map<string, { attempt: Attempt; clusterId: string }>();
  for (const node of nodes) {
    const out = node.proto.outcome();
    if (out?.type === "found") founded.set(node.id, out);
    if (clusterOf(node) === null) violations.push(`${node.id} is in no cluster at the end (liveness)`);
  }
  for (const [id, f] of founded) {
    if (!f.attempt.founders.includes(id)) violations.push(`${id} founded a cluster it is not a founder of`);
    if (f.attempt.founders.length !== expect)
      violations.push(`${id} founded with ${f.attempt.founders.length} founders, expected ${expect}`);
    if (clusterIdOf(f.attempt) !== f.clusterId)
      violations.push(`${id} holds a cluster id not of its attempt`);
    for (const other of f.attempt.founders) {
      const o = founded.get(other);
      if (!o) violations.push(`${other} is a founder of ${f.clusterId} (by ${id}) but never founded it`);
      else if (o.clusterId !== f.clusterId || o.attempt.founders.join() !== f.attempt.founders.join())
        violations.push(`founders ${id} and ${other} disagree: ${f.clusterId} vs ${o.clusterId}`);
    }
  }
}
