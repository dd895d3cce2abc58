/**
 * The ring on the wire and on disk. The meta Raft group stores the ring object itself (CBOR) and
 * `ringFromObject` checks whatever a decoder produced; the text form is for people and files:
 *
 *   ringleader-ring 1
 *   partitions 64
 *   replication 3
 *   vnodes 16
 *   node pi5-kitchen 2 0012a4f0 01b3c000 …      (id, weight, then the tokens in hex, ascending)
 *
 * Every reader bounds sizes and rejects anything that is not a valid ring with `RingFormatError`
 * (never a crash, never a partly read ring): a ring that placement would read differently on two
 * nodes must not get in at all.
 */
import {
  MAX_NODES,
  MAX_PARTITIONS,
  MAX_REPLICATION_FACTOR,
  MAX_RING_TOKENS,
  MAX_VNODES_PER_WEIGHT,
  MAX_WEIGHT,
  NODE_ID_PATTERN,
  RING_FORMAT,
  RING_SIZE,
  RingFormatError,
  type Ring,
  type RingNode,
} from "./types.js";

const TEXT_MAGIC = "ringleader-ring";
/** Enough for MAX_RING_TOKENS tokens of 9 characters plus MAX_NODES node lines. */
export const MAX_RING_TEXT_CHARS = 1024 * 1024;
const RING_KEYS = ["format", "partitions", "replicationFactor", "vnodesPerWeight", "nodes"];
const NODE_KEYS = ["id", "weight", "tokens"];

/** The ring as a plain object of fresh arrays, ready for `JSON.stringify` or a CBOR encoder. */
export function ringToObject(ring: Ring): Ring {
  return {
    format: ring.format,
    partitions: ring.partitions,
    replicationFactor: ring.replicationFactor,
    vnodesPerWeight: ring.vnodesPerWeight,
    nodes: ring.nodes.map((n) => ({ id: n.id, weight: n.weight, tokens: n.tokens.slice() })),
  };
}

/** A decoded JSON or CBOR value as a ring, or `RingFormatError` saying what is wrong with it. */
export function ringFromObject(value: unknown): Ring {
  const obj = record(value, "the ring");
  onlyKeys(obj, RING_KEYS, "the ring");
  if (obj["format"] !== RING_FORMAT) {
    throw new RingFormatError(`unknown format ${JSON.stringify(obj["format"])} (expected ${RING_FORMAT})`);
  }
  const partitions = whole(obj["partitions"], "partitions", 1, MAX_PARTITIONS);
  const replicationFactor = whole(obj["replicationFactor"], "replicationFactor", 1, MAX_REPLICATION_FACTOR);
  const vnodesPerWeight = whole(obj["vnodesPerWeight"], "vnodesPerWeight", 1, MAX_VNODES_PER_WEIGHT);
  const rawNodes = obj["nodes"];
  if (!Array.isArray(rawNodes)) throw new RingFormatError("nodes is not a list");
  if (rawNodes.length > MAX_NODES) throw new RingFormatError(`more than ${MAX_NODES} nodes`);
  const nodes = rawNodes.map((raw: unknown, i) => nodeFromObject(raw, `nodes[${i}]`, vnodesPerWeight));
  checkNodes(nodes);
  return { format: RING_FORMAT, partitions, replicationFactor, vnodesPerWeight, nodes };
}

function nodeFromObject(value: unknown, where: string, vnodesPerWeight: number): RingNode {
  const obj = record(value, where);
  onlyKeys(obj, NODE_KEYS, where);
  const id = obj["id"];
  if (typeof id !== "string" || !NODE_ID_PATTERN.test(id)) {
    throw new RingFormatError(`${where}.id is not a node id`);
  }
  const weight = whole(obj["weight"], `${where}.weight`, 1, MAX_WEIGHT);
  const tokens = obj["tokens"];
  if (!Array.isArray(tokens)) throw new RingFormatError(`${where}.tokens is not a list`);
  checkTokens(tokens, `node ${id}`, vnodesPerWeight * weight);
  return { id, weight, tokens: tokens.slice() as number[] };
}

