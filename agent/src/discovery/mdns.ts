/**
 * mDNS on `bonjour-service`, behind a small interface (`Mdns`) so the discovery logic is tested
 * without sockets. Why this library and not `mdns-js` is written down in `README.md`.
 *
 * We advertise `_ringleader._tcp.local` with the TXT fields below, browse for the same type,
 * re-query and expire the browser's cache every `refreshMs` (the library does neither on its own
 * after its first queries), and send goodbye packets (TTL 0) on stop.
 */
import { Bonjour, type Browser, type Service, type ServiceConfig } from "bonjour-service";

export const SERVICE_TYPE = "ringleader";

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

  constructor(opts: BonjourMdnsOptions = {}) {
    this.bonjour = new Bonjour(
      // Passed through to multicast-dns, which the library's config type does not describe.
      (opts.interfaceAddress ? { interface: opts.interfaceAddress } : {}) as Partial<ServiceConfig>,
      (err: Error) => opts.onError?.(err),
    );
    this.browser = this.bonjour.find({ type: SERVICE_TYPE, protocol: "tcp" });
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
    return this.browser.services.map((s) => {
      const addresses = [
        ...(s.referer?.address ? [s.referer.address] : []),
        ...(s.addresses ?? []).filter((a) => a.includes(".")),
      ];
      return { name: s.name, addresses: [...new Set(addresses)], port: s.port, txt: txtOf(s) };
    });
  }

  refresh(): void {
    if (this.stopped) return;
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
