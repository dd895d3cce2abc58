/**
 * Output helpers of the CLI: JSON for scripts, aligned tables and printable previews for people.
 * Writes wait for `drain`, so a long scan piped into a slow reader does not pile up in memory.
 */
import { once } from "node:events";

export async function write(
  text: string | Uint8Array,
  stream: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  if (!stream.write(text)) await once(stream, "drain");
}

export function writeLine(text: string): Promise<void> {
  return write(`${text}\n`);
}

export function writeJson(value: unknown): Promise<void> {
  return write(`${JSON.stringify(value)}\n`);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The value as text when it is UTF-8 without control characters (tabs and newlines allowed), else null. */
export function asPrintableText(bytes: Uint8Array): string | null {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex -- finding control characters is the point.
  return /[\u0000-\u0008\u000b-\u001f\u007f]/.test(text) ? null : text;
}

/** A one-line preview for tables: the text cut to `maxChars`, or a note saying how big the binary value is. */
export function preview(bytes: Uint8Array, maxChars = 60): string {
  const text = asPrintableText(bytes);
  if (text === null) return `<${bytes.byteLength} bytes binary>`;
  const oneLine = text.replace(/[\t\n]/g, " ");
  return oneLine.length > maxChars ? `${oneLine.slice(0, maxChars - 1)}…` : oneLine;
}

/** Left-aligned columns separated by two spaces; the header row first. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
