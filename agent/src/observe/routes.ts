/**
 * The observation endpoints the dashboard, `status` and `top` read, added to the API server:
 *
 * - `GET /v1/health`: this node's view of the cluster's health (nodes, partitions, warnings)
 * - `GET /v1/health/local`: this node's own record, pulled by its peers every few seconds
 * - `GET /v1/ring`: the ring with every node's tokens and each partition's range and replicas
 * - `GET /v1/sensors?window=<s>`: every sensor series and its latest reading
 * - `GET /v1/series?prefix=&from=&to=&buckets=`: one series downsampled into buckets
 * - `GET /ui/`: the dashboard (static files, no token: the page asks for one)
 *
 * All `/v1` routes take the cluster token or the read-only token.
 */
import { BadRequestError, NotFoundError, ServiceUnavailableError } from "../api/errors.js";
import { json, type ExtraRoute } from "../api/extra-routes.js";
import { parseQuery } from "../api/parse.js";
import type { HealthMonitor } from "../health/monitor.js";
import { placement } from "../ring/placement.js";
import { RING_SIZE, type Ring } from "../ring/types.js";
import type { SensorReader } from "./sensors.js";
import type { UiAssets } from "./ui-assets.js";

export interface ObserveDeps {
  readonly health: HealthMonitor;
  readonly ring: () => Ring | null;
  readonly sensors: SensorReader;
  readonly ui: UiAssets;
}

/** The ring for drawing: tokens per node, and each partition's range of hashes and replicas. */
export function ringDocument(ring: Ring): unknown {
  const placed = placement(ring);
  const P = ring.partitions;
  return {
    ringSize: RING_SIZE,
    partitions: P,
    replicationFactor: ring.replicationFactor,
    nodes: ring.nodes.map((n) => ({ id: n.id, weight: n.weight, tokens: n.tokens })),
    ranges: placed.partitions.map((p) => ({
      partition: p.partition,
      start: Math.ceil((p.partition * RING_SIZE) / P),
      end: Math.ceil(((p.partition + 1) * RING_SIZE) / P),
      replicas: p.replicas,
    })),
  };
}

function timeParam(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  // Either ISO-8601 or a relative `-<seconds>s` from now, e.g. from=-3600s.
  const rel = /^-(\d{1,9})s$/.exec(raw);
  if (rel) return Date.now() - Number(rel[1]) * 1000;
  const t = Date.parse(raw);
  if (!Number.isFinite(t)) throw new BadRequestError(`${name} must be an ISO time or -<seconds>s`);
  return t;
}

export function observeRoutes(deps: ObserveDeps): ExtraRoute[] {
  return [
    {
      template: "/v1/health",
      authenticated: true,
      methods: {
        GET: async (req) => {
          parseQuery(req.query, []);
          return json(200, deps.health.view());
        },
      },
    },
    {
      template: "/v1/health/local",
      authenticated: true,
      methods: {
        GET: async (req) => {
          parseQuery(req.query, []);
          return json(200, deps.health.record());
        },
      },
    },
    {
      template: "/v1/ring",
      authenticated: true,
      methods: {
        GET: async (req) => {
          parseQuery(req.query, []);
          const ring = deps.ring();
          if (!ring) throw new ServiceUnavailableError("this node does not know the ring yet", 1);
          return json(200, ringDocument(ring));
        },
      },
    },
    {
      template: "/v1/sensors",
      authenticated: true,
      methods: {
        GET: async (req) => {
          const q = parseQuery(req.query, ["window"]);
          const windowSec = q.get("window") === undefined ? 600 : Number(q.get("window"));
          if (!Number.isInteger(windowSec) || windowSec < 1 || windowSec > 7 * 86400) {
            throw new BadRequestError("window must be 1-604800 seconds");
          }
          return json(200, { series: await deps.sensors.latest(windowSec * 1000, req.signal) });
        },
      },
    },
    {
      template: "/v1/series",
      authenticated: true,
      methods: {
        GET: async (req) => {
          const q = parseQuery(req.query, ["prefix", "from", "to", "buckets"]);
          const prefix = q.get("prefix");
          if (!prefix) throw new BadRequestError("prefix is required, e.g. sensors/{kitchen}/temp/");
          if (prefix.length > 512) throw new BadRequestError("prefix is too long");
          const to = timeParam(q.get("to"), "to", Date.now());
          const from = timeParam(q.get("from"), "from", to - 3600_000);
          const buckets = q.get("buckets") === undefined ? 60 : Number(q.get("buckets"));
          return json(200, await deps.sensors.series(prefix, from, to, buckets, req.signal));
        },
      },
    },
    {
      template: "/ui",
      authenticated: false,
      methods: {
        GET: async () => ({ status: 308, headers: { location: "/ui/" }, body: "" }),
      },
    },
    {
      template: "/ui/",
      prefix: true,
      authenticated: false,
      methods: {
        GET: async (req) => {
          if (!/^[A-Za-z0-9._-]{0,64}$/.test(req.rest)) throw new NotFoundError("no such file");
          return deps.ui.get(req.rest);
        },
      },
    },
  ];
}
