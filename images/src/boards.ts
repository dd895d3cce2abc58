/**
 * Per-board hostnames. One image goes onto every card, so a board learns its name on first boot:
 * from a pattern with the board's serial number or MAC address in it (`rl-{serial}`), or from a
 * CSV of boards the user keeps (`hostname,serial` / `hostname,mac`). This file validates both at
 * build time; `templates/ringleader-firstboot` applies them on the board.
 */
import { ImageSettingsError } from "./errors.js";

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const PLACEHOLDERS = ["serial", "mac"] as const;
/** How many hex digits of the serial/MAC a placeholder becomes (the last ones: they differ most). */
export const PLACEHOLDER_DIGITS = 6;
/** A bound on the CSV: a home lab, not a data centre. */
export const MAX_BOARDS = 1000;

export function isHostname(name: string): boolean {
  return HOSTNAME_RE.test(name);
}

export interface HostnamePattern {
  readonly pattern: string;
  /** False for a plain name: then every board gets the same one (fine for a single board). */
  readonly perBoard: boolean;
}

/** Checks a pattern such as `ringleader-{serial}`: only known placeholders, a valid result. */
export function parseHostnamePattern(pattern: string): HostnamePattern {
  const unknown = [...pattern.matchAll(/\{([^}]*)\}/g)]
    .map((m) => m[1] ?? "")
    .filter((name) => !(PLACEHOLDERS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new ImageSettingsError(
      `hostname pattern ${JSON.stringify(pattern)} has unknown placeholder {${unknown[0]}}; use {serial} or {mac}`,
    );
  }
  const sample = expandPattern(pattern, "0123456789abcdef", "dc:a6:32:01:02:03");
  if (!isHostname(sample)) {
    throw new ImageSettingsError(
      `hostname pattern ${JSON.stringify(pattern)} gives ${JSON.stringify(sample)}, which is not a valid hostname ` +
        `(lowercase letters, digits and dashes, at most 63)`,
    );
  }
  return { pattern, perBoard: /\{(serial|mac)\}/.test(pattern) };
}

/** What the first-boot script computes on the board (tested against it). */
export function expandPattern(pattern: string, serial: string, mac: string): string {
  const tail = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^0-9a-f]/g, "")
      .slice(-PLACEHOLDER_DIGITS);
  return pattern.replaceAll("{serial}", tail(serial)).replaceAll("{mac}", tail(mac));
}

export interface Board {
  readonly hostname: string;
  /** Lowercase hex; matches a board whose serial ends with it (people copy the last 8 digits). */
  readonly serial: string | null;
  /** Lowercase, colon-separated. */
  readonly mac: string | null;
}

function splitCsvLine(line: string): string[] {
  return line.split(",").map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
}

/** Reads `hostname,serial[,mac]` (any column order, header required, `#` comments allowed). */
export function parseBoardsCsv(text: string): Board[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const header = lines.shift();
  if (header === undefined) throw new ImageSettingsError("the boards CSV is empty");
  const cols = splitCsvLine(header).map((c) => c.toLowerCase());
  const at = (name: string) => cols.indexOf(name);
  if (at("hostname") < 0 || (at("serial") < 0 && at("mac") < 0)) {
    throw new ImageSettingsError(
      `the boards CSV needs a header with hostname and serial or mac, got "${header}"`,
    );
  }
  if (lines.length > MAX_BOARDS)
    throw new ImageSettingsError(`the boards CSV lists more than ${MAX_BOARDS} boards`);
  const boards: Board[] = [];
  const seen = new Set<string>();
  lines.forEach((line, i) => {
    const cells = splitCsvLine(line);
    const where = `boards CSV line ${i + 2}`;
    const hostname = (cells[at("hostname")] ?? "").toLowerCase();
    if (!isHostname(hostname))
      throw new ImageSettingsError(`${where}: ${JSON.stringify(hostname)} is not a valid hostname`);
    if (seen.has(hostname)) throw new ImageSettingsError(`${where}: ${hostname} appears twice`);
    seen.add(hostname);
    const rawSerial = at("serial") >= 0 ? (cells[at("serial")] ?? "") : "";
    const rawMac = at("mac") >= 0 ? (cells[at("mac")] ?? "") : "";
    const serial = rawSerial === "" ? null : rawSerial.toLowerCase().replace(/^0x/, "");
    if (serial !== null && !/^[0-9a-f]{4,16}$/.test(serial)) {
      throw new ImageSettingsError(`${where}: serial ${JSON.stringify(rawSerial)} should be 4-16 hex digits`);
    }
    const mac = rawMac === "" ? null : rawMac.toLowerCase().replace(/-/g, ":");
    if (mac !== null && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) {
      throw new ImageSettingsError(
        `${where}: MAC ${JSON.stringify(rawMac)} should look like dc:a6:32:01:02:03`,
      );
    }
    if (serial === null && mac === null)
      throw new ImageSettingsError(`${where}: give a serial or a MAC for ${hostname}`);
    boards.push({ hostname, serial, mac });
  });
  if (boards.length === 0) throw new ImageSettingsError("the boards CSV lists no boards");
  return boards;
}

/** The file the first-boot script reads: one `serial <hex> <host>` or `mac <mac> <host>` per line. */
export function boardsList(boards: readonly Board[]): string {
  const lines = ["# Written by `ringleader image build`: how each board finds its hostname on first boot."];
  for (const b of boards) {
    if (b.serial) lines.push(`serial ${b.serial} ${b.hostname}`);
    if (b.mac) lines.push(`mac ${b.mac} ${b.hostname}`);
  }
  return lines.join("\n") + "\n";
}

/** `--peers` for a cluster of these boards: node id = hostname, reached by mDNS name. */
export function peersFor(boards: readonly Board[], peerPort: number): string {
  return boards.map((b) => `${b.hostname}=${b.hostname}.local:${peerPort}`).join(",");
}
