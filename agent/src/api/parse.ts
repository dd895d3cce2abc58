/**
 * Parsing of what a request names: the key in the path, the query parameters and their values.
 * Pure functions that throw `BadRequestError`, so tests feed them strings directly.
 */
import { STRATEGIES, isStrategy, type Strategy } from "../balance/index.js";
import { BadRequestError } from "./errors.js";
import type { ApiLimits } from "./limits.js";
import { CONSISTENCIES, type Consistency } from "./service.js";

/** Most parameters in one query string; no route takes more than five. */
const MAX_QUERY_PARAMS = 16;
/** Longest version string; 20 digits hold any 64-bit counter with room to spare. */
const MAX_VERSION_DIGITS = 32;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** Printable ASCII with no escape (and no `+` to turn into a space) decodes to itself. */
function isPlainAscii(raw: string, plusIsSpace: boolean): boolean {
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code < 0x21 || code > 0x7e || code === 0x25 || (plusIsSpace && code === 0x2b)) return false;
  }
  return true;
}

/**
 * Percent-decodes `raw` to bytes and then to text, refusing what `decodeURIComponent` would
 * silently accept or turn into U+FFFD: broken escapes, characters outside printable ASCII and
 * bytes that are not UTF-8. With `plusIsSpace` a `+` is a space, as in form-encoded queries.
 */
export function percentDecode(
  raw: string,
  what: string,
  plusIsSpace: boolean,
): { text: string; bytes: number } {
  if (isPlainAscii(raw, plusIsSpace)) return { text: raw, bytes: raw.length };
  const bytes = new Uint8Array(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 0x25) {
      const high = hexValue(raw.charCodeAt(i + 1));
      const low = hexValue(raw.charCodeAt(i + 2));
      if (high < 0 || low < 0) throw new BadRequestError(`${what}: broken percent-escape at offset ${i}`);
      bytes[length++] = high * 16 + low;
      i += 2;
    } else if (code < 0x21 || code > 0x7e) {
      throw new BadRequestError(`${what}: characters outside printable ASCII must be percent-encoded`);
    } else {
      bytes[length++] = plusIsSpace && code === 0x2b ? 0x20 : code;
    }
  }
  try {
    return { text: utf8.decode(bytes.subarray(0, length)), bytes: length };
  } catch {
    throw new BadRequestError(`${what}: not valid UTF-8 once percent-decoded`);
  }
}

/** The key named by the path after `/v1/kv/`: percent-decoded, non-empty, bounded. It may contain `/`. */
export function decodeKey(rawPath: string, maxKeyBytes: number): string {
  if (rawPath.length === 0) throw new BadRequestError("the key is empty: use /v1/kv/<key>");
  // Checking the encoded length first bounds the work: an escape is at most three characters per byte.
  if (rawPath.length > maxKeyBytes * 3)
    throw new BadRequestError(`the key is longer than ${maxKeyBytes} bytes`);
  const { text, bytes } = percentDecode(rawPath, "key", false);
  if (bytes > maxKeyBytes)
    throw new BadRequestError(`the key is ${bytes} bytes; the limit is ${maxKeyBytes}`);
  return text;
}

/**
 * The parameters of a query string, each at most once and each one the route takes: a misspelt
 * `consistancy=weak` is an error, not a silent strong read.
 */
export function parseQuery(rawQuery: string, allowed: readonly string[]): Map<string, string> {
  const params = new Map<string, string>();
  if (rawQuery.length === 0) return params;
  const pairs = rawQuery.split("&");
  if (pairs.length > MAX_QUERY_PARAMS)
    throw new BadRequestError(`more than ${MAX_QUERY_PARAMS} query parameters`);
  for (const pair of pairs) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf("=");
    const name = percentDecode(eq < 0 ? pair : pair.slice(0, eq), "query parameter name", true).text;
    const value = eq < 0 ? "" : percentDecode(pair.slice(eq + 1), `query parameter ${name}`, true).text;
    if (!allowed.includes(name)) {
      const takes = allowed.length === 0 ? "none" : allowed.join(", ");
      throw new BadRequestError(`unknown query parameter "${name}" (this route takes: ${takes})`);
    }
    if (params.has(name)) throw new BadRequestError(`query parameter "${name}" given twice`);
    params.set(name, value);
  }
  return params;
}

/** The `cas` parameter: absent, or a version (decimal digits; `0` means "only if absent"). */
export function parseCas(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || value.length > MAX_VERSION_DIGITS) {
    throw new BadRequestError(
      `cas must be a version (decimal digits, 0 for "only if absent"), got "${value}"`,
    );
  }
  return value;
}

/** `?strategy=` of an eventual read: absent, or one of `STRATEGIES`. */
export function parseStrategyParam(value: string | undefined): Strategy | undefined {
  if (value === undefined) return undefined;
  if (!isStrategy(value)) {
    throw new BadRequestError(
      `strategy must be one of ${STRATEGIES.join(", ")}, got "${value.slice(0, 40)}"`,
    );
  }
  return value;
}

export function parseConsistency(value: string | undefined): Consistency {
  if (value === undefined) return "strong";
  const found = CONSISTENCIES.find((c) => c === value);
  if (found === undefined) {
    throw new BadRequestError(`consistency must be one of ${CONSISTENCIES.join(", ")}, got "${value}"`);
  }
  return found;
}

export function parseLimit(value: string | undefined, limits: ApiLimits): number {
  if (value === undefined) return limits.defaultScanLimit;
  const limit = /^[0-9]{1,7}$/.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= limits.maxScanLimit)) {
    throw new BadRequestError(`limit must be an integer from 1 to ${limits.maxScanLimit}, got "${value}"`);
  }
  return limit;
}

/** A bounded UTF-8 string parameter such as `prefix` or `after`. */
export function parseBoundedText(
  value: string | undefined,
  name: string,
  maxBytes: number,
): string | undefined {
  if (value === undefined) return undefined;
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > maxBytes) throw new BadRequestError(`${name} is ${bytes} bytes; the limit is ${maxBytes}`);
  return value;
}
