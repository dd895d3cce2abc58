/**
 * Node's flags and environment for an agent process. Every launcher uses them: `cluster up`, the
 * test cluster, and the systemd launchers of the image and the Ansible role (`ringleader-agent`,
 * which spell the same flag and variable out).
 *
 * `--max-semi-space-size=8`: V8 lets the young generation grow to 2 × 16 MiB under load. An
 * agent's requests live milliseconds, and 8 MiB semi-spaces collect them as well: measured with
 * three agents under `ringleader bench` (8 s of 100-byte puts), peak RSS per agent at
 * concurrency 64 was 138-146 MB against 153-171 MB, and at concurrency 256 157-177 MB against
 * 167-174 MB, at the same throughput. Smaller semi-spaces (4, 2) or a single-threaded GC lowered
 * the peak at 64 but raised it at 256 (more requests survive into the old generation), and a
 * cap on the old generation (`--max-old-space-size=256`) cut the peak at 256 to ~140 MB but cost
 * 5-12 % of throughput: on a Pi Zero 2 W where memory is scarcer than CPU, set it in
 * `NODE_OPTIONS` (see the role's README).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=8"];

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
