/**
 * Shared pieces of the transport tests: message factories, fast-check arbitraries, transports on
 * 127.0.0.1 with a shared address book, and bounded waits on real conditions.
 */
import fc from "fast-check";
import {
  emptyMessage,
  type Entry,
  type Message,
  type MessageType,
  type NodeId,
} from "../../src/raft/types.js";
import {
  PeerTransport,
  type PeerAddress,
  type PeerTransportOptions,
} from "../../src/transport/tcp-transport.js";
import type { Logger, TransportLimits } from "../../src/transport/types.js";

export const SECRET = "correct horse battery staple, 32+ bytes";
export const CLUSTER = "home-lab";

export function msg(type: MessageType, from: NodeId, to: NodeId, fields: Partial<Message> = {}): Message {
  return { ...emptyMessage(type, 0, from, to), ...fields };
}

export function heartbeat(from: NodeId, to: NodeId, term: number, group = 0): Message {
  return msg("heartbeat", from, to, { term, group, commit: term });
}

export function appendWith(from: NodeId, to: NodeId, index: number, entryBytes: number, count = 1): Message {
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({
      term: 3,
      index: index + i + 1,
      type: "normal",
      data: new Uint8Array(entryBytes).fill(i & 0xff),
    });
  }
  return msg("app", from, to, { term: 3, logTerm: 3, index, commit: index, entries });
}

import { WIRE_TYPES } from "../../src/transport/codec.js";

export { WIRE_TYPES };

const uintArb = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const bytesArb = fc.uint8Array({ maxLength: 48 });
export const idArb = fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 });

// Decoded maps have Object.prototype; fast-check's records are null-prototype unless told otherwise.
const plain = { noNullPrototype: true } as const;

const entryArb: fc.Arbitrary<Entry> = fc.record(
  {
    term: uintArb,
    index: uintArb,
    type: fc.constantFrom("normal" as const, "conf" as const),
    data: bytesArb,
  },
  plain,
);

const snapshotArb = fc.option(
  fc.record(
    {
      metadata: fc.record(
        {
          index: uintArb,
          term: uintArb,
          confState: fc.record(
            { voters: fc.array(idArb, { maxLength: 5 }), learners: fc.array(idArb, { maxLength: 3 }) },
            plain,
          ),
        },
        plain,
      ),
      data: bytesArb,
    },
    plain,
  ),
  { nil: null },
);

export function messageArb(from: NodeId, to: NodeId): fc.Arbitrary<Message> {
  return fc.record(
    {
      type: fc.constantFrom(...WIRE_TYPES),
      group: uintArb,
      from: fc.constant(from),
      to: fc.constant(to),
      term: uintArb,
      logTerm: uintArb,
      index: uintArb,
      entries: fc.array(entryArb, { maxLength: 4 }),
      commit: uintArb,
      reject: fc.boolean(),
      rejectHint: uintArb,
      rejectTerm: uintArb,
      context: bytesArb,
      snapshot: snapshotArb,
    },
    plain,
  );
}

/** Resolves once `condition()` holds; rejects after `timeoutMs`. Checks the real condition each time. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

/** Everything one transport delivered, one record per `onMessages` call (that is, per frame). */
export class Inbox {
  readonly batches: { from: NodeId; msgs: readonly Message[] }[] = [];

  readonly onMessages = (from: NodeId, msgs: readonly Message[]): void => {
    this.batches.push({ from, msgs });
  };

  get messages(): Message[] {
    return this.batches.flatMap((b) => [...b.msgs]);
  }

  from(nodeId: NodeId): Message[] {
    return this.batches.filter((b) => b.from === nodeId).flatMap((b) => [...b.msgs]);
  }

  async waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    await until(() => this.messages.length >= n, `${n} messages (have ${this.messages.length})`, timeoutMs);
  }
}

export interface LogLine {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly msg: string;
  readonly fields: Record<string, unknown> | undefined;
}

export class RecordingLogger implements Logger {
  readonly lines: LogLine[] = [];
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: "debug", msg, fields });
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: "info", msg, fields });
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: "warn", msg, fields });
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: "error", msg, fields });
  }
  count(level: LogLine["level"], includes: string): number {
    return this.lines.filter((l) => l.level === level && l.msg.includes(includes)).length;
  }
}

/** Fast timeouts so failure paths finish quickly in tests. */
export const TEST_LIMITS: Partial<TransportLimits> = {
  backoffBaseMs: 10,
  backoffMaxMs: 100,
  connectTimeoutMs: 2000,
  handshakeTimeoutMs: 2000,
  helloTimeoutMs: 2000,
};

/** A small cluster of transports on 127.0.0.1 sharing one address book. */
export class TestCluster {
  readonly addresses = new Map<NodeId, PeerAddress>();
  readonly transports = new Map<NodeId, PeerTransport>();
  readonly inboxes = new Map<NodeId, Inbox>();
  readonly loggers = new Map<NodeId, RecordingLogger>();
  readonly unreachable = new Map<NodeId, NodeId[]>();

  async add(
    nodeId: NodeId,
    overrides: Partial<PeerTransportOptions> = {},
    port = 0,
  ): Promise<{ transport: PeerTransport; inbox: Inbox }> {
    const inbox = new Inbox();
    const logger = new RecordingLogger();
    const reports: NodeId[] = [];
    const transport = new PeerTransport({
      nodeId,
      listen: { host: "127.0.0.1", port },
      secret: SECRET,
      clusterName: CLUSTER,
      resolve: (id) => this.addresses.get(id),
      onMessages: inbox.onMessages,
      unreachable: (id) => reports.push(id),
      logger,
      limits: TEST_LIMITS,
      ...overrides,
    });
    const { port: bound } = await transport.start();
    this.addresses.set(nodeId, { host: "127.0.0.1", port: bound });
    this.transports.set(nodeId, transport);
    this.inboxes.set(nodeId, inbox);
    this.loggers.set(nodeId, logger);
    this.unreachable.set(nodeId, reports);
    return { transport, inbox };
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.transports.values()].map((t) => t.stop()));
  }
}
