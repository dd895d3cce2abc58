/**
 * The questions to partition leaders, against real HTTP servers answering `/v1/status` as agents
 * do: only a leader's committed configuration confirms a removal or a joined voter.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { leaderExcludes, leadersHoldAsVoter } from "./removal-check.js";

const TOKEN = "rl_test";

interface Part {
  partition: number;
  role: string;
  term: number;
  voters: string[];
  learners: string[];
  committedConf?: { voters: string[]; learners: string[] };
}

/** Agents whose `/v1/status` partitions a test sets; a wrong token gets a 401. */
class FakeAgents {
  private readonly servers: Server[] = [];
  readonly apis: string[] = [];
  readonly parts: Part[][] = [];
  readonly hits: number[] = [];

  async start(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.parts.push([]);
      this.hits.push(0);
      const server = createServer((req, res) => {
        this.hits[i]!++;
        if (req.headers.authorization !== `Bearer ${TOKEN}` || req.url !== "/v1/status") {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: `n${i + 1}`, partitions: this.parts[i] }));
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      this.servers.push(server);
      this.apis.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map((s) => new Promise((r) => s.close(r)).then(() => s.closeAllConnections())),
    );
  }
}

const conf = (voters: string[], learners: string[] = []) => ({ voters, learners });

describe("leaderExcludes", () => {
  const agents = new FakeAgents();
  before(() => agents.start(3));
  after(() => agents.stop());

  it("confirms only a removal the leader has committed", async () => {
    agents.parts[0] = [{ partition: 5, role: "follower", term: 3, ...conf(["n1", "n2", "n3"]) }];
    // n2 leads; it appended n4's removal but has not committed it yet.
    agents.parts[1] = [
      {
        partition: 5,
        role: "leader",
        term: 3,
        ...conf(["n1", "n2", "n3"]),
        committedConf: conf(["n1", "n2", "n3", "n4"]),
      },
    ];
    assert.equal(await leaderExcludes(agents.apis, TOKEN, 5, "n4"), false);
    agents.parts[1]![0]!.committedConf = conf(["n1", "n2", "n3"]);
    assert.equal(await leaderExcludes(agents.apis, TOKEN, 5, "n4"), true);
    // A learner is still in the configuration.
    agents.parts[1]![0]!.committedConf = conf(["n1", "n2", "n3"], ["n4"]);
    assert.equal(await leaderExcludes(agents.apis, TOKEN, 5, "n4"), false);
  });

  it("never confirms from a leader too old to report its committed configuration", async () => {
    agents.parts[1] = [{ partition: 5, role: "leader", term: 3, ...conf(["n1", "n2", "n3"]) }];
    assert.equal(await leaderExcludes(agents.apis, TOKEN, 5, "n4"), false);
  });

  it("skips agents that do not answer or refuse, and says no when no leader answers", async () => {
    agents.parts[1] = [
      { partition: 5, role: "leader", term: 3, ...conf(["n1", "n2"]), committedConf: conf(["n1", "n2"]) },
    ];
    const dead = "http://127.0.0.1:9"; // Nothing listens on the discard port here.
    assert.equal(await leaderExcludes([dead, agents.apis[1]!], TOKEN, 5, "n4", 1000), true);
    assert.equal(await leaderExcludes(agents.apis, "wrong", 5, "n4", 1000), false);
    assert.equal(await leaderExcludes([dead, agents.apis[0]!], TOKEN, 5, "n4", 1000), false);
  });
});

describe("leadersHoldAsVoter", () => {
  const agents = new FakeAgents();
  before(() => agents.start(3));
  after(() => agents.stop());

  it("holds only when the newest leader of every partition has committed the node as a voter", async () => {
    const led = (partition: number, term: number, committed: string[], learners: string[] = []): Part => ({
      partition,
      role: "leader",
      term,
      ...conf(committed, learners),
      committedConf: conf(committed, learners),
    });
    agents.parts[0] = [led(0, 2, ["n1", "n2", "n4"]), led(1, 1, ["n1", "n2", "n3"])];
    agents.parts[1] = [led(1, 4, ["n2", "n3", "n4"])]; // Partition 1's newer leader.
    agents.parts[2] = [led(2, 1, ["n1", "n3"], ["n4"])];
    assert.equal(await leadersHoldAsVoter(agents.apis, TOKEN, "n4", [0, 1]), true);
    assert.equal(await leadersHoldAsVoter(agents.apis, TOKEN, "n4", [0, 1, 2]), false, "a learner in 2");
    assert.equal(await leadersHoldAsVoter(agents.apis, TOKEN, "n4", [0, 1, 3]), false, "3 has no leader");
    assert.equal(await leadersHoldAsVoter(agents.apis.slice(0, 1), TOKEN, "n4", [1]), false, "old leader");
    assert.equal(await leadersHoldAsVoter(agents.apis, TOKEN, "n4", []), true, "nothing to hold");
  });
});
