/**
 * Discovery on a running board: advertise over mDNS, find and verify the others, run the
 * bootstrap agreement while the node is new, and afterwards keep watching the LAN for address
 * changes of members and for another cluster with our name (split brain).
 *
 * Trust: an mDNS record is only a hint. A node counts (toward `expect`, as a founder, as a
 * cluster to join, as an address) only once it answered our authenticated probe (`wire.ts`).
 * A candidate whose answer fails the proof is a rogue (wrong secret, or a replay) and is
 * counted; so is every probe we receive that fails our check.
 */
import { randomBytes } from "node:crypto";
import type { NodeId } from "../raft/index.js";
import type { PeerAddress } from "../transport/tcp-transport.js";
import type { Logger } from "../transport/types.js";
import type { Mdns } from "./mdns.js";
import {
  BootstrapProtocol,
  fingerprint,
  type Attempt,
  type Durable,
  type PrepareReply,
  type Report,
} from "./protocol.js";
import {
  DiscoveryWireError,
  ProofError,
  WIRE_VERSION,
  checkRequest,
  discoveryKey,
  newNonce,
  open,
  probe,
  seal,
  type NodeCard,
  type ProbeAnswer,
} from "./wire.js";

export interface DurableBootstrapState {
  load(): Durable;
  save(state: Durable): Promise<void>;
}

export interface DiscoveryOptions {
  readonly nodeId: NodeId;
  readonly clusterName: string;
  readonly secret: string;
  readonly version: string;
  /** Founders of a new cluster (`--bootstrap-expect`). */
  readonly expect: number;
  /** API base URLs to probe besides what mDNS shows (`--join` seeds). */
  readonly seeds: readonly string[];
  /** The mDNS implementation; null when multicast is off (seeds only). */
  readonly mdns: Mdns | null;
  /** The host other nodes reach us at, for the API URL we hand out. */
  readonly advertiseHost: string;
  readonly apiPort: number;
  readonly peerPort: number;
  /** One protocol tick; probes go out every `probeEveryTicks` ticks. */
  readonly tickMs: number;
  readonly probeEveryTicks?: number;
  readonly durable: DurableBootstrapState;
  readonly logger: Logger;
  /** Only join the cluster whose id starts with this; never found one (`--fold-into`). */
  readonly onlyCluster?: string;
}

/** What the bootstrap phase decided. */
export type BootstrapOutcome =
  | {
      readonly kind: "found";
      readonly clusterId: string;
      readonly founders: readonly NodeId[];
      /** Peer addresses of the founders we verified (the rest come from discovery later). */
      readonly peers: ReadonlyMap<NodeId, PeerAddress>;
    }
  | { readonly kind: "join"; readonly clusterId: string; readonly via: string };

/** What the running agent tells discovery about itself. */
export interface MemberSource {
  clusterId(): string | null;
  /** API base URLs of the members in our member table (the persisted peer list). */
  memberApis(): string[];
}

interface Verified {
  readonly url: string;
  readonly card: NodeCard;
  report: Report;
  /** Our tick when it last answered a probe. */
  answeredAt: number;
}

/**
 * Probe rounds a verified peer may leave unanswered, once we are a member, before we forget it:
 * it died without a goodbye, or left. Forgetting drops it from `/v1/status`, from the addresses
 * the transport prefers (the member table remains), and from the split-brain alarm. Its address
 * stays a candidate, so a board that comes back is verified again at its next answer.
 */
const FORGET_AFTER_PROBES = 5;

export interface ForeignNode {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly url: string;
  readonly firstSeen: number;
}

