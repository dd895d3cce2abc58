/**
 * Which machine an agent runs on, for leader placement (`preferredLeader` in
 * `cluster/meta.ts`): agents on one machine share its CPU cores, so one of them leads the
 * partitions they replicate together.
 *
 * The default is the running kernel's boot id, not `/etc/machine-id`: boards written from one
 * SD-card image can share a machine id, while a boot id is drawn at random on every boot. Agents
 * in network namespaces or containers of one machine share its kernel, hence its boot id and its
 * cores, which is what placement needs to know. A reboot draws a new id, and the agent's member
 * record follows at its next start.
 */
import { readFileSync } from "node:fs";

export const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";

/** What `--machine` accepts: printable ASCII without spaces, as in the member record. */
export const MACHINE_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** Why `value` cannot name a machine (for `--machine` and a join request), or null if it can. */
export function machineProblem(value: unknown): string | null {
  return typeof value === "string" && MACHINE_PATTERN.test(value)
    ? null
    : "must be 1-128 printable characters without spaces";
}

/** `boot:<boot id>`, or undefined where the kernel does not say (the member counts as alone). */
export function machineId(file = BOOT_ID_FILE): string | undefined {
  let id: string;
  try {
    id = readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
  return id !== "" && machineProblem(`boot:${id}`) === null ? `boot:${id}` : undefined;
}

/**
 * The `--machine` that makes a local agent count as a board of its own, so that partition
 * leaders spread over it and its siblings (`cluster up --spread-leaders`, and the test clusters).
 */
export function ownMachine(nodeId: string): string {
  return `${nodeId}.local`;
}

/** A machine as a table shows it: a boot id by its first 8 hex digits, a given name whole. */
export function machineLabel(machine: string | undefined): string {
  if (machine === undefined) return "-";
  return machine.startsWith("boot:") ? machine.slice(0, "boot:".length + 8) : machine;
}
