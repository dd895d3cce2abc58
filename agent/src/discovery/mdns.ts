/**
 * mDNS on `bonjour-service`, behind a small interface (`Mdns`) so the discovery logic is tested
 * without sockets. Why this library and not `mdns-js` is written down in `README.md`.
 *
 * We advertise `_ringleader._tcp.local` with the TXT fields below, browse for the same type,
 * re-query the LAN on every `refresh()` (the library does not on its own after its first
 * queries), and send goodbye packets (TTL 0) on stop.
 *
 * A board that dies without a goodbye (power cut, SIGKILL) must drop out. The library's own
 * expiry cannot do it: it ages a service by its PTR record's TTL, which it advertises as 28800 s
 * (8 hours), from the first time it saw the service (an unchanged answer does not renew it). So
 * we age instances ourselves: every refresh re-queries, every live responder answers, and an
 * instance that answered none of the last `STALE_AFTER_REFRESHES` queries is no longer listed.
 */
import type { EventEmitter } from "node:events";
import { Bonjour, type Browser, type Service, type ServiceConfig } from "bonjour-service";

export const SERVICE_TYPE = "ringleader";
const TYPE_FQDN = `_${SERVICE_TYPE}._tcp.local`;

/** Re-queries an instance may miss (packet loss, a busy board) before it is taken for gone. */
export const STALE_AFTER_REFRESHES = 3;

/** Instances we track at once: a LAN flooded with junk adverts must not grow this without end. */
const MAX_TRACKED_INSTANCES = 1024;

/** bonjour-service's internals changed shape: we can no longer see its traffic to age records. */
export class MdnsLibraryError extends Error {
  override readonly name = "MdnsLibraryError";
}

interface ResourceRecord {
  readonly name: string;
  readonly type: string;
  readonly ttl?: number;
  readonly data?: unknown;
}

interface ResponsePacket {
  readonly answers?: readonly ResourceRecord[];
  readonly additionals?: readonly ResourceRecord[];
}

/** The TXT fields we publish; every value is a short string. */
export interface RingleaderTxt {
  /** Cluster name from the cluster config. */
  readonly cluster: string;
  readonly id: string;
  readonly peer: string;
  readonly api: string;
  readonly ver: string;
  /** new | locked | preparing | committed | joining | member. */
  readonly state: string;
  /** The first 8 hex digits of the cluster id, once there is one. */
  readonly cid?: string;
}

export interface Advert {
  /** Instance name, unique on the LAN: `ringleader-<node id>`. */
  readonly name: string;
  /** The host name the A records carry, e.g. `ringleader-n1.local`. */
  readonly host: string;
  readonly port: number;
  readonly txt: RingleaderTxt;
}

/** One instance seen on the LAN. */
export interface SeenService {
  readonly name: string;
  /** The address the announcement came from, then the addresses its A records named. */
  readonly addresses: readonly string[];
  readonly port: number;
  readonly txt: Record<string, string>;
}

export interface Mdns {
  /** Starts (or replaces) our advertisement. */
  publish(ad: Advert): Promise<void>;
  /** Instances currently known (our own included). */
  services(): SeenService[];
  /** Re-query the LAN and drop instances whose records expired. */
  refresh(): void;
  /** Goodbye packets for our advertisement, then close the sockets. */
  stop(): Promise<void>;
}

export interface BonjourMdnsOptions {
  /** Bind to this interface address (default: all). */
  readonly interfaceAddress?: string;
  readonly onError?: (err: Error) => void;
}

function txtOf(service: Service): Record<string, string> {
  const out: Record<string, string> = {};
  const txt = (service.txt ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(txt)) out[k] = Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  return out;
}

export class BonjourMdns implements Mdns {
  private readonly bonjour: Bonjour;
  private readonly browser: Browser;
  private service: Service | null = null;
  private stopped = false;
  /** How many re-queries we sent; an instance's entry in `heard` is the last one it answered. */
  private generation = 0;
  /** Instance FQDN (lower case) -> the generation of its last answer. */
  private readonly heard = new Map<string, number>();