export class DiscoveryService {
  readonly key: Buffer;
  readonly counters = {
    /** Candidates whose answer failed the proof. */
    rogueAnswers: 0,
    /** Probes to us that failed the proof. */
    rejectedProbes: 0,
    /** Bad discovery bodies (not JSON, missing fields). */
    badProbes: 0,
    /** Answers from nodes of another cluster with our name. */
    foreignAnswers: 0,
    probesSent: 0,
    probeFailures: 0,
    /** Raft batches refused because they came from a node of another cluster. */
    refusedForeignTraffic: 0,
  };
  private protocol: BootstrapProtocol | null = null;
  private member: MemberSource | null = null;
  private readonly verified = new Map<NodeId, Verified>();
  private readonly candidates = new Set<string>();
  private readonly inFlight = new Set<string>();
  private readonly lastProbe = new Map<string, number>();
  private readonly loggedRogues = new Set<string>();
  private readonly foreign = new Map<NodeId, ForeignNode>();
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private savedKey = "";
  private saving: Promise<void> = Promise.resolve();
  private publishedKey = "";
  private stopped = false;

  constructor(private readonly opts: DiscoveryOptions) {
    this.key = discoveryKey(opts.secret, opts.clusterName);
    for (const s of opts.seeds) this.candidates.add(seedUrl(s));
  }

  get card(): NodeCard {
    const h = this.opts.advertiseHost;
    return {
      id: this.opts.nodeId,
      api: `http://${h.includes(":") ? `[${h}]` : h}:${this.opts.apiPort}`,
      apiPort: this.opts.apiPort,
      peerPort: this.opts.peerPort,
      version: this.opts.version,
    };
  }

  /**
   * Runs the bootstrap agreement until this node founds a cluster or finds one to join. The
   * decision is durable (persisted through `durable`) before this resolves.
   */
  async bootstrap(signal: AbortSignal): Promise<BootstrapOutcome> {
    const protocol = new BootstrapProtocol({
      id: this.opts.nodeId,
      expect: this.opts.expect,
      settleTicks: 4,
      prepareTimeoutTicks: 30,
      reportTtlTicks: 40,
      random: () => randomBytes(4).readUInt32LE(0) / 2 ** 32,
      durable: this.opts.durable.load(),
      ...(this.opts.onlyCluster
        ? { onlyCluster: (id: string) => id.startsWith(this.opts.onlyCluster!) }
        : {}),
    });
    this.protocol = protocol;
    this.savedKey = JSON.stringify(protocol.durable());
    this.opts.logger.info("discovering peers to found or join a cluster", {
      expect: this.opts.expect,
      seeds: this.opts.seeds.join(",") || undefined,
    });
    this.start();
    return new Promise<BootstrapOutcome>((resolve, reject) => {
      const check = setInterval(() => {
        if (signal.aborted) {
          clearInterval(check);
          reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
          return;
        }
        const out = protocol.outcome();
        if (!out) return;
        clearInterval(check);
        void this.persist().then(() => {
          if (out.type === "found") {
            const peers = new Map<NodeId, PeerAddress>();
            for (const id of out.attempt.founders) {
              const a = this.peerAddress(id);
              if (a) peers.set(id, a);
            }
            resolve({ kind: "found", clusterId: out.clusterId, founders: out.attempt.founders, peers });
          } else if (out.type === "join") {
            const via = this.verified.get(out.via)?.url;
            if (via) resolve({ kind: "join", clusterId: out.clusterId, via });
            else reject(new Error(`lost the address of ${out.via}`));
          }
        }, reject);
      }, this.opts.tickMs);
    });
  }

  /**
   * After bootstrap (or on a node that already has a cluster): answer as a member from now on,
   * and keep probing the members (plus mDNS and seeds, where on). Those probes are how a board
   * back with a new address is found without multicast: each member it probes learns the address
   * it came from. So they run whatever `--discover` says; only mDNS follows it.
   */
  becomeMember(source: MemberSource): void {
    this.member = source;
    this.start();
  }

