/**
 * Throughput of the peer transport between two agents on loopback, over TLS 1.3 PSK.
 *
 *   npx tsc -p tsconfig.json && node dist/test/bench/transport-bench.js [--quick]
 *
 * The sender keeps a bounded window of messages in flight (it waits for the receiver to catch
 * up), the way a Raft leader is limited by its in-flight budget, so nothing is dropped by the
 * queue bound and the numbers measure delivery, not loss. Each scenario reports messages per
 * second, and MB/s of frame bytes (CBOR plus length prefix, before TLS) and of entry payload.
 */
import { performance } from "node:perf_hooks";
import { emptyMessage, type Entry, type Message } from "../../agent/src/raft/types.js";
import { PeerTransport, type PeerAddress } from "../../agent/src/transport/tcp-transport.js";

interface Scenario {
  readonly name: string;
  readonly make: (i: number) => Message;
  readonly count: number;
  /** Messages sent per event-loop turn (they coalesce into one frame or a few). */
  readonly perTurn: number;
  /** Most messages sent but not yet received. */
  readonly window: number;
  readonly payloadBytesPerMessage: number;
}

const FROM = "3f1c9a2e-7b4d-4e0a-9c55-0d1e2f3a4b5c";
const TO = "8a7b6c5d-4e3f-4a1b-8c9d-0e1f2a3b4c5d";
const SECRET = "benchmark secret, at least sixteen bytes";
const quick = process.argv.includes("--quick");
const scale = quick ? 0.1 : 1;

function heartbeat(i: number): Message {
  return { ...emptyMessage("heartbeat", i % 64, FROM, TO), term: 7, commit: 1000 + i };
}

function append(entriesPerMessage: number): (i: number) => Message {
  const data = new Uint8Array(100).fill(0x5a);
  return (i) => {
    const entries: Entry[] = [];
    const first = i * entriesPerMessage;
    for (let k = 0; k < entriesPerMessage; k++)
      entries.push({ term: 7, index: first + k + 1, type: "normal", data });
    return {
      ...emptyMessage("app", i % 64, FROM, TO),
      term: 7,
      logTerm: 7,
      index: first,
      commit: first,
      entries,
    };
  };
}

const scenarios: Scenario[] = [
  // One message per turn: every message is its own frame, for comparison with coalescing.
  {
    name: "heartbeat, 1 per frame",
    make: heartbeat,
    count: 50_000,
    perTurn: 1,
    window: 64,
    payloadBytesPerMessage: 0,
  },
  {
    name: "heartbeat (small)",
    make: heartbeat,
    count: 400_000,
    perTurn: 64,
    window: 8192,
    payloadBytesPerMessage: 0,
  },
  {
    name: "append, 1 x 100 B entry",
    make: append(1),
    count: 200_000,
    perTurn: 64,
    window: 8192,
    payloadBytesPerMessage: 100,
  },
  {
    name: "append, 64 x 100 B entries",
    make: append(64),
    count: 20_000,
    perTurn: 16,
    window: 2048,
    payloadBytesPerMessage: 6400,
  },
];

async function run(s: Scenario): Promise<void> {
  const count = Math.max(1000, Math.round(s.count * scale));
  const addresses = new Map<string, PeerAddress>();
  let received = 0;
  let wake: (() => void) | null = null;
  let wakeAt = 0;
  const sender = new PeerTransport({
    nodeId: FROM,
    listen: { host: "127.0.0.1", port: 0 },
    secret: SECRET,
    clusterName: "bench",
    resolve: (id) => addresses.get(id),
    onMessages: () => {},
  });
  const receiver = new PeerTransport({
    nodeId: TO,
    listen: { host: "127.0.0.1", port: 0 },
    secret: SECRET,
    clusterName: "bench",
    resolve: (id) => addresses.get(id),
    onMessages: (_from, msgs) => {
      received += msgs.length;
      if (wake !== null && received >= wakeAt) {
        const w = wake;
        wake = null;
        w();
      }
    },
  });
  addresses.set(FROM, { host: "127.0.0.1", port: (await sender.start()).port });
  addresses.set(TO, { host: "127.0.0.1", port: (await receiver.start()).port });
  const until = (n: number): Promise<void> =>
    received >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          wakeAt = n;
          wake = resolve;
        });

  // Warm up the connection and the JIT outside the measured interval.
  sender.send(TO, s.make(0));
  await until(1);
  const base = received;
  const before = receiver.stats();
  const t0 = performance.now();
  let sent = 0;
  while (sent < count) {
    await until(base + sent - s.window + s.perTurn);
    const n = Math.min(s.perTurn, count - sent);
    for (let k = 0; k < n; k++) sender.send(TO, s.make(sent + k));
    sent += n;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await until(base + count);
  const seconds = (performance.now() - t0) / 1000;
  const after = receiver.stats();
  const frameBytes = after.bytesReceived - before.bytesReceived;
  const frames = after.framesReceived - before.framesReceived;
  const dropped = sender.stats().droppedMessages;
  await Promise.all([sender.stop(), receiver.stop()]);

  const mbps = (bytes: number): string => (bytes / seconds / 1e6).toFixed(1);
  console.log(
    [
      s.name.padEnd(28),
      `${Math.round(count / seconds).toLocaleString("en-US")} msg/s`.padStart(16),
      `${mbps(frameBytes)} MB/s frames`.padStart(18),
      s.payloadBytesPerMessage > 0
        ? `${mbps(count * s.payloadBytesPerMessage)} MB/s entries`.padStart(20)
        : "".padStart(20),
      `${(frameBytes / count).toFixed(0)} B/msg`.padStart(10),
      `${(count / frames).toFixed(1)} msg/frame`.padStart(16),
      dropped > 0 ? `  DROPPED ${dropped}` : "",
    ].join(" "),
  );
}

console.log(
  `peer transport, 2 transports on 127.0.0.1, TLS 1.3 PSK, Node ${process.version}${quick ? " (quick)" : ""}`,
);
for (const s of scenarios) await run(s);
