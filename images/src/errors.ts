/**
 * The errors of image building and flashing that callers act on. The CLI maps each to a message
 * that says what to do; tests match on the class, never on the text.
 */

/** A tool the build needs is not installed; `debianPackage` is what to `apt-get install`. */
export class MissingToolError extends Error {
  override readonly name = "MissingToolError";
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(`${tool} is not installed; install it with: apt-get install ${debianPackage}`);
  }
}

/** An external tool ran and failed; `stderr` holds the tail of what it said. */
export class ToolFailedError extends Error {
  override readonly name = "ToolFailedError";
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      `${tool} failed (exit ${exitCode ?? "signal"}): ${stderr.trim().split("\n").slice(-5).join(" | ")}`,
    );
  }
}

/** The base image is not shaped like Raspberry Pi OS (MBR, FAT boot, ext4 root, the usual files). */
export class NotRaspberryPiOsError extends Error {
  override readonly name = "NotRaspberryPiOsError";
  constructor(message: string) {
    super(`not a Raspberry Pi OS image: ${message}`);
  }
}

/** The base image is a Raspberry Pi OS the agent cannot run on (too old, unknown architecture). */
export class UnsupportedBaseError extends Error {
  override readonly name = "UnsupportedBaseError";
  constructor(message: string) {
    super(message);
  }
}

/** A compressed base image ends early (an interrupted download). */
export class TruncatedImageError extends Error {
  override readonly name = "TruncatedImageError";
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path} is truncated or corrupt (${detail}); download it again`);
  }
}

/** Not enough room: in the root file system, for growing the partition, or on the build disk. */
export class NoRoomError extends Error {
  override readonly name = "NoRoomError";
  constructor(message: string) {
    super(message);
  }
}

/** The build settings are wrong (bad hostname pattern, Wi-Fi without country, unreadable CSV). */
export class ImageSettingsError extends Error {
  override readonly name = "ImageSettingsError";
  constructor(message: string) {
    super(message);
  }
}

/** The flasher will not write to this target without `--force`; `reasons` says why. */
export class FlashRefusedError extends Error {
  override readonly name = "FlashRefusedError";
  constructor(
    readonly target: string,
    readonly reasons: readonly string[],
  ) {
    super(`refusing to write ${target}: ${reasons.join("; ")}`);
  }
}

/** The read-back of a flashed card differs from the image. */
export class VerifyFailedError extends Error {
  override readonly name = "VerifyFailedError";
  constructor(
    readonly target: string,
    readonly firstBadOffsetBytes: number,
    readonly expectedSha256: string,
    readonly actualSha256: string,
  ) {
    super(
      `verification of ${target} failed: bytes from offset ${firstBadOffsetBytes} differ ` +
        `(image sha256 ${expectedSha256.slice(0, 16)}…, card ${actualSha256.slice(0, 16)}…); ` +
        `the card may be failing or counterfeit`,
    );
  }
}

/** The user said no at the confirmation prompt (or gave no answer without a terminal). */
export class NotConfirmedError extends Error {
  override readonly name = "NotConfirmedError";
  constructor(message: string) {
    super(message);
  }
}

/** A long operation was stopped through its `AbortSignal`. */
export class AbortedError extends Error {
  override readonly name = "AbortedError";
  constructor(what: string) {
    super(`${what} was cancelled`);
  }
}

/** The agent bundle for the target could not be made (no prebuilt binary for the target, npm failed). */
export class BundleError extends Error {
  override readonly name = "BundleError";
  constructor(message: string) {
    super(message);
  }
}