/** `vnodesPerWeight × weight` ring positions, strictly ascending. */
function checkTokens(tokens: readonly unknown[], where: string, expected: number): void {
  if (tokens.length !== expected) {
    throw new RingFormatError(`${where} has ${tokens.length} tokens, expected vnodes × weight = ${expected}`);
  }
  let previous = -1;
  for (const t of tokens) {
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= RING_SIZE) {
      throw new RingFormatError(`${where} has a token that is not a ring position: ${String(t)}`);
    }
    if (t <= previous) throw new RingFormatError(`${where} has tokens out of order or repeated`);
    previous = t;
  }
}

/** Distinct ids, distinct tokens across nodes, and a bounded total. */
function checkNodes(nodes: readonly RingNode[]): void {
  const ids = new Set<string>();
  const owner = new Map<number, string>();
  let total = 0;
  for (const node of nodes) {
    if (ids.has(node.id)) throw new RingFormatError(`node ${node.id} appears twice`);
    ids.add(node.id);
    total += node.tokens.length;
    if (total > MAX_RING_TOKENS) throw new RingFormatError(`more than ${MAX_RING_TOKENS} tokens`);
    for (const t of node.tokens) {
      const other = owner.get(t);
      if (other !== undefined) throw new RingFormatError(`nodes ${other} and ${node.id} share token ${t}`);
      owner.set(t, node.id);
    }
  }
}

/** The text form (see the module comment); `parseRing` reads it back to an equal ring. */
export function formatRing(ring: Ring): string {
  const lines = [
    `${TEXT_MAGIC} ${ring.format}`,
    `partitions ${ring.partitions}`,
    `replication ${ring.replicationFactor}`,
    `vnodes ${ring.vnodesPerWeight}`,
  ];
  for (const n of ring.nodes) {
    const tokens = n.tokens.map((t) => t.toString(16).padStart(8, "0"));
    lines.push(["node", n.id, String(n.weight), ...tokens].join(" "));
  }
  return `${lines.join("\n")}\n`;
}

/** A ring from its text form or from JSON (text starting with `{`). */
export function parseRing(text: string): Ring {
  if (text.length > MAX_RING_TEXT_CHARS)
    throw new RingFormatError(`longer than ${MAX_RING_TEXT_CHARS} characters`);
  if (text.trimStart().startsWith("{")) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new RingFormatError(`not valid JSON: ${(err as Error).message}`);
    }
    return ringFromObject(value);
  }
  const lines = text.split("\n").map((line) => line.trim());
  if (lines.at(-1) === "") lines.pop();
  const header = HEADER_NAMES.map((_, i) => headerValue(lines[i] ?? "", i));
  const [format, partitions, replicationFactor, vnodesPerWeight] = header;
  const nodes = lines.slice(4).map((line, i) => nodeFromLine(line, i + 5));
  return ringFromObject({ format, partitions, replicationFactor, vnodesPerWeight, nodes });
}

const HEADER_NAMES = [TEXT_MAGIC, "partitions", "replication", "vnodes"];

function headerValue(line: string, index: number): number {
  const name = HEADER_NAMES[index]!;
  const match = /^(\S+) (\d{1,6})$/.exec(line);
  if (match === null || match[1] !== name) {
    throw new RingFormatError(`line ${index + 1} should read "${name} <number>"`);
  }
  return Number(match[2]);
}

function nodeFromLine(line: string, lineNumber: number): { id: string; weight: number; tokens: number[] } {
  const words = line.split(" ");
  if (words[0] !== "node" || words.length < 3) {
    throw new RingFormatError(`line ${lineNumber} should read "node <id> <weight> <tokens…>"`);
  }
  const weight = /^\d{1,3}$/.test(words[2]!) ? Number(words[2]) : NaN;
  const tokens = words.slice(3).map((word) => {
    if (!/^[0-9a-f]{8}$/.test(word))
      throw new RingFormatError(`line ${lineNumber}: "${word.slice(0, 16)}" is not a token`);
    return parseInt(word, 16);
  });
  return { id: words[1]!, weight, tokens };
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RingFormatError(`${where} is not an object`);
  }
  return value as Record<string, unknown>;
}

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      throw new RingFormatError(`${where} has an unknown field ${JSON.stringify(key)}`);
  }
}

function whole(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RingFormatError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}
