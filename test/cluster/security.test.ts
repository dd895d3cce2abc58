/**
 * Bad input against real agents: a node with the wrong secret cannot join or read, a wrong
 * token gets 401, and garbage on the peer port or an oversized body leaves the node serving.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { CLI, LocalCluster } from "../support/local-cluster.js";

function hostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

describe("bad input against real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  let outsider: ChildProcess | null = null;
  let outsiderDir = "";
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
    await cluster.waitFor("a leader", 20_000, () => cluster.leader());
    // Every partition led, so the first write is not an election's 503.
    await cluster.waitHealthy();
  });
  after(async () => {
    if (outsider && outsider.exitCode === null) {
      outsider.kill("SIGKILL");
      await once(outsider, "exit");
    }
    if (outsiderDir) await rm(outsiderDir, { recursive: true, force: true });
    await cluster?.stop();
  });

  /** A PUT that, like any client, tries again on 503 (an election or a transfer in progress). */
  const put = async (base: string, key: string, body: string | Uint8Array, token = cluster.token) => {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${base}/v1/kv/${key}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}` },
        body,
      });
      if (res.status !== 503 || attempt >= 10) return res;
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  };

  it("a missing or wrong token gets 401 and reveals nothing", async () => {
    const base = cluster.endpoints()[0]!;
    assert.equal((await put(base, "secret", "v")).status, 200);
    const wrong = await fetch(`${base}/v1/kv/secret`, { headers: { authorization: "Bearer not-the-token" } });
    assert.equal(wrong.status, 401);
    assert.doesNotMatch(await wrong.text(), /"v"|secret/);
    assert.equal((await fetch(`${base}/v1/kv/secret`)).status, 401);
  });

  it("garbage and a wrong-secret TLS client on the peer port are refused and counted; the node keeps serving", async () => {
    const node = [...cluster.nodes.values()][0]!;
    const before = await metric(node.api, "ringleader_transport_rejected_peers");
    const { host, port } = hostPort(node.peer);
    const raw = connect({ host, port });
    await once(raw, "connect");
    raw.write(Buffer.from("GET / HTTP/1.1\r\n\r\n\x00\xff\xfe garbage garbage"));
    raw.on("error", () => {});
    await new Promise((r) => raw.once("close", r));
    const tls = tlsConnect({
      host,
      port,
      pskCallback: () => ({ psk: Buffer.alloc(32, 1), identity: "local" }),
      ciphers: "TLS_AES_128_GCM_SHA256",
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      checkServerIdentity: () => undefined,
    });
    tls.on("error", () => {});
    await new Promise((r) => tls.once("close", r));
    await cluster.waitFor("the refusals to be counted", 10_000, async () =>
      (await metric(node.api, "ringleader_transport_rejected_peers")) >= before + 2 ? true : null,
    );
    assert.equal((await put(node.api, "after-garbage", "still-serving")).status, 200);
  });

  it("an oversized body gets 413 and the node keeps serving", async () => {
    const base = cluster.endpoints()[1]!;
    const res = await put(base, "big", new Uint8Array(2 * 1024 * 1024));
    assert.equal(res.status, 413);
    assert.equal((await put(base, "small", "ok")).status, 200);
  });

  it("a node with the wrong secret cannot join, replicate or read", async () => {
    outsiderDir = await mkdtemp(join(tmpdir(), "ringleader-outsider-"));
    const config = join(outsiderDir, "ringleader.json");
    const init = spawn(process.execPath, [CLI, "init", "--name", "local", "--out", config], {
      stdio: "ignore",
    });
    const [code] = (await once(init, "exit")) as [number];
    assert.equal(code, 0);
    // It claims to be n4 of the same cluster name and lists the real nodes as its peers.
    const peers = [...cluster.nodes.values()].map((n) => `${n.id}=${n.peer}`).concat("n4=127.0.0.1:0");
    outsider = spawn(
      process.execPath,
      [
        CLI,
        "agent",
        "--config",
        config,
        "--data",
        join(outsiderDir, "data"),
        "--id",
        "n4",
        "--api",
        "127.0.0.1:0",
        "--peer",
        "127.0.0.1:0",
        "--peers",
        peers.join(","),
        "--tick-ms",
        "50",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    outsider.stderr!.on("data", (b: Buffer) => (log += b.toString()));
    const api = await cluster.waitFor("the outsider's API address", 20_000, async () => {
      const m = /agent started .*api=(http:\/\/[0-9.]+:\d+)/.exec(log);
      return m ? m[1]! : null;
    });
    const node = [...cluster.nodes.values()][0]!;
    const rejectedBefore = await metric(node.api, "ringleader_transport_rejected_peers");
    await cluster.waitFor("the cluster to refuse the outsider", 20_000, async () =>
      (await metric(node.api, "ringleader_transport_rejected_peers")) > rejectedBefore ? true : null,
    );
    // Its own token is not the cluster's, and with its own token it sees no leader and no data.
    const read = await fetch(`${api}/v1/kv/secret?consistency=eventual`, {
      headers: {
        authorization: `Bearer ${JSON.parse(await (await import("node:fs/promises")).readFile(config, "utf8")).token}`,
      },
    });
    // It has no quorum and none of the cluster's data: 404 if it hosts the key's partition, 503
    // (no node it knows holds it) otherwise; never the value.
    assert.ok(read.status === 404 || read.status === 503, `outsider answered ${read.status}`);
    assert.doesNotMatch(await read.text(), /"v"/);
    const status = (await (
      await fetch(`${cluster.endpoints()[0]}/v1/status`, {
        headers: { authorization: `Bearer ${cluster.token}` },
      })
    ).json()) as { members: { id: string }[] };
    assert.deepEqual(status.members.map((m) => m.id).sort(), ["n1", "n2", "n3"]);
  });
});
