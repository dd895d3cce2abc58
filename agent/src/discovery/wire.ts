/**
 * The authenticated discovery probe: `POST /v1/discovery` on a node's API port. mDNS is only a
 * hint; before a discovered node is trusted (counted toward `expect`, asked for a lock, joined,
 * or used as an address), it must answer this probe, and the answer proves it holds the cluster
 * secret: request and answer each carry an HMAC-SHA256 keyed from the secret (HKDF, with its own
 * label so the key differs from the transport's TLS PSK), and the answer covers the request's
 * fresh nonce, so a recorded answer cannot be replayed. The bearer token is not used here: it is
 * a client credential and does not prove membership.
 *
 * Body, both ways: `{"p": "<payload JSON>", "mac": "<hex>"}` where mac = HMAC(key, p). Signing the
 * exact payload string avoids any canonical-JSON question.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { Attempt, PrepareReply, Report } from "./protocol.js";
import { HttpAnswerTooLargeError, httpFetch } from "../net/http-fetch.js";

export const DISCOVERY_PATH = "/v1/discovery";
export const WIRE_VERSION = 1;
/** Requests and answers larger than this are refused unread. */
export const MAX_DISCOVERY_BODY_BYTES = 64 * 1024;

/** Thrown when a peer fails to prove the secret (wrong MAC, wrong cluster name, stale nonce). */
export class ProofError extends Error {
  override readonly name = "ProofError";
  constructor(message: string) {
    super(message);
  }
}

/** Thrown when a discovery body is not what the protocol says (bad JSON, missing fields). */
export class DiscoveryWireError extends Error {
  override readonly name = "DiscoveryWireError";
  constructor(message: string) {
    super(message);
  }
}

export interface NodeCard {
  readonly id: string;
  /** API base URL as the node advertises it. */
  readonly api: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly version: string;
}

export interface ProbeRequest {
  readonly v: number;
  readonly cluster: string;
  readonly nonce: string;
  readonly from: NodeCard;
  /** A prepare asks for a bootstrap lock; without it the request only asks for a report. */
  readonly prepare?: Attempt;
}

export interface ProbeAnswer {
  readonly v: number;
  readonly cluster: string;
  /** The request's nonce: ties this answer to that request. */
  readonly nonce: string;
  readonly node: NodeCard;
  readonly report: Report;
  readonly prepare?: PrepareReply;
  /** Other nodes the answerer trusts (gossip, so partial mDNS views still meet). */
  readonly peers: readonly { id: string; api: string }[];
}

export function discoveryKey(secret: string | Uint8Array, clusterName: string): Buffer {
  const bytes = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
  return Buffer.from(hkdfSync("sha256", bytes, "ringleader/discovery/v1", clusterName, 32));
}

export function seal(key: Buffer, payload: unknown): string {
  const p = JSON.stringify(payload);
  return JSON.stringify({ p, mac: createHmac("sha256", key).update(p).digest("hex") });
}

/** Verifies and parses a sealed body; throws ProofError for a bad MAC, DiscoveryWireError for junk. */
export function open(key: Buffer, body: string): unknown {
  let outer: unknown;
  try {
    outer = JSON.parse(body);
  } catch {
    throw new DiscoveryWireError("the body is not JSON");
  }
  const o = outer as { p?: unknown; mac?: unknown };
  if (typeof o.p !== "string" || typeof o.mac !== "string" || !/^[0-9a-f]{64}$/.test(o.mac))
    throw new DiscoveryWireError("the body is not a sealed discovery message");
  const want = createHmac("sha256", key).update(o.p).digest();
  if (!timingSafeEqual(want, Buffer.from(o.mac, "hex")))
    throw new ProofError("the message is not signed with this cluster's secret");
  try {
    return JSON.parse(o.p);
  } catch {
    throw new DiscoveryWireError("the signed payload is not JSON");
  }
}

export function newNonce(): string {
  return randomBytes(16).toString("hex");
}

const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 256;

function checkCard(v: unknown): NodeCard {
  const c = v as Partial<NodeCard> | null;
  if (!c || !isStr(c.id) || !isStr(c.api) || !isStr(c.version)) throw new DiscoveryWireError("bad node card");
  if (!Number.isInteger(c.peerPort) || !Number.isInteger(c.apiPort))
    throw new DiscoveryWireError("bad ports");
  return c as NodeCard;
}