  private start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.saving;
    await this.opts.mdns?.stop();
  }

  private report(): Report {
    if (this.member) {
      const clusterId = this.member.clusterId();
      return { id: this.opts.nodeId, state: "member", ...(clusterId ? { clusterId } : {}), known: [] };
    }
    return this.protocol?.report() ?? { id: this.opts.nodeId, state: "new", known: [] };
  }

  private tick(): void {
    if (this.stopped) return;
    this.ticks++;
    void this.advertise();
    if (this.ticks % 10 === 1) this.opts.mdns?.refresh();
    this.collectCandidates();
    const every = this.opts.probeEveryTicks ?? (this.member ? 10 : 2);
    for (const url of this.candidates) {
      if (this.inFlight.has(url)) continue;
      if (this.ticks - (this.lastProbe.get(url) ?? -Infinity) < every) continue;
      this.lastProbe.set(url, this.ticks);
      void this.probeOne(url);
    }
    // While new, the agreement has its own clock for stale reports, and a locked node must keep
    // its coordinator's address however long it is silent.
    if (this.member) this.forgetSilent(every);
    if (this.protocol && !this.member) {
      for (const a of this.protocol.tick()) {
        if (a.type === "prepare") void this.sendPrepare(a.to, a.attempt);
      }
      void this.persist();
    }
  }

  private forgetSilent(every: number): void {
    for (const [id, v] of this.verified) {
      if (this.ticks - v.answeredAt <= FORGET_AFTER_PROBES * every) continue;
      this.verified.delete(id);
      this.opts.logger.info("forgetting a peer that stopped answering", { peer: id, at: v.url });
      if (this.foreign.delete(id))
        this.opts.logger.warn("a node of another cluster with our name is gone from the network", {
          peer: id,
          at: v.url,
        });
    }
  }

  private async advertise(): Promise<void> {
    const mdns = this.opts.mdns;
    if (!mdns) return;
    const r = this.report();
    const txt = {
      cluster: this.opts.clusterName,
      id: this.opts.nodeId,
      peer: String(this.opts.peerPort),
      api: String(this.opts.apiPort),
      ver: this.opts.version,
      state: r.state,
      ...(r.clusterId ? { cid: fingerprint(r.clusterId) } : {}),
    };
    const key = JSON.stringify(txt);
    if (key === this.publishedKey) return;
    this.publishedKey = key;
    const host = `ringleader-${this.opts.nodeId.replace(/[^A-Za-z0-9-]/g, "-")}.local`;
    await mdns.publish({ name: `ringleader-${this.opts.nodeId}`, host, port: this.opts.apiPort, txt });
  }

  private collectCandidates(): void {
    for (const s of this.opts.mdns?.services() ?? []) {
      if (s.txt["cluster"] !== this.opts.clusterName || s.txt["id"] === this.opts.nodeId) continue;
      const port = Number(s.txt["api"] ?? s.port);
      const address = s.addresses[0];
      if (!address || !Number.isInteger(port)) continue;
      this.candidates.add(`http://${address.includes(":") ? `[${address}]` : address}:${port}`);
    }
    for (const url of this.member?.memberApis() ?? []) {
      // A member record without a usable API (not registered yet) has nothing to probe.
      const api = apiBase(url);
      if (api && api !== this.card.api) this.candidates.add(api);
    }
    // Bounded: a LAN full of junk adverts must not grow this without end.
    while (this.candidates.size > 512) this.candidates.delete(this.candidates.values().next().value!);
  }

  private async probeOne(url: string): Promise<void> {
    this.inFlight.add(url);
    const token = this.protocol?.probeToken() ?? 0;
    try {
      const answer = await this.ask(url);
      this.accept(url, answer, token);
    } catch (err) {
      this.failed(url, err);
    } finally {
      this.inFlight.delete(url);
    }
  }

  private ask(url: string, prepare?: Attempt): Promise<ProbeAnswer> {
    this.counters.probesSent++;
    const request = {
      v: WIRE_VERSION,
      cluster: this.opts.clusterName,
      nonce: newNonce(),
      from: this.card,
      ...(prepare ? { prepare } : {}),
    };
    return probe(url, this.key, request, Math.max(1000, this.opts.tickMs * 10));
  }

  private accept(url: string, answer: ProbeAnswer, token: number): void {
    const id = answer.node.id;
    if (id === this.opts.nodeId) {
      this.candidates.delete(url); // Ourselves, through another address.
      return;
    }
    const prev = this.verified.get(id);
    if (prev && prev.url !== url) {
      this.opts.logger.info("a peer answers at a new address", { peer: id, from: prev.url, to: url });
      this.candidates.delete(prev.url);
    }
    this.verified.set(id, { url, card: answer.node, report: answer.report, answeredAt: this.ticks });
    this.protocol?.observe(answer.report, token);
    for (const p of answer.peers) {
      const api = p.id === this.opts.nodeId ? null : apiBase(p.api);
      if (api) this.candidates.add(api);
    }
    this.checkForeign(id, url, answer.report);
  }

  private checkForeign(id: NodeId, url: string, report: Report): void {
    const ours = this.member?.clusterId() ?? null;
    const theirs = report.clusterId;
    const isMember = report.state === "member" || report.state === "committed";
    if (!ours || !theirs || !isMember || theirs === ours) {
      this.foreign.delete(id);
      return;
    }
    this.counters.foreignAnswers++;
    if (!this.foreign.has(id)) {
      this.foreign.set(id, { id, clusterId: theirs, url, firstSeen: Date.now() });
      this.opts.logger.error(
        "SPLIT BRAIN: a node of ANOTHER cluster with our name and secret is on the network; no data is exchanged with it. See `ringleader agent --help` (--fold-into) to fold one cluster into the other",
        { peer: id, theirCluster: theirs, ourCluster: ours, at: url },
      );
    }
  }

  private failed(url: string, err: unknown): void {
    this.counters.probeFailures++;
    if (err instanceof ProofError || err instanceof DiscoveryWireError) {
      this.counters.rogueAnswers++;
      if (!this.loggedRogues.has(url) && this.loggedRogues.size < 1024) {
        this.loggedRogues.add(url);
        this.opts.logger.warn("ignoring a node that could not prove the cluster secret", {
          at: url,
          error: err.message,
        });
      }
    }
  }

  private async sendPrepare(to: NodeId, attempt: Attempt): Promise<void> {
    const v = this.verified.get(to);
    if (!v || this.inFlight.has(`prepare:${to}`)) return;
    this.inFlight.add(`prepare:${to}`);
    try {
      const answer = await this.ask(v.url, attempt);
      if (answer.node.id !== to || !answer.prepare) return;
      this.protocol?.onPrepareReply(to, attempt.nonce, answer.prepare);
      // A commit must be on disk before anyone can learn of it.
      await this.persist();
    } catch (err) {
      this.failed(v.url, err);
    } finally {
      this.inFlight.delete(`prepare:${to}`);
    }
  }

  /** Writes the protocol's durable state if it changed; serialised. */
  private persist(): Promise<void> {
    this.saving = this.saving.then(async () => {
      if (!this.protocol) return;
      const d = this.protocol.durable();
      const key = JSON.stringify(d);
      if (key === this.savedKey) return;
      await this.opts.durable.save(d);
      this.savedKey = key;
    });
    return this.saving;
  }

  /**
   * Answers a discovery request (the body of `POST /v1/discovery`). `remote` is the requester's
   * IP address: a verified requester's API there becomes a candidate (it may have a new address).
   */
  async respond(body: string, remote: string | undefined): Promise<{ status: number; body: string }> {
    let request;
    try {
      request = checkRequest(open(this.key, body), this.opts.clusterName);
    } catch (err) {
      if (err instanceof ProofError) {
        this.counters.rejectedProbes++;
        if (remote && !this.loggedRogues.has(remote) && this.loggedRogues.size < 1024) {
          this.loggedRogues.add(remote);
          this.opts.logger.warn("refused a discovery probe that did not prove the cluster secret", {
            remote,
          });
        }
        return { status: 403, body: JSON.stringify({ error: { code: "forbidden", message: err.message } }) };
      }
      this.counters.badProbes++;
      const message = err instanceof Error ? err.message : String(err);
      return { status: 400, body: JSON.stringify({ error: { code: "bad_request", message } }) };
    }
    if (remote && request.from.id !== this.opts.nodeId) {
      const host = remote.replace(/^::ffff:/, "");
      this.candidates.add(`http://${host.includes(":") ? `[${host}]` : host}:${request.from.apiPort}`);
    }
    let prepare: PrepareReply | undefined;
    if (request.prepare) {
      if (this.protocol && !this.member) {
        prepare = this.protocol.onPrepare(request.prepare);
        // A grant is durable before it is sent.
        await this.persist();
      } else prepare = { granted: false, reason: "already in a cluster", report: this.report() };
    }
    await this.saving;
    const answer = {
      v: WIRE_VERSION,
      cluster: this.opts.clusterName,
      nonce: request.nonce,
      node: this.card,
      report: this.report(),
      ...(prepare ? { prepare } : {}),
      peers: [...this.verified.values()].slice(0, 64).map((v) => ({ id: v.card.id, api: v.url })),
    };
    return { status: 200, body: seal(this.key, answer) };
  }

  /** The peer address of a node we verified recently (its address may have changed). */
  peerAddress(id: NodeId): PeerAddress | undefined {
    const v = this.verified.get(id);
    // Port 0: the board was started with an ephemeral port (`--join` with `--peer host:0`, as
    // the test clusters do) and cannot tell its real one here; the member table has it.
    if (!v || this.foreign.has(id) || v.card.peerPort === 0) return undefined;
    return { host: new URL(v.url).hostname.replace(/^\[(.*)\]$/, "$1"), port: v.card.peerPort };
  }

  isForeign(id: NodeId): boolean {
    return this.foreign.has(id);
  }

  refuseTraffic(id: NodeId): boolean {
    if (!this.foreign.has(id)) return false;
    this.counters.refusedForeignTraffic++;
    return true;
  }

  foreignNodes(): ForeignNode[] {
    return [...this.foreign.values()];
  }

  status(): unknown {
    const foreign = this.foreignNodes();
    return {
      expect: this.opts.expect,
      mdns: this.opts.mdns !== null,
      state: this.report().state,
      verified: [...this.verified.values()].map((v) => ({
        id: v.card.id,
        url: v.url,
        state: v.report.state,
        cluster: v.report.clusterId ? fingerprint(v.report.clusterId) : null,
      })),
      alarm:
        foreign.length > 0
          ? `split brain: ${foreign.length} node(s) of another cluster named ${this.opts.clusterName} on the network (${[...new Set(foreign.map((f) => fingerprint(f.clusterId)))].join(", ")})`
          : null,
      foreign,
      counters: { ...this.counters },
    };
  }
}

/** A `--join` value that is neither an API URL nor host:port. */
export class SeedError extends Error {
  override readonly name = "SeedError";
}

/** A `--join` value (an API URL, or host:port of a member's API) as the API base URL. */
export function seedUrl(seed: string): string {
  const url = apiBase(seed);
  if (url === null) throw new SeedError(`--join ${JSON.stringify(seed)} is neither an API URL nor host:port`);
  return url;
}

/** An API URL or host:port as the API base URL (scheme, host, port), or null when it is neither. */
function apiBase(text: string): string | null {
  const withScheme = /^https?:\/\//.test(text) ? text : `http://${text}`;
  if (!URL.canParse(withScheme)) return null;
  const u = new URL(withScheme);
  return `${u.protocol}//${u.host}`;
}
