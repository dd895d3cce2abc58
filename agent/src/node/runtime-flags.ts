import { totalmem } from "node:os";

/**
 * Node's flags and environment for an agent process. Every launcher uses them: `cluster up`, the
 * test cluster, and the systemd launchers of the image and the Ansible role (`ringleader-agent`,
 * which spell the same flags, the heap cap's rule and the variable out in shell).
 *
 * `--max-semi-space-size=8`: V8 lets the young generation grow to 2 × 16 MiB under load. An
 * agent's requests live milliseconds, and 8 MiB semi-spaces collect them as well: measured with
 * three agents under `ringleader bench` (8 s of 100-byte puts), peak RSS per agent at
 * concurrency 64 was 138-146 MB against 153-171 MB, and at concurrency 256 157-177 MB against
 * 167-174 MB, at the same throughput. Smaller semi-spaces (4, 2) or a single-threaded GC lowered
 * the peak at 64 but raised it at 256 (more requests survive into the old generation), and a
 * cap on the old generation (`--max-old-space-size=256`) cut the peak at 256 to ~140 MB but cost
 * 5-12 % of throughput: on a Pi Zero 2 W where memory is scarcer than CPU, set it in
 * `NODE_OPTIONS` (see the role's README). The default cap is below. Measured again once the old
 * generation took in half as much per put (`CONCURRENCY=64 WARMUP=40 DURATION=30
 * NODE_FLAGS=--max-semi-space-size=4 test/bench/put-cost.sh`, two interleaved pairs against 8):
 * 4 lowered the peaks by 6-10 MB per agent at concurrency 64 and 5-11 MB at 256, but at 64 cost
 * 10-11 % of puts/s (4,931 and 5,180 against 5,524 and 5,780), 10-16 % more CPU per put and a
 * higher p99 (34.0 and 32.9 ms against 29.8 and 30.2); at 256 the pairs disagreed.
 */
const AGENT_SEMI_SPACE_FLAG = "--max-semi-space-size=8";

/**
 * The old generation's cap on machines with more than 4 GiB of memory, where V8 would pick a
 * quarter of the memory (up to 4 GiB). The cap also sets how far V8 lets the heap grow between
 * full collections (up to four times what is live with a 4 GiB limit, ~1.6 times with 1 GiB).
 * `ROUNDS=3 CONCURRENCY=64 test/bench/vs-etcd.sh` on this 24 GB machine, at the same commit:
 * capped, peak RSS 140-147 MB per agent against etcd's 119-127, puts at 116-143 % of etcd's and
 * p99 27.6-28.7 ms against 30.4-34.0; uncapped, 149-208 MB against 118-127, puts at 107-142 %,
 * p99 24.8-33.1 ms against 31.1-35.1. Boards with 4 GiB or less keep V8's own choice (1 GiB on
 * a 4 GB Pi 4, less on smaller ones). A cap in `NODE_OPTIONS` wins: Node's command-line flags
 * would override it, so none is added then.
 */
export const AGENT_MAX_OLD_SPACE_MIB = 1024;

/** The Node flags an agent starts with on a machine with `totalMemBytes` and `nodeOptions`. */
export function agentNodeFlags(
  totalMemBytes: number = totalmem(),
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  const flags = [AGENT_SEMI_SPACE_FLAG];
  const capBytes = AGENT_MAX_OLD_SPACE_MIB * 1024 * 1024;
  if (totalMemBytes / 4 > capBytes && !nodeOptions.includes("--max-old-space-size")) {
    flags.push(`--max-old-space-size=${AGENT_MAX_OLD_SPACE_MIB}`);
  }
  return flags;
}

/**
 * The environment an agent process starts with: the caller's, plus `MALLOC_ARENA_MAX=2` unless
 * the caller set it. glibc gives each thread that allocates (the LMDB write thread, libuv's
 * pool, V8's helpers) an arena of its own, up to 8 per core, and each keeps the memory it freed.
 * Two arenas: measured with three agents under `ringleader bench` (c=64 puts), anonymous RSS per
 * agent 75-85 MB against 83-121 MB, at the same throughput (3,011 and 3,165 puts/s against 3,137
 * and 3,014, interleaved). glibc reads it only at start, so launchers export it (the systemd
 * launcher `ringleader-agent` spells it out too).
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

export function agentEnv(): NodeJS.ProcessEnv {
  return { ...AGENT_ENV, ...process.env };
}
