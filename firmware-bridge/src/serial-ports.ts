/**
 * Finding Arduino boards and keeping their ports open: the supervisor rescans every few seconds,
 * opens boards that appeared (or the paths it was given, once they exist), and forgets ports that
 * closed, so unplugging and replugging a board, or plugging in a second one, needs no restart.
 */
import { readdir, readFile, realpath } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../../agent/src/node/logger.js";
import { BurstLog } from "./burst-log.js";

export interface PortInfo {
  path: string;
  vendorId?: string | undefined;
  productId?: string | undefined;
}

/**
 * USB ids of boards that run the sketch: Arduino's own vendor ids (any product), and the
 * USB-serial chips of common clones. Lower-case hex, as `SerialPort.list()` reports them.
 */
export const ARDUINO_USB_IDS: readonly { vendorId: string; productId?: string; what: string }[] = [
  { vendorId: "2341", what: "Arduino SA (Uno, Mega, Nano Every, ...)" },
  { vendorId: "2a03", what: "Arduino.org (Uno, Mega)" },
  { vendorId: "1a86", productId: "7523", what: "WCH CH340 (most clones)" },
  { vendorId: "0403", productId: "6001", what: "FTDI FT232R (Nano, Duemilanove)" },
  { vendorId: "10c4", productId: "ea60", what: "Silicon Labs CP210x" },
];

export function isArduino(p: PortInfo): boolean {
  const vendor = p.vendorId?.toLowerCase();
  const product = p.productId?.toLowerCase();
  return ARDUINO_USB_IDS.some((id) => id.vendorId === vendor && (!id.productId || id.productId === product));
}

/**
 * Serial ports with their USB ids. `SerialPort.list()` asks `udevadm`, which minimal images and
 * containers lack; then the ids come straight from sysfs.
 */
export async function listPorts(
  list: () => Promise<PortInfo[]>,
  sysfsRoot = "/sys/class/tty",
): Promise<PortInfo[]> {
  try {
    return await list();
  } catch {
    return listPortsFromSysfs(sysfsRoot);
  }
}

export async function listPortsFromSysfs(sysfsRoot: string): Promise<PortInfo[]> {
  let names: string[];
  try {
    names = await readdir(sysfsRoot);
  } catch {
    return [];
  }
  const out: PortInfo[] = [];
  for (const name of names.filter((n) => /^tty(ACM|USB)\d+$/.test(n)).sort()) {
    const info: PortInfo = { path: `/dev/${name}` };
    try {
      // …/usbN/N-M/N-M:1.0/tty/ttyACM0 → the USB device directory above the interface holds the ids.
      let dir = await realpath(join(sysfsRoot, name, "device"));
      for (let up = 0; up < 4 && dir !== "/"; up++, dir = dirname(dir)) {
        const vendor = await readFile(join(dir, "idVendor"), "utf8").catch(() => null);
        if (vendor === null) continue;
        info.vendorId = vendor.trim().toLowerCase();
        info.productId = (await readFile(join(dir, "idProduct"), "utf8")).trim().toLowerCase();
        break;
      }
    } catch {
      // No device link (a virtual tty): listed without ids.
    }
    out.push(info);
  }
  return out;
}

/** What the supervisor needs of an open port (a `SerialPort`, a `SerialPortMock`, or a fake). */
export interface PortHandle {
  readonly path: string;
  /** Queues bytes; false when the port's backlog is too long and the bytes were dropped. */
  write(bytes: Uint8Array): boolean;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once, when the port closes for any reason (unplugged, error, `close()`). */
  onClose(listener: (err: Error | null) => void): void;
  close(): Promise<void>;
}

/** The subset of serialport's `SerialPortStream` used here; both `SerialPort` and `SerialPortMock` fit. */
export interface SerialPortLike {
  open(callback: (err: Error | null) => void): void;
  write(data: Buffer): boolean;
  close(callback: (err: Error | null) => void): void;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "close", listener: (err?: Error | null) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  readonly isOpen: boolean;
  readonly writableLength: number;
}

export type SerialPortFactory = (options: {
  path: string;
  baudRate: number;
  autoOpen: false;
}) => SerialPortLike;

