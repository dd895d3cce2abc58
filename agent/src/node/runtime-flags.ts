/**
 * Node's flags for an agent process. Every launcher uses them: `cluster up`, the test cluster,
 * and the systemd launchers of the image and the Ansible role (`ringleader-agent`, which spell
 * the same two flags out).
 *
 * - `--max-semi-space-size=4`: V8 lets the young generation grow to 2 × 16 MiB under load. An
 *   agent's requests live a few milliseconds, so 4 MiB semi-spaces collect them just as well, and
 *   the peak RSS of an agent under `vs-etcd.sh` load drops from 153-161 MB to 136-143 MB with no
 *   loss of throughput (see issue 3's notes).
 * - `--single-threaded-gc`: no GC helper threads competing with the agent's own thread on a
 *   board with few cores; measured no slower on 2 cores with three agents and a load generator.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4", "--single-threaded-gc"];
