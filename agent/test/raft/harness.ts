/**
 * A tiny synchronous cluster for scenario tests: every node's Ready is persisted to its
 * MemoryStorage and its messages delivered at once, until the cluster is quiet. Unlike the
 * simulator there is no time or fault model unless a test drops or filters messages itself.
 */
import {
  MemoryStorage,
  RawNode,
  type BugName,
  type Entry,
  type Message,
  type RaftConfig,
} from "../../src/raft/index.js";
import { xorshift32 } from "../../src/node/jitter.js";

/** Election jitter from a fixed seed, so scenario tests replay the same way. */
export const seeded = xorshift32;

export interface TestNode {
  id: string;
  raw: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  /** Read states handed out, with their context decoded as text. */
  reads: { index: number; context: string }[];
}

export class Cluster {
  readonly nodes = new Map<string, TestNode>();
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true;
  readonly delivered: Message[] = [];

  constructor(
    ids: string[],
    readonly opts: Partial<RaftConfig> & { bugs?: ReadonlySet<BugName> } = {},
    voters: string[] = ids,
  ) {
    for (const id of ids)
      this.add(id, voters.includes(id) ? MemoryStorage.bootstrap(voters) : new MemoryStorage());
  }

  add(id: string, storage: MemoryStorage, applied = 0): TestNode {
    const raw = new RawNode({
      id,
      group: 1,
      storage,
      random: seeded(id.charCodeAt(id.length - 1) * 7919),
      applied,
      ...this.opts,
    });
    const node: TestNode = { id, raw, storage, applied: [], reads: [] };
    this.nodes.set(id, node);
    return node;
  }

  node(id: string): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Processes Readies and delivers messages until nothing is left to do. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const outbox: Message[] = [];
      let busy = false;
      for (const n of this.nodes.values()) {
        if (!n.raw.hasReady()) continue;
        busy = true;
        const rd = n.raw.ready();
        if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        outbox.push(...rd.earlyMessages, ...rd.messages);
        n.applied.push(...rd.committedEntries);
        for (const rs of rd.readStates) n.reads.push({ index: rs.index, context: dec(rs.context) });
        n.raw.advance(rd);
      }
      for (const m of outbox) {
        if (!this.filter(m)) continue;
        const to = this.nodes.get(m.to);
        if (!to) continue;
        this.delivered.push(m);
        to.raw.step(m);
      }
      if (!busy && outbox.length === 0) return;
    }
    throw new Error("cluster did not settle");
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raw.tick();
      this.settle();
    }
  }

  leader(): TestNode | undefined {
    return [...this.nodes.values()].find((n) => n.raw.status().role === "leader");
  }

  elect(id: string): TestNode {
    const n = this.node(id);
    n.raw.campaign();
    this.settle();
    if (n.raw.status().role !== "leader") throw new Error(`${id} did not win (role ${n.raw.status().role})`);
    return n;
  }

  isolate(id: string): void {
    this.filter = (m) => m.from !== id && m.to !== id;
  }

  heal(): void {
    this.filter = () => true;
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export const userData = (n: TestNode): string[] =>
  n.applied.filter((e) => e.data.length > 0 && e.type === "normal").map((e) => dec(e.data));
