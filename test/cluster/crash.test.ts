/**
 * Crash safety with real processes, real disk and real TCP: three agents under write load, the
 * leader killed with SIGKILL, then every node killed and restarted. Every acknowledged write
 * must still be there, and the history of the contended keys must be linearizable.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  checkKvHistory,
  formatHistory,
  type KvInput,
  type KvOutput,
  type Operation,
} from "../../agent/src/check/linearizability.js";
import { LocalCluster } from "../support/local-cluster.js";

const CONTENDED = ["lin/a", "lin/b", "lin/c", "lin/d"];
const REQUEST_TIMEOUT_MS = 3000;

interface HttpAnswer {
  status: number;
  body: string;
  version: string | null;
}

async function call(
  cluster: LocalCluster,
  api: string,
  method: string,
  path: string,
  body?: string,
): Promise<HttpAnswer> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${cluster.token}` },
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: res.status, body: await res.text(), version: res.headers.get("x-ringleader-version") };
}

class Workload {
  readonly history: Operation[] = [];
  readonly acked = new Map<string, string>();
  readonly unknown = new Set<string>();
  private opId = 0;
  private stopped = false;
  private readonly t0 = performance.now();
  /** Per contended key: the value a version stands for (every written value is unique). */
  private readonly valueOfVersion = new Map<string, string>();
  errors = 0;

  constructor(
    private readonly cluster: LocalCluster,
    private readonly live: () => string[],
  ) {}

  private now(): number {
    return performance.now() - this.t0;
  }

  private pickApi(): string {
    const ids = this.live();
    return this.cluster.nodes.get(ids[Math.floor(Math.random() * ids.length)]!)!.api;
  }

  async client(clientId: number): Promise<void> {
    let seq = 0;
    while (!this.stopped) {
      seq++;
      const r = Math.random();
      if (r < 0.5) await this.uniquePut(clientId, seq);
      else await this.contended(clientId, seq, r);
    }
  }

  private async uniquePut(clientId: number, seq: number): Promise<void> {
    const key = `acked/${clientId}/${seq}`;
    const value = `v-${clientId}-${seq}`;
    try {
      const a = await call(this.cluster, this.pickApi(), "PUT", `/v1/kv/${key}`, value);
      if (a.status === 200) this.acked.set(key, value);
      else this.unknown.add(key);
    } catch {
      this.unknown.add(key);
      this.errors++;
    }
  }

  private async contended(clientId: number, seq: number, r: number): Promise<void> {
    const key = CONTENDED[Math.floor(Math.random() * CONTENDED.length)]!;
    const value = `c-${clientId}-${seq}`;
    const id = this.opId++;
    const call0 = this.now();
    let input: KvInput;
    let path = `/v1/kv/${key}`;
    let method = "PUT";
    let body: string | undefined = value;
    if (r < 0.7) {
      input = { kind: "get", key };
      method = "GET";
      body = undefined;
    } else if (r < 0.85) {
      input = { kind: "put", key, value };
    } else {
      // Compare-and-set against the last version this client saw, mapped to its value.
      const seen = [...this.valueOfVersion.entries()].filter(([k]) => k.startsWith(key + "@"));
      const pick =
        seen.length > 0 && Math.random() < 0.8 ? seen[Math.floor(Math.random() * seen.length)]! : null;
      const version = pick ? pick[0].slice(key.length + 1) : "0";
      input = { kind: "cas", key, expected: pick ? pick[1] : null, value };
      path += `?cas=${version}`;
    }
    let output: KvOutput | null = null;
    let ret = Infinity;
    try {
      const a = await call(this.cluster, this.pickApi(), method, path, body);
      if (input.kind === "get") {
        if (a.status === 200) output = { kind: "get", value: a.body };
        else if (a.status === 404) output = { kind: "get", value: null };
        if (a.status === 200 && a.version) this.valueOfVersion.set(`${key}@${a.version}`, a.body);
      } else if (a.status === 200) {
        output = input.kind === "cas" ? { kind: "cas", ok: true } : { kind: "ok" };
        const v = (JSON.parse(a.body) as { version: string }).version;
        this.valueOfVersion.set(`${key}@${v}`, value);
      } else if (a.status === 409 && input.kind === "cas") {
        output = { kind: "cas", ok: false };
      }
      if (output) ret = this.now();
    } catch {
      this.errors++;
    }
    this.history.push({ id, clientId: clientId * 1_000_000 + seq, input, call: call0, ret, output });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Appends reads done after the restart, so the checker also sees the final state. */
  record(input: KvInput, call0: number, output: KvOutput): void {
    this.history.push({
      id: this.opId++,
      clientId: -1 - this.opId,
      input,
      call: call0,
      ret: this.now(),
      output,
    });
  }

  clock(): number {
    return this.now();
  }
}

