/**
 * Shows that the simulator has teeth: for every deliberate defect the Raft core can switch on
 * (`BUG_NAMES`), some seed among the first few hundred must find a violation, and a seed counts
 * only when the same seed without the defect runs clean (so the defect, not something else,
 * caused it). A few seeds of the correct core must run clean too. Run by `make sim-bugs`.
 *
 *   node dist/test/sim-bugs.js [--seeds N] [--clean-seeds N] [--no-rules]
 *
 * `--no-rules` switches off the rule checks to see whether the end-to-end checkers (election
 * safety, log matching, leader completeness, state machine safety, linearizability) catch each
 * defect on their own.
 */
import { BUG_NAMES, runSimulation, type BugName, type SimResult } from "../agent/src/sim/index.js";

const MAX_SEEDS_PER_BUG = 200;
const CLEAN_SEEDS = 10;

interface Args {
  maxSeeds: number;
  cleanSeeds: number;
  ruleChecks: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { maxSeeds: MAX_SEEDS_PER_BUG, cleanSeeds: CLEAN_SEEDS, ruleChecks: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0 || v > 100_000) throw new Error(`${a} needs a whole number`);
      return v;
    };
    if (a === "--seeds") args.maxSeeds = next();
    else if (a === "--clean-seeds") args.cleanSeeds = next();
    else if (a === "--no-rules") args.ruleChecks = false;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const clean = new Map<number, SimResult>();
  const cleanRun = (seed: number): SimResult => {
    let r = clean.get(seed);
    if (r === undefined) {
      r = runSimulation({ seed, ruleChecks: args.ruleChecks });
      clean.set(seed, r);
    }
    return r;
  };
  let failures = 0;

  for (let seed = 1; seed <= args.cleanSeeds; seed++) {
    const r = cleanRun(seed);
    if (r.violations.length > 0) {
      failures++;
      const v = r.violations[0]!;
      console.log(
        `sim-bugs: the correct core fails seed ${seed}: tick ${v.tick} ${v.kind}: ${v.description}`,
      );
      console.log(`  replay: ringleader sim --seed ${seed} --nodes ${r.nodes}`);
    }
  }
  console.log(`sim-bugs: correct core, ${args.cleanSeeds} seeds, ${failures} failing`);

  for (const bug of BUG_NAMES) {
    const started = performance.now();
    const found = hunt(bug, args, cleanRun);
    const ms = Math.round(performance.now() - started);
    if (found === null) {
      failures++;
      console.log(`sim-bugs: ${bug} NOT caught in ${args.maxSeeds} seeds (${ms} ms)`);
      continue;
    }
    const v = found.result.violations[0]!;
    console.log(
      `sim-bugs: ${bug} caught at seed ${found.result.seed} (${found.tried} seeds tried, ${ms} ms): ` +
        `tick ${v.tick} ${v.kind}: ${v.description}`,
    );
    if (found.confounded.length > 0) {
      console.log(`  (seeds ${found.confounded.join(", ")} failed with and without the bug; not counted)`);
    }
  }
  console.log(`SIM-BUGS: ${failures === 0 ? "ok" : `${failures} problem(s)`}`);
  return failures === 0 ? 0 : 1;
}

function hunt(
  bug: BugName,
  args: Args,
  cleanRun: (seed: number) => SimResult,
): { result: SimResult; tried: number; confounded: number[] } | null {
  const confounded: number[] = [];
  for (let seed = 1; seed <= args.maxSeeds; seed++) {
    const result = runSimulation({ seed, bug, stopAtFirstViolation: true, ruleChecks: args.ruleChecks });
    if (result.violations.length === 0) continue;
    if (cleanRun(seed).violations.length > 0) {
      confounded.push(seed);
      continue;
    }
    return { result, tried: seed, confounded };
  }
  return null;
}

process.exitCode = main();
