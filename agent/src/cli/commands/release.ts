/**
 * `ringleader release --arch arm64`: the agent bundle an image would get, as a tarball for the
 * Ansible role (provisioning/). The work lives in images/src/release.ts.
 */
import type { Argv, CommandModule } from "yargs";
import { UsageError } from "../errors.js";
import type { GlobalArgs } from "../options.js";
import { failToBoundary } from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface ReleaseArgs extends GlobalArgs {
  arch: string;
  out: string;
  "cache-dir"?: string;
}

export const releaseCommand: CommandModule<object, ReleaseArgs> = {
  command: "release",
  describe: "Pack the agent for one architecture as a tarball for the Ansible role",
  builder: (y: Argv<object>): Argv<ReleaseArgs> =>
    y
      .option("arch", {
        type: "string",
        choices: ["arm64", "armhf", "amd64"],
        demandOption: true,
        describe: "The boards' architecture (Pi 3/4/5 on 64-bit OS: arm64; 32-bit OS: armhf)",
      })
      .option("out", {
        type: "string",
        default: "provisioning/files",
        describe: "A folder (gets ringleader-<version>-<arch>.tar.gz) or a .tar.gz path",
      })
      .option("cache-dir", {
        type: "string",
        describe: "Bundle cache (default: $RINGLEADER_CACHE_DIR or ~/.cache/ringleader)",
      })
      .example("$0 release --arch arm64", "provisioning/files/ringleader-<version>-arm64.tar.gz")
      .example("$0 release --arch amd64 --out /tmp/rl.tar.gz", "for an x86-64 machine")
      .epilog("Run `make build` first: the tarball holds the compiled dist/ and a production node_modules.")
      .fail(failToBoundary) as Argv<ReleaseArgs>,
  handler: async (args) => {
    const { makeRelease } = await import("../../../../images/src/release.js");
    const { defaultCacheDir } = await import("../../../../images/src/build.js");
    const { ToolRunner } = await import("../../../../images/src/tools.js");
    const { REPO_ROOT } = await import("../../../../images/src/templates.js");
    const { BundleError, MissingToolError } = await import("../../../../images/src/errors.js");
    try {
      const report = await makeRelease({
        tools: new ToolRunner(),
        repoRoot: REPO_ROOT,
        cacheDir: args["cache-dir"] ?? defaultCacheDir(),
        arch: args.arch as "arm64" | "armhf" | "amd64",
        out: args.out,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (args.json) return writeJson(report);
      await writeLine(`${report.file}: ${report.bytes} bytes, sha256 ${report.sha256}`);
    } catch (err) {
      if (err instanceof BundleError || err instanceof MissingToolError) throw new UsageError(err.message);
      throw err;
    }
  },
};