describe("crash safety of real agents (kill -9)", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("a new leader serves after the leader is killed, and no acknowledged write is lost", async () => {
    const all = [...cluster.nodes.keys()];
    const first = await cluster.waitFor("a leader", 20_000, () => cluster.leader());
    let live = [...all];
    const load = new Workload(cluster, () => live);
    const clients = Array.from({ length: 8 }, (_, i) => load.client(i));
    await cluster.waitFor("some acknowledged writes", 20_000, async () => load.acked.size >= 200);

    const killedAt = performance.now();
    cluster.kill9(first);
    live = all.filter((id) => id !== first);
    await cluster.waitExit(first);
    const second = await cluster.waitFor("a new leader", 20_000, async () => {
      const l = await cluster.leader(live);
      return l && l !== first ? l : null;
    });
    const ackedAtFailover = load.acked.size;
    await cluster.waitFor(
      "writes acknowledged by the new leader",
      20_000,
      async () => load.acked.size >= ackedAtFailover + 200,
    );
    const failoverMs = performance.now() - killedAt;
    load.stop();
    await Promise.all(clients);
    assert.notEqual(second, first);
    // Election timeout is 10-20 ticks of 50 ms: "a few election timeouts" is well under 10 s.
    assert.ok(failoverMs < 10_000, `new leader served writes ${Math.round(failoverMs)} ms after the kill`);

    // Kill everything, restart everything from disk.
    for (const id of live) cluster.kill9(id);
    for (const id of live) await cluster.waitExit(id);
    for (const id of all) cluster.restart(id);
    await cluster.waitFor("a leader after the full restart", 30_000, () => cluster.leader());

    let missing = 0;
    for (const [key, value] of load.acked) {
      const a = await cluster.waitFor(`a strong read of ${key}`, 10_000, async () => {
        try {
          const r = await call(cluster, cluster.endpoints()[0]!, "GET", `/v1/kv/${key}`);
          return r.status === 200 || r.status === 404 ? r : null;
        } catch {
          return null;
        }
      });
      if (a.status !== 200 || a.body !== value) missing++;
    }
    assert.equal(missing, 0, `${missing} of ${load.acked.size} acknowledged writes lost`);

    for (const key of CONTENDED) {
      const t = load.clock();
      const a = await call(cluster, cluster.endpoints()[1]!, "GET", `/v1/kv/${key}`);
      load.record({ kind: "get", key }, t, { kind: "get", value: a.status === 200 ? a.body : null });
    }
    const verdict = checkKvHistory(load.history);
    if (verdict.kind === "violation") assert.fail(`${verdict.explanation}\n${formatHistory(verdict.ops)}`);
    assert.notEqual(verdict.kind, "unknown", "the checker ran out of budget");
    process.stdout.write(
      `# crash test: ${load.acked.size} acked writes, ${load.unknown.size} unknown, ${load.history.length} contended ops, failover ${Math.round(failoverMs)} ms\n`,
    );
  });
});
