/**
 * The Raspberry Pi throttle word, parsed from what `vcgencmd get_throttled` and the firmware's
 * sysfs file print on real boards (values recorded from a Pi 4 on a weak supply, a hot Pi 3 and
 * a healthy Pi 5), and the reader's choice of source on a board with none of them.
 */
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  ThrottleParseError,
  detectThrottleReader,
  parseThrottled,
  throttleProblems,
} from "../../src/health/throttle.js";

describe("throttle flags", () => {
  it("reads a healthy board's 0x0 as all clear", () => {
    const s = parseThrottled("throttled=0x0\n");
    assert.equal(s.raw, 0);
    assert.equal(s.underVoltageNow, false);
    assert.equal(s.throttledOccurred, false);
    assert.deepEqual(throttleProblems(s), []);
  });

  it("reads 0x50005 (under-voltage and throttled, now and since boot)", () => {
    const s = parseThrottled("throttled=0x50005");
    assert.equal(s.underVoltageNow, true);
    assert.equal(s.throttledNow, true);
    assert.equal(s.freqCappedNow, false);
    assert.equal(s.underVoltageOccurred, true);
    assert.equal(s.throttledOccurred, true);
    assert.equal(s.freqCappedOccurred, false);
    assert.deepEqual(throttleProblems(s), [
      "under-voltage now (check the power supply)",
      "CPU throttled now",
    ]);
  });

  it("reads 0x80008 (soft temperature limit) and 0x50000 (past under-voltage only)", () => {
    const hot = parseThrottled("throttled=0x80008");
    assert.equal(hot.softTempLimitNow, true);
    assert.equal(hot.softTempLimitOccurred, true);
    assert.deepEqual(throttleProblems(hot), ["soft temperature limit active"]);
    const past = parseThrottled("throttled=0x50000");
    assert.equal(past.underVoltageNow, false);
    assert.deepEqual(throttleProblems(past), ["under-voltage occurred since boot"]);
  });

  it("reads the sysfs file's bare hex", () => {
    assert.equal(parseThrottled("50005\n").raw, 0x50005);
    assert.equal(parseThrottled("0\n").raw, 0);
  });

  it("refuses output it does not understand with a clear error", () => {
    for (const bad of ["", "throttled=", 'error=1 error_msg="Command not registered"', "0x123456789", "zz"]) {
      assert.throws(() => parseThrottled(bad), ThrottleParseError, bad);
    }
  });

  it("picks sysfs when the file is there, and none on a board without any source", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl-throttle-"));
    try {
      const file = join(dir, "get_throttled");
      await writeFile(file, "50005\n");
      const reader = await detectThrottleReader({ sysfs: file, vcgencmd: [], hwmon: join(dir, "none") });
      assert.equal(reader.source, "sysfs");
      assert.equal((await reader.read())?.underVoltageNow, true);
      await writeFile(file, "0\n");
      assert.equal((await reader.read())?.underVoltageNow, false);

      const none = await detectThrottleReader({
        sysfs: join(dir, "missing"),
        vcgencmd: [join(dir, "no-vcgencmd")],
        hwmon: join(dir, "none"),
      });
      assert.equal(none.source, "none");
      assert.equal(await none.read(), null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("falls back to the rpi_volt hwmon alarm (under-voltage only), latching the since-boot bit", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl-hwmon-"));
    try {
      const mon = join(dir, "hwmon", "hwmon3");
      await mkdir(mon, { recursive: true });
      await writeFile(join(mon, "name"), "rpi_volt\n");
      await writeFile(join(mon, "in0_lcrit_alarm"), "1\n");
      const reader = await detectThrottleReader({
        sysfs: join(dir, "missing"),
        vcgencmd: [],
        hwmon: join(dir, "hwmon"),
      });
      assert.equal(reader.source, "hwmon");
      assert.equal((await reader.read())?.underVoltageNow, true);
      await writeFile(join(mon, "in0_lcrit_alarm"), "0\n");
      const later = await reader.read();
      assert.equal(later?.underVoltageNow, false);
      assert.equal(later?.underVoltageOccurred, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
