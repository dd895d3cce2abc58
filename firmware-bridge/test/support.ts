/** Fakes shared by the bridge's unit tests: an in-memory cluster, a scripted device, a temp dir. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CasMismatchError, ServiceUnavailableError } from "../../agent/src/client/client.js";
import { createLogger, type Logger } from "../../agent/src/node/logger.js";
import { encodeFrame, FrameDecoder } from "../src/framing.js";
import { decodeMessage, encodeMessage, type BridgeMessage, type DeviceMessage } from "../src/messages.js";
import type { KvWriter } from "../src/sink.js";

/**
 * A key-value store with the API's `cas=0` semantics. `down` makes every call fail as a cluster
 * without quorum does; `commitThenFail` commits a put and then reports a failure, as a timeout
 * after the leader applied the write does.
 */
export class FakeCluster implements KvWriter {
  readonly data = new Map<string, string>();
  down = false;
  commitThenFail = 0;
  puts = 0;
  /** How long a put of `value` takes to reach the cluster (ms); 0 when unset. */
  delayOf: ((value: string) => number) | null = null;
  /** Puts are taken and never answered; they end only when their signal aborts (as fetch does). */
  hanging = false;

  async put(
    key: string,
    value: string,
    opts: { cas?: string; signal?: AbortSignal },
  ): Promise<{ version: string }> {
    if (this.hanging) {
      const signal = opts.signal;
      await new Promise<never>((_, reject) => {
        if (!signal) return;
        if (signal.aborted) return reject(signal.reason as Error);
        signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
      });
    }
    const delay = this.delayOf?.(value) ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return this.putNow(key, value, opts);
  }

  private putNow(
    key: string,
    value: string,
    opts: { cas?: string; signal?: AbortSignal },
  ): Promise<{ version: string }> {
    this.puts++;
    if (this.down) return Promise.reject(new ServiceUnavailableError("no quorum", 1));
    if (opts.cas === "0" && this.data.has(key)) return Promise.reject(new CasMismatchError("exists"));
    this.data.set(key, value);
    if (this.commitThenFail > 0) {
      this.commitThenFail--;
      return Promise.reject(new ServiceUnavailableError("timed out after commit", 1));
    }
    return Promise.resolve({ version: String(this.data.size) });
  }

  get(key: string): Promise<{ value: Uint8Array; version: string } | null> {
    if (this.down) return Promise.reject(new ServiceUnavailableError("no quorum", 1));
    const v = this.data.get(key);
    return Promise.resolve(v === undefined ? null : { value: new TextEncoder().encode(v), version: "1" });
  }

  /** The stored readings, parsed. */
  readings(): {
    key: string;
    device: string;
    sensor: string;
    boot: number;
    seq: number;
    value: number;
    time: string;
  }[] {
    return [...this.data.entries()].map(([key, v]) => ({
      key,
      ...(JSON.parse(v) as Omit<ReturnType<FakeCluster["readings"]>[number], "key">),
    }));
  }
}

/** The device end of a link: frames what it sends, decodes what the bridge sent it. */
export class FakeDevice {
  private readonly decoder = new FrameDecoder();
  readonly received: BridgeMessage[] = [];

  frame(m: DeviceMessage): Uint8Array {
    return encodeFrame(encodeMessage(m));
  }

  /** Feed what the bridge wrote. */
  hear(bytes: Uint8Array): void {
    for (const e of this.decoder.push(bytes)) {
      if (e.kind === "frame") this.received.push(decodeMessage(e.payload) as BridgeMessage);
    }
  }

  take(): BridgeMessage[] {
    return this.received.splice(0);
  }
}

export function testLogger(): Logger {
  return createLogger({ level: process.env["BRIDGE_TEST_LOG"] ? "debug" : "error", format: "text" });
}

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves once `cond()` holds, checking after each turn of the event loop; bounded. */
export async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * What a UART at `rxBaud` reads from `bytes` sent at `txBaud` (8N1, idle high): it waits for a
 * falling edge, samples each bit in the middle of its own bit time, and delivers the byte even
 * when the stop bit is wrong (a framing error; Linux passes such bytes on by default). Then it
 * waits for the line to go high again before the next start bit.
 */
export function atBaud(bytes: Uint8Array, txBaud: number, rxBaud: number): Uint8Array {
  const txBit = 1 / txBaud;
  const rxBit = 1 / rxBaud;
  const end = bytes.length * 10 * txBit;
  const level = (t: number): number => {
    const i = Math.floor(t / txBit);
    if (i >= bytes.length * 10) return 1;
    const pos = i % 10;
    if (pos === 0) return 0;
    if (pos === 9) return 1;
    return (bytes[Math.floor(i / 10)]! >> (pos - 1)) & 1;
  };
  const step = rxBit / 16; // receivers oversample 16 times
  const out: number[] = [];
  let t = 0;
  while (t < end) {
    if (level(t) === 1) {
      t += step;
      continue;
    }
    let b = 0;
    for (let k = 0; k < 8; k++) b |= level(t + (1.5 + k) * rxBit) << k;
    out.push(b);
    t += 9.5 * rxBit;
    while (t < end && level(t) === 0) t += step;
  }
  return Uint8Array.from(out);
}
