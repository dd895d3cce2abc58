/**
 * The operation mix of `ringleader bench`: weights of puts and of gets at each consistency level,
 * parsed from `put=1,get=3,weak=1,eventual=0` and sampled with a number in [0, 1).
 */

export type OpKind = "put" | "get-strong" | "get-weak" | "get-eventual";

export const OP_KINDS: readonly OpKind[] = ["put", "get-strong", "get-weak", "get-eventual"];

export type Mix = Readonly<Record<OpKind, number>>;

/** Invalid `--mix` text. */
export class MixError extends Error {
  override readonly name = "MixError";
  constructor(message: string) {
    super(message);
  }
}

/** The names `--mix` accepts for each kind; `get` alone is a strong (linearizable) get. */
const NAMES: Readonly<Record<string, OpKind>> = {
  put: "put",
  get: "get-strong",
  strong: "get-strong",
  "get-strong": "get-strong",
  weak: "get-weak",
  "get-weak": "get-weak",
  eventual: "get-eventual",
  "get-eventual": "get-eventual",
};

/** Parses `name=weight,...`; kinds not named get weight 0; the weights need not sum to 1. */
export function parseMix(text: string): Mix {
  const mix: Record<OpKind, number> = { put: 0, "get-strong": 0, "get-weak": 0, "get-eventual": 0 };
  const seen = new Set<OpKind>();
  for (const part of text.split(",")) {
    const trimmed = part.trim();
    if (trimmed === "") continue;
    const match = /^([a-z-]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)$/.exec(trimmed);
    const kind = match?.[1] === undefined ? undefined : NAMES[match[1]];
    if (!match || kind === undefined) {
      throw new MixError(
        `bad --mix part "${trimmed}": expected NAME=WEIGHT with NAME one of ${Object.keys(NAMES).join(", ")}`,
      );
    }
    if (seen.has(kind)) throw new MixError(`--mix names ${kind} twice`);
    seen.add(kind);
    mix[kind] = Number(match[2]);
  }
  const total = OP_KINDS.reduce((sum, kind) => sum + mix[kind], 0);
  if (!(total > 0)) throw new MixError("--mix needs at least one weight above 0");
  return mix;
}

/** The kinds with a weight above zero, in `OP_KINDS` order. */
export function activeKinds(mix: Mix): OpKind[] {
  return OP_KINDS.filter((kind) => mix[kind] > 0);
}

/** The kind whose share of the total weight contains `r` (in [0, 1)). */
export function pickOp(mix: Mix, r: number): OpKind {
  const kinds = activeKinds(mix);
  const total = kinds.reduce((sum, kind) => sum + mix[kind], 0);
  let point = r * total;
  for (const kind of kinds) {
    point -= mix[kind];
    if (point < 0) return kind;
  }
  // Rounding can leave `point` at a hair above zero for r close to 1.
  return kinds[kinds.length - 1] ?? "put";
}

export function formatMix(mix: Mix): string {
  return activeKinds(mix)
    .map((kind) => `${kind}=${mix[kind]}`)
    .join(",");
}