function checkAttempt(v: unknown): Attempt {
  const a = v as Partial<Attempt> | null;
  if (!a || !isStr(a.coordinator) || !isStr(a.nonce) || !Array.isArray(a.founders) || a.founders.length > 64)
    throw new DiscoveryWireError("bad attempt");
  if (!a.founders.every(isStr)) throw new DiscoveryWireError("bad founders");
  return { coordinator: a.coordinator, nonce: a.nonce, founders: [...a.founders].sort() };
}

const STATES = new Set(["new", "locked", "preparing", "committed", "joining", "member"]);

function checkReport(v: unknown): Report {
  const r = v as Partial<Report> | null;
  if (!r || !isStr(r.id) || !isStr(r.state) || !STATES.has(r.state))
    throw new DiscoveryWireError("bad report");
  if (!Array.isArray(r.known) || r.known.length > 1024 || !r.known.every(isStr))
    throw new DiscoveryWireError("bad known list");
  return {
    id: r.id,
    state: r.state,
    known: r.known,
    ...(isStr(r.clusterId) ? { clusterId: r.clusterId } : {}),
    ...(r.attempt ? { attempt: checkAttempt(r.attempt) } : {}),
  };
}

export function checkRequest(v: unknown, clusterName: string): ProbeRequest {
  const r = v as Partial<ProbeRequest> | null;
  if (!r || r.v !== WIRE_VERSION || !isStr(r.nonce)) throw new DiscoveryWireError("bad request");
  if (r.cluster !== clusterName) throw new ProofError(`request for cluster ${String(r.cluster)}`);
  return {
    v: r.v,
    cluster: r.cluster,
    nonce: r.nonce,
    from: checkCard(r.from),
    ...(r.prepare ? { prepare: checkAttempt(r.prepare) } : {}),
  };
}

export function checkAnswer(v: unknown, clusterName: string, nonce: string): ProbeAnswer {
  const a = v as Partial<ProbeAnswer> | null;
  if (!a || a.v !== WIRE_VERSION) throw new DiscoveryWireError("bad answer");
  if (a.cluster !== clusterName) throw new ProofError(`answer from cluster ${String(a.cluster)}`);
  if (a.nonce !== nonce) throw new ProofError("the answer is not for our request (replayed?)");
  const node = checkCard(a.node);
  const report = checkReport(a.report);
  if (report.id !== node.id) throw new DiscoveryWireError("the report is about another node");
  const peers = Array.isArray(a.peers)
    ? a.peers.filter((p): p is { id: string; api: string } => isStr(p?.id) && isStr(p?.api)).slice(0, 256)
    : [];
  let prepare: PrepareReply | undefined;
  if (a.prepare) {
    const pr = a.prepare as { granted?: unknown; reason?: unknown; report?: unknown };
    prepare =
      pr.granted === true
        ? { granted: true, report: checkReport(pr.report) }
        : { granted: false, reason: String(pr.reason ?? ""), report: checkReport(pr.report) };
  }
  return { v: a.v, cluster: a.cluster, nonce: a.nonce, node, report, peers, ...(prepare ? { prepare } : {}) };
}

/**
 * POSTs `body` and reads the answer, at most `MAX_DISCOVERY_BODY_BYTES` of it, within `timeoutMs`.
 * Through `httpFetch` (Node's `http`, kept-alive connections): a member probes every other member
 * every few seconds for as long as it runs, and a probe through the global `fetch` (undici, a
 * stream and an abort signal per request) cost 2-3 times the CPU (2,000 POSTs, client and server
 * in one process: 1,077-1,804 us against 385-533 per request).
 */
async function post(url: URL, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  try {
    const res = await httpFetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      maxBytes: MAX_DISCOVERY_BODY_BYTES,
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    if (err instanceof HttpAnswerTooLargeError) throw new DiscoveryWireError("the answer is too large");
    // A silent peer is unreachable, not a rogue: a plain error.
    if (err instanceof Error && err.name === "TimeoutError")
      throw new Error(`no answer within ${timeoutMs} ms`);
    throw err;
  }
}

/** Sends one probe (or prepare) to `apiUrl` and returns the verified answer. */
export async function probe(
  apiUrl: string,
  key: Buffer,
  request: ProbeRequest,
  timeoutMs: number,
): Promise<ProbeAnswer> {
  const { status, text } = await post(new URL(DISCOVERY_PATH, apiUrl), seal(key, request), timeoutMs);
  if (status === 403) throw new ProofError("the peer refused our proof (different secret?)");
  if (status < 200 || status > 299) throw new DiscoveryWireError(`HTTP ${status}: ${text.slice(0, 120)}`);
  return checkAnswer(open(key, text), request.cluster, request.nonce);
}