/** Bytes waiting to go out beyond which frames to the device are dropped (it resends). */
const MAX_WRITE_BACKLOG_BYTES = 4096;

export async function openSerialPort(
  factory: SerialPortFactory,
  path: string,
  baudRate: number,
): Promise<PortHandle> {
  const port = factory({ path, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const closeListeners: ((err: Error | null) => void)[] = [];
  let closed = false;
  const finish = (err: Error | null) => {
    if (closed) return;
    closed = true;
    for (const l of closeListeners) l(err);
  };
  port.on("close", (err) => finish(err ?? null));
  // serialport reports a failed read (the board was unplugged) as an error, then closes.
  port.on("error", (err) => finish(err));
  return {
    path,
    write(bytes) {
      if (closed || port.writableLength > MAX_WRITE_BACKLOG_BYTES) return false;
      port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return true;
    },
    onData(listener) {
      port.on("data", listener);
    },
    onClose(listener) {
      closeListeners.push(listener);
    },
    close() {
      if (!port.isOpen) {
        finish(null);
        return Promise.resolve();
      }
      return new Promise<void>((resolve) =>
        port.close(() => {
          finish(null);
          resolve();
        }),
      );
    },
  };
}

export interface SupervisorOptions {
  /** "auto" opens every Arduino the scan finds; otherwise exactly these paths. */
  ports: "auto" | readonly string[];
  baudRate: number;
  rescanMs: number;
  list: () => Promise<PortInfo[]>;
  open: (path: string, baudRate: number) => Promise<PortHandle>;
  /** A port is open: wire it up. The returned function is called when it closes. */
  attach: (handle: PortHandle) => () => void;
  logger: Logger;
}

export class PortSupervisor {
  private readonly open = new Map<string, PortHandle>();
  private readonly opening = new Set<string>();
  private readonly openLogs = new Map<string, BurstLog>();
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: SupervisorOptions) {}

  get openPorts(): string[] {
    return [...this.open.keys()];
  }

  start(): void {
    this.scanning = this.scan();
    this.timer = setInterval(() => {
      if (!this.scanning) this.scanning = this.scan();
    }, this.opts.rescanMs);
  }

  /** Scans now (tests call this rather than wait for the timer). */
  async rescan(): Promise<void> {
    await this.scanning;
    this.scanning = this.scan();
    await this.scanning;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.scanning;
    await Promise.all([...this.open.values()].map((h) => h.close()));
  }

  private async scan(): Promise<void> {
    try {
      const wanted = await this.wantedPaths();
      await Promise.all(
        wanted.filter((p) => !this.open.has(p) && !this.opening.has(p)).map((p) => this.tryOpen(p)),
      );
    } catch (err) {
      this.opts.logger.warn("port scan failed", { error: String(err) });
    } finally {
      this.scanning = null;
    }
  }

  private async wantedPaths(): Promise<string[]> {
    if (this.opts.ports !== "auto") return [...this.opts.ports];
    const found = await listPorts(this.opts.list);
    return found.filter(isArduino).map((p) => p.path);
  }

  private async tryOpen(path: string): Promise<void> {
    if (this.stopped) return;
    this.opening.add(path);
    let handle: PortHandle;
    try {
      handle = await this.opts.open(path, this.opts.baudRate);
    } catch (err) {
      let log = this.openLogs.get(path);
      if (!log) {
        log = new BurstLog(this.opts.logger, "warn", "cannot open the serial port; retrying", 60_000);
        this.openLogs.set(path, log);
      }
      log.note({ port: path, error: err instanceof Error ? err.message : String(err) });
      return;
    } finally {
      this.opening.delete(path);
    }
    if (this.stopped) {
      await handle.close();
      return;
    }
    this.openLogs.get(path)?.recovered("serial port open", { port: path });
    this.opts.logger.info("serial port open", { port: path, baud: this.opts.baudRate, name: basename(path) });
    this.open.set(path, handle);
    const detach = this.opts.attach(handle);
    handle.onClose((err) => {
      this.open.delete(path);
      detach();
      if (!this.stopped) {
        this.opts.logger.warn("serial port closed; waiting for it to come back", {
          port: path,
          ...(err ? { error: err.message } : {}),
        });
      }
    });
  }
}
