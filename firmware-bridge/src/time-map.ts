/**
 * Device uptime to wall-clock time (PROTOCOL.md, "Time"). The bridge sends TIME, the device answers
 * with its uptime when it got it, and the pair (uptime, wall-clock midpoint of the exchange) is an
 * anchor. Anchors of one (device, boot) are append-only and stored durably, and a reading's time
 * depends only on its uptime and the anchors: so a reading sent again an hour later, or after the
 * bridge restarted, gets the same timestamp and therefore the same key.
 *
 * Anchor j covers uptimes after its own (u > u_j) up to the next anchor; the first anchor also
 * covers everything before it. A reading sampled after the device answered TIME has a larger
 * uptime, and the device sends it after the answer, so the bridge always knows the anchor that
 * covers a reading before it first sees the reading.
 */
export interface Anchor {
  uptimeMs: number;
  epochMs: number;
}

export function epochOf(anchors: readonly Anchor[], uptimeMs: number): number {
  const first = anchors[0];
  if (first === undefined) throw new RangeError("no anchor: the device has not answered TIME yet");
  let chosen = first;
  for (const a of anchors) {
    if (a.uptimeMs < uptimeMs) chosen = a;
    else break;
  }
  return chosen.epochMs + (uptimeMs - chosen.uptimeMs);
}

/**
 * Whether `measured` should become a new anchor: the first one always; later ones only when the
 * device clock has fallen behind what the anchors predict by more than `toleranceMs` (a ceramic
 * resonator, as on the Uno, may drift by 0.5 %), so anchors stay few. Never for a clock that ran
 * ahead: that anchor would step time back, and readings just after it would sort before readings
 * taken before it (seen with the simulator catching up under load). The cost: a fast clock's
 * timestamps may run ahead of the wall clock by its drift; PROTOCOL.md, "Time", says so.
 */
export function shouldAnchor(anchors: readonly Anchor[], measured: Anchor, toleranceMs: number): boolean {
  const last = anchors[anchors.length - 1];
  if (last === undefined) return true;
  if (measured.uptimeMs <= last.uptimeMs) return false;
  return measured.epochMs - epochOf(anchors, measured.uptimeMs) > toleranceMs;
}

/** Fixed-width ISO-8601 UTC with milliseconds: sorts as text in time order (years 0-9999). */
export function timestampText(epochMs: number): string {
  return new Date(epochMs).toISOString();
}
