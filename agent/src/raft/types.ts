/**
 * The data types of the Raft core. Everything here is plain data (no classes with behaviour) so
 * that it crosses the wire as CBOR maps and lands on disk as LMDB values unchanged.
 */

/** A node id is created once per board and stored; it is never an address. */
export type NodeId = string;

/** Identifies one Raft group; one process hosts many (the meta group and every partition). */
export type GroupId = number;

export const NO_NODE: NodeId = "";

export type EntryType = "normal" | "conf";

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** Opaque to the core. For `conf` entries it is an encoded `ConfChange` (see `confchange.ts`). */
  readonly data: Uint8Array;
}

/** What must be on disk before a node sends anything that depends on it. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/** The membership of a group. Learners receive the log but neither vote nor count for commit. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's image at `metadata.index`, opaque to the core. */
  readonly data: Uint8Array;
}

export type ConfChangeType = "addVoter" | "addLearner" | "removeNode";

/** One server at a time: every change adds or removes a single voter or learner. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

export type MessageType =
  | "hup" // local: start an election (tick or campaign())
  | "beat" // local: leader sends heartbeats
  | "prop" // a proposal, local or forwarded by a follower
  | "app" // AppendEntries
  | "appResp"
  | "vote" // RequestVote
  | "voteResp"
  | "preVote"
  | "preVoteResp"
  | "snap" // InstallSnapshot
  | "heartbeat"
  | "heartbeatResp"
  | "readIndex" // a follower asks the leader for a read index
  | "readIndexResp"
  | "transferLeader"
  | "timeoutNow"
  | "unreachable" // local: the transport could not deliver to `from`
  | "snapStatus"; // local: the transport reports how sending a snapshot to `from` went

/**
 * One message between Raft peers. Fields that a type does not use are left at their zero value;
 * keeping one flat shape keeps the wire encoding and the decoder's bounds checks simple.
 */
export interface Message {
  readonly type: MessageType;
  readonly group: GroupId;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** app: the term of the entry at `index`; vote: the candidate's last log term. */
  readonly logTerm: number;
  /** app: the index before `entries`; appResp: the follower's last matching (or hint) index. */
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** appResp on reject: the follower's guess of where the logs match (fast back-tracking). */
  readonly rejectHint: number;
  /** appResp on reject: the term of the follower's entry at `rejectHint`. */
  readonly rejectTerm: number;
  /** readIndex/heartbeat: an opaque request context echoed back in the response. */
  readonly context: Uint8Array;
  readonly snapshot: Snapshot | null;
}

/** A linearizable read that is ready: once `applied >= index`, local state answers `context`. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** The volatile state that changes rarely and is worth reporting to the application. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/**
 * What the application must do next, in this order:
 *  0. send `earlyMessages` at once, even before persisting (optional: they may also go with
 *     `messages`): a leader's appends and heartbeats whose commit index this node already holds
 *     on disk. Replicating while the leader's own write is under way is safe (thesis §10.2.1):
 *     nothing in them tells a follower that an entry not yet on the leader's disk is committed;
 *  1. persist `hardState`, `entries` and `snapshot` (and fsync when `mustSync`);
 *  2. only then send `messages` (a vote or an append acknowledged before it is on disk can
 *     lose committed data after a crash);
 *  3. apply `snapshot` then `committedEntries` to the state machine, in order;
 *  4. answer the reads in `readStates` once applied has reached their index;
 *  5. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly earlyMessages: readonly Message[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export function emptyMessage(type: MessageType, group: GroupId, from: NodeId, to: NodeId): Message {
  return {
    type,
    group,
    from,
    to,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    rejectTerm: 0,
    context: EMPTY_BYTES,
    snapshot: null,
  };
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NO_NODE && hs.commit === 0;
}
