/**
 * Keeps the cluster id in two places in step: this node's store (persisted, checked on every
 * start) and the meta group (key `cluster-id`), so that joiners learn it. The meta leader writes
 * the id once if the meta group has none (the founders all know it); a node whose store has none
 * yet (it joined) takes the meta group's. A mismatch is logged loudly and left alone: it means a
 * data directory from another cluster, which an operator must look at.
 */
import { META_GROUP } from "../cluster/meta.js";
import type { RaftHost } from "../node/host.js";
import type { DurableStore } from "../node/ports.js";
import type { Logger } from "../transport/types.js";

export const CLUSTER_ID_KEY = "cluster-id";

export interface ClusterIdStore {
  readonly clusterId: string | null;
  setClusterId(id: string): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class ClusterIdKeeper {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private mismatchLogged = false;

  constructor(
    private readonly host: RaftHost,
    private readonly store: DurableStore,
    private readonly ids: ClusterIdStore,
    private readonly logger: Logger,
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async round(): Promise<void> {
    if (this.busy || !this.store.hasGroup(META_GROUP)) return;
    this.busy = true;
    try {
      const rec = this.store.get(META_GROUP, CLUSTER_ID_KEY);
      const inMeta = rec ? dec.decode(rec.value) : null;
      const mine = this.ids.clusterId;
      if (inMeta && !mine) {
        await this.ids.setClusterId(inMeta);
        this.logger.info("learned the cluster id from the meta group", { clusterId: inMeta });
      } else if (mine && !inMeta && this.host.status(META_GROUP).role === "leader") {
        await this.host.propose(META_GROUP, {
          op: "put",
          key: CLUSTER_ID_KEY,
          value: enc.encode(mine),
          cas: "0",
        });
      } else if (mine && inMeta && mine !== inMeta && !this.mismatchLogged) {
        this.mismatchLogged = true;
        this.logger.error("this node's data directory belongs to another cluster id than its meta group", {
          stored: mine,
          meta: inMeta,
        });
      }
    } catch (err) {
      this.logger.debug("cluster id round failed; retrying", { error: String(err) });
    } finally {
      this.busy = false;
    }
  }
}
