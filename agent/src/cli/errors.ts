/**
 * The one error boundary of the CLI: it maps errors to exit codes and friendly messages, and
 * prints stack traces only with `--verbose`.
 */

/** A failure the user can fix; printed without a stack trace. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/**
 * The exit code of an agent that could not listen because another program holds its address
 * (sysexits' EX_TEMPFAIL: trying again may work). `cluster up` starts a new cluster again on other
 * ports when one of its agents exits with it.
 */
export const EXIT_ADDRESS_IN_USE = 75;

/** The exit code of an agent whose data store failed while it ran (sysexits' EX_SOFTWARE). */
export const EXIT_STORAGE_FAILED = 70;

/** The command ran and found a problem it reports itself (the simulator finding a violation). */
export class CheckFailedError extends Error {
  override readonly name = "CheckFailedError";
  constructor(message: string) {
    super(message);
  }
}

export async function runWithErrorBoundary(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    const verbose = process.argv.includes("--verbose");
    if (err instanceof UsageError) {
      process.stderr.write(`ringleader: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (err instanceof CheckFailedError) {
      process.stderr.write(`ringleader: ${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof Error) {
      process.stderr.write(`ringleader: ${err.message}\n`);
      if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
      else process.stderr.write("(run again with --verbose for details)\n");
      process.exitCode = 1;
    } else {
      process.stderr.write(`ringleader: ${String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