  constructor(opts: BonjourMdnsOptions = {}) {
    this.bonjour = new Bonjour(
      // Passed through to multicast-dns, which the library's config type does not describe.
      (opts.interfaceAddress ? { interface: opts.interfaceAddress } : {}) as Partial<ServiceConfig>,
      (err: Error) => opts.onError?.(err),
    );
    // The library keeps its multicast-dns socket private; we only listen to it, to age records.
    const socket = (this.bonjour as unknown as { server?: { mdns?: EventEmitter } }).server?.mdns;
    if (!socket || typeof socket.on !== "function")
      throw new MdnsLibraryError(
        "bonjour-service no longer exposes server.mdns; mDNS records cannot be aged",
      );
    socket.on("response", (packet: ResponsePacket) => this.onResponse(packet));
    this.browser = this.bonjour.find({ type: SERVICE_TYPE, protocol: "tcp" });
  }

  /** Marks every instance of our type that this packet speaks for (a goodbye, TTL 0, forgets it). */
  private onResponse(packet: ResponsePacket): void {
    for (const rr of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      let instance: string | null = null;
      if (rr.type === "PTR" && rr.name.toLowerCase() === TYPE_FQDN && typeof rr.data === "string")
        instance = rr.data.toLowerCase();
      else if ((rr.type === "SRV" || rr.type === "TXT") && rr.name.toLowerCase().endsWith(`.${TYPE_FQDN}`))
        instance = rr.name.toLowerCase();
      if (instance === null) continue;
      if (rr.ttl === 0) this.heard.delete(instance);
      else if (this.heard.has(instance) || this.heard.size < MAX_TRACKED_INSTANCES)
        this.heard.set(instance, this.generation);
    }
  }

  private fresh(fqdn: string | undefined): boolean {
    const at = fqdn === undefined ? undefined : this.heard.get(fqdn.toLowerCase());
    return at !== undefined && at >= this.generation - STALE_AFTER_REFRESHES;
  }

  async publish(ad: Advert): Promise<void> {
    if (this.stopped) return;
    await this.unpublish();
    this.service = this.bonjour.publish({
      name: ad.name,
      type: SERVICE_TYPE,
      protocol: "tcp",
      port: ad.port,
      host: ad.host,
      txt: { ...ad.txt },
      // Our instance names hold the node id, unique by construction; probing only slows starts.
      probe: false,
      disableIPv6: true,
    });
  }

  private unpublish(): Promise<void> {
    const s = this.service;
    this.service = null;
    if (!s) return Promise.resolve();
    return new Promise((done) => s.stop(() => done()));
  }

  services(): SeenService[] {
    return this.browser.services
      .filter((s) => this.fresh(s.fqdn))
      .map((s) => {
        const addresses = [
          ...(s.referer?.address ? [s.referer.address] : []),
          ...(s.addresses ?? []).filter((a) => a.includes(".")),
        ];
        return { name: s.name, addresses: [...new Set(addresses)], port: s.port, txt: txtOf(s) };
      });
  }

  refresh(): void {
    if (this.stopped) return;
    this.generation++;
    for (const [instance, at] of this.heard)
      if (at < this.generation - STALE_AFTER_REFRESHES) this.heard.delete(instance);
    this.browser.expire();
    this.browser.update();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.unpublish();
    this.stopped = true;
    this.browser.stop();
    await new Promise<void>((done) => this.bonjour.destroy(() => done()));
  }
}

/** An in-memory LAN for tests: every `FakeMdns` on one `FakeLan` sees the others' adverts. */
export class FakeLan {
  readonly adverts = new Map<string, { ad: Advert; address: string }>();
}

export class FakeMdns implements Mdns {
  constructor(
    private readonly lan: FakeLan,
    private readonly address: string,
  ) {}
  private name: string | null = null;

  publish(ad: Advert): Promise<void> {
    this.name = ad.name;
    this.lan.adverts.set(ad.name, { ad, address: this.address });
    return Promise.resolve();
  }

  services(): SeenService[] {
    return [...this.lan.adverts.values()].map(({ ad, address }) => ({
      name: ad.name,
      addresses: [address],
      port: ad.port,
      txt: { ...ad.txt },
    }));
  }

  refresh(): void {}

  stop(): Promise<void> {
    if (this.name) this.lan.adverts.delete(this.name);
    return Promise.resolve();
  }
}
