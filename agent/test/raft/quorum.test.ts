import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { committedIndex, hasQuorum, majority, voteResult } from "../../src/raft/index.js";

/** The reference: the largest index n such that more than half the voters have match >= n. */
function naiveCommitted(matches: number[]): number {
  let best = 0;
  for (const n of new Set([0, ...matches])) {
    const count = matches.filter((m) => m >= n).length;
    if (count * 2 > matches.length && n > best) best = n;
  }
  return best;
}

const voterSet = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 9 });

describe("quorum maths (Raft §5.3 commit by majority)", () => {
  it("majority(n) is the smallest count greater than half", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        (n) => majority(n) * 2 > n && (majority(n) - 1) * 2 <= n,
      ),
    );
  });

  it("the committed index is the largest index stored on a majority (against a naive reference)", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 50 }), { minLength: 1, maxLength: 9 }), (matches) => {
        const voters = matches.map((_, i) => `n${i}`);
        const got = committedIndex(voters, (id) => matches[Number(id.slice(1))]!);
        assert.equal(got, naiveCommitted(matches));
      }),
    );
  });

  it("a voter missing from the match table counts as having nothing", () => {
    assert.equal(
      committedIndex(["a", "b", "c"], (id) => (id === "a" ? 9 : 0)),
      0,
    );
  });

  it("an election is won with a majority of grants and lost once a majority is out of reach", () => {
    fc.assert(
      fc.property(
        voterSet,
        fc.array(fc.constantFrom<boolean | undefined>(true, false, undefined), { maxLength: 9 }),
        (voters, pattern) => {
          const votes = new Map<string, boolean>();
          voters.forEach((id, i) => {
            const v = pattern[i];
            if (v !== undefined) votes.set(id, v);
          });
          const granted = [...votes.values()].filter(Boolean).length;
          const rejected = [...votes.values()].filter((v) => !v).length;
          const need = Math.floor(voters.length / 2) + 1;
          const expected = granted >= need ? "won" : voters.length - rejected < need ? "lost" : "pending";
          assert.equal(voteResult(voters, votes), expected);
        },
      ),
    );
  });

  it("votes from non-voters do not count", () => {
    assert.equal(
      voteResult(
        ["a", "b", "c"],
        new Map([
          ["x", true],
          ["y", true],
          ["a", true],
        ]),
      ),
      "pending",
    );
  });

  it("hasQuorum agrees with counting", () => {
    fc.assert(
      fc.property(voterSet, fc.func(fc.boolean()), (voters, active) => {
        const n = voters.filter((id) => active(id)).length;
        assert.equal(hasQuorum(voters, active), n * 2 > voters.length);
      }),
    );
  });
});
