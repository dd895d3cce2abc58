/**
 * Membership changes, one server at a time (Raft thesis §4.1–4.2).
 *
 * We chose single-server changes over joint consensus: every change moves the voter set by at
 * most one member, so any majority of the old set overlaps any majority of the new one, and no
 * intermediate joint configuration needs its own quorum rules. New members join as learners
 * first and are promoted once caught up, so a slow SD card never leaves the group waiting on an
 * empty log (the availability gap the thesis warns about). A configuration takes effect as soon
 * as its entry is appended to a node's log, committed or not; a leader allows one uncommitted
 * change at a time and only after it has committed an entry of its own term (the fix for the
 * single-server bug described on raft-dev in 2015).
 */
import type { ConfChange, ConfChangeType, ConfState, NodeId } from "./types.js";

const TYPES: readonly ConfChangeType[] = ["addVoter", "addLearner", "removeNode"];

export class InvalidConfChangeError extends Error {
  override readonly name = "InvalidConfChangeError";
  constructor(message: string) {
    super(message);
  }
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type: cc.type, nodeId: cc.nodeId }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new InvalidConfChangeError("conf change entry is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null)
    throw new InvalidConfChangeError("conf change is not an object");
  const { type, nodeId } = parsed as { type?: unknown; nodeId?: unknown };
  if (typeof type !== "string" || !(TYPES as readonly string[]).includes(type)) {
    throw new InvalidConfChangeError(`unknown conf change type ${String(type)}`);
  }
  if (typeof nodeId !== "string" || nodeId.length === 0 || nodeId.length > 256) {
    throw new InvalidConfChangeError("conf change node id must be a non-empty string");
  }
  return { type: type as ConfChangeType, nodeId };
}

/** The membership after applying `cc` to `cs`. Pure; never mutates `cs`. */
export function nextConfState(cs: ConfState, cc: ConfChange): ConfState {
  const voters = cs.voters.filter((id) => id !== cc.nodeId);
  const learners = cs.learners.filter((id) => id !== cc.nodeId);
  switch (cc.type) {
    case "addVoter":
      voters.push(cc.nodeId);
      break;
    case "addLearner":
      // Demoting a voter to a learner is a change of one voter too, so it is allowed.
      learners.push(cc.nodeId);
      break;
    case "removeNode":
      break;
  }
  voters.sort();
  learners.sort();
  return { voters, learners };
}

/** Why `cc` may not be proposed against `cs`, or null when it may. */
export function confChangeProblem(cs: ConfState, cc: ConfChange): string | null {
  const isVoter = cs.voters.includes(cc.nodeId);
  const isLearner = cs.learners.includes(cc.nodeId);
  switch (cc.type) {
    case "addVoter":
      return isVoter ? `${cc.nodeId} is already a voter` : null;
    case "addLearner":
      if (isLearner) return `${cc.nodeId} is already a learner`;
      if (isVoter && cs.voters.length === 1) return "cannot demote the last voter";
      return null;
    case "removeNode":
      if (!isVoter && !isLearner) return `${cc.nodeId} is not a member`;
      if (isVoter && cs.voters.length === 1) return "cannot remove the last voter";
      return null;
  }
}

export function isMember(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id);
}
