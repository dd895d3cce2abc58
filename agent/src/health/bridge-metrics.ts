/**
 * The serial bridge (`ringleader bridge`) is its own process and serves its counters on
 * 127.0.0.1:9465 by default, out of Prometheus' reach on another machine. The agent on the same
 * board folds them into its own `/metrics` at scrape time, so one scrape target per board covers
 * both: only `ringleader_bridge_*` samples are taken (a stranger on that port cannot inject
 * others), each gets the agent's `node` label, and the answer is bounded in time and size.
 * `ringleader_bridge_up` says whether the bridge answered.
 */
import { Gauge, type Registry } from "prom-client";
import { httpFetch } from "../net/http-fetch.js";

export const DEFAULT_BRIDGE_METRICS_URL = "http://127.0.0.1:9465/metrics";
const MAX_BYTES = 1024 * 1024;

/** Keeps the bridge's own samples and comments, each sample with `node` added. */
export function relabelBridgeText(text: string, nodeId: string): string {
  const node = `node="${nodeId.replace(/["\\\n]/g, "_")}"`;
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const comment = /^# (HELP|TYPE) (ringleader_bridge_[A-Za-z0-9_:]*) /.exec(line);
    if (comment) {
      out.push(line);
      continue;
    }
    const m = /^(ringleader_bridge_[A-Za-z0-9_:]*)(\{[^}]*\})? (\S+)( \d+)?$/.exec(line);
    if (!m) continue;
    const labels = m[2] && m[2] !== "{}" ? `{${node},${m[2].slice(1)}` : `{${node}}`;
    out.push(`${m[1]}${labels} ${m[3]}${m[4] ?? ""}`);
  }
  return out.length > 0 ? out.join("\n") + "\n" : "";
}

export class BridgeMetricsProxy {
  private up = 0;

  constructor(
    private readonly url: string,
    private readonly nodeId: string,
    registry: Registry,
    private readonly timeoutMs = 1000,
  ) {
    const up = (): number => this.up;
    new Gauge({
      name: "ringleader_bridge_up",
      help: "1 if this board's serial bridge answered the last scrape (its metrics follow)",
      registers: [registry],
      collect() {
        this.set(up());
      },
    });
  }

  /** The bridge's samples, relabelled; "" when it is not running. Never throws. */
  async text(): Promise<string> {
    try {
      const res = await httpFetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
      const body = res.ok ? await res.text() : "";
      this.up = res.ok ? 1 : 0;
      return body.length > MAX_BYTES ? "" : relabelBridgeText(body, this.nodeId);
    } catch {
      this.up = 0;
      return "";
    }
  }
}
