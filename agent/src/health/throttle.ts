/**
 * Raspberry Pi throttling and under-voltage flags, as the firmware reports them. The firmware
 * keeps one 32-bit word: the low bits say what is happening now, bits 16-19 what has happened
 * since boot. `vcgencmd get_throttled` prints it as `throttled=0x50005`; the firmware driver
 * exposes the same word in sysfs as bare hex (`50005`). On boards without the firmware (this x86
 * machine, most non-Pi boards) the state is unknown, which is not the same as "fine".
 */
import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";

export interface ThrottleState {
  /** The raw firmware word, for anyone who wants the bits the fields below leave out. */
  readonly raw: number;
  readonly underVoltageNow: boolean;
  readonly freqCappedNow: boolean;
  readonly throttledNow: boolean;
  readonly softTempLimitNow: boolean;
  readonly underVoltageOccurred: boolean;
  readonly freqCappedOccurred: boolean;
  readonly throttledOccurred: boolean;
  readonly softTempLimitOccurred: boolean;
}

export type ThrottleSource = "vcgencmd" | "sysfs" | "hwmon" | "none";

export class ThrottleParseError extends Error {
  override readonly name = "ThrottleParseError";
}

const bit = (word: number, n: number): boolean => ((word >>> n) & 1) === 1;

export function throttleFromWord(word: number): ThrottleState {
  if (!Number.isInteger(word) || word < 0 || word > 0xffffffff) {
    throw new ThrottleParseError(`throttle word ${word} is not a 32-bit unsigned integer`);
  }
  return {
    raw: word,
    underVoltageNow: bit(word, 0),
    freqCappedNow: bit(word, 1),
    throttledNow: bit(word, 2),
    softTempLimitNow: bit(word, 3),
    underVoltageOccurred: bit(word, 16),
    freqCappedOccurred: bit(word, 17),
    throttledOccurred: bit(word, 18),
    softTempLimitOccurred: bit(word, 19),
  };
}

/**
 * Parses `vcgencmd get_throttled` output (`throttled=0x50005`) or the sysfs file (`50005`, hex
 * without a prefix). Anything else is a `ThrottleParseError`, so a firmware that changes its
 * format shows up as "unknown" with a reason instead of as a healthy board.
 */
export function parseThrottled(text: string): ThrottleState {
  const t = text.trim();
  const m = /^(?:throttled=)?(?:0x)?([0-9a-fA-F]{1,8})$/.exec(t);
  if (!m) throw new ThrottleParseError(`unexpected throttle output ${JSON.stringify(t.slice(0, 60))}`);
  return throttleFromWord(parseInt(m[1]!, 16));
}

/** Whether anything about the flags deserves a warning now. */
export function throttleProblems(s: ThrottleState): string[] {
  const out: string[] = [];
  if (s.underVoltageNow) out.push("under-voltage now (check the power supply)");
  else if (s.underVoltageOccurred) out.push("under-voltage occurred since boot");
  if (s.throttledNow) out.push("CPU throttled now");
  if (s.freqCappedNow) out.push("CPU frequency capped now");
  if (s.softTempLimitNow) out.push("soft temperature limit active");
  return out;
}

export const SYSFS_THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled";
const HWMON_DIR = "/sys/class/hwmon";

/** Where a board's flags come from; `read()` costs one file read (or one vcgencmd process). */
export interface ThrottleReader {
  readonly source: ThrottleSource;
  read(): Promise<ThrottleState | null>;
}

function runVcgencmd(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, ["get_throttled"], { timeout: 2000, maxBuffer: 4096 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

/** The hwmon device of the Pi's voltage monitor (`rpi_volt`): under-voltage only. */
async function findRpiVoltAlarm(hwmonDir: string): Promise<string | null> {
  let names: string[];
  try {
    names = await readdir(hwmonDir);
  } catch {
    return null;
  }
  for (const n of names.slice(0, 32)) {
    try {
      const name = (await readFile(join(hwmonDir, n, "name"), "utf8")).trim();
      if (name === "rpi_volt") return join(hwmonDir, n, "in0_lcrit_alarm");
    } catch {
      // Not every hwmon entry has a name; skip it.
    }
  }
  return null;
}

/**
 * Picks the cheapest source that works, once: the sysfs file (one read, no process), else
 * `vcgencmd` (a process per sample, which a Zero 2 W notices), else the hwmon under-voltage alarm
 * (which knows nothing of throttling: only bits 0 and 16 are set from it), else none.
 */
export async function detectThrottleReader(
  paths: { sysfs?: string; vcgencmd?: string[]; hwmon?: string } = {},
): Promise<ThrottleReader> {
  const sysfs = paths.sysfs ?? SYSFS_THROTTLED;
  try {
    parseThrottled(await readFile(sysfs, "utf8"));
    return { source: "sysfs", read: async () => parseThrottled(await readFile(sysfs, "utf8")) };
  } catch {
    // Not a Pi, or an old kernel without the firmware driver's file.
  }
  for (const path of paths.vcgencmd ?? ["/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd"]) {
    try {
      parseThrottled(await runVcgencmd(path));
      return { source: "vcgencmd", read: async () => parseThrottled(await runVcgencmd(path)) };
    } catch {
      // Absent, or present without access to the firmware (e.g. in a container).
    }
  }
  const alarm = await findRpiVoltAlarm(paths.hwmon ?? HWMON_DIR);
  if (alarm) {
    let seen = false;
    return {
      source: "hwmon",
      read: async () => {
        const now = (await readFile(alarm, "utf8")).trim() === "1";
        seen ||= now;
        return throttleFromWord((now ? 1 : 0) | (seen ? 1 << 16 : 0));
      },
    };
  }
  return { source: "none", read: async () => null };
}
