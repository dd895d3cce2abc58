/**
 * A tiny seeded generator (xorshift32) for Raft election jitter. Not for anything that needs
 * quality or secrecy: it only has to keep nodes from timing out in lockstep.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}
