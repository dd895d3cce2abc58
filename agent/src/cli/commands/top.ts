/**
 * `ringleader top`: the `status` overview redrawn in place every `--interval` seconds, like
 * top(1). It uses the terminal's alternate screen, redraws at once when the window is resized,
 * and restores the screen and cursor on Ctrl-C (or after `--count` frames). When stdout is not a
 * terminal it prints each frame after a separator line instead, so it can be piped or logged;
 * `--json` prints one JSON document per frame and line (NDJSON) for scripts.
 */
import type { Argv, CommandModule } from "yargs";
import { UsageError } from "../errors.js";
import { ANSI, PLAIN, cut, fetchOverview, renderOverview } from "../observe/overview.js";
import { clientConfigFromArgs, withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";

interface TopArgs extends GlobalArgs, ClientArgs {
  interval: number;
  count?: number;
}

const ENTER = "\x1b[?1049h\x1b[?25l";
const LEAVE = "\x1b[?25h\x1b[?1049l";
const HOME = "\x1b[H";
const CLEAR_LINE_END = "\x1b[K";
const CLEAR_BELOW = "\x1b[J";

/** One frame for a terminal of `rows` × `cols`: every line cut and cleared to its end, then the rest. */
export function frameFor(lines: readonly string[], rows: number, cols: number): string {
  const shown = lines.slice(0, Math.max(1, rows - 1)).map((l) => cut(l, cols) + CLEAR_LINE_END);
  return HOME + shown.join("\n") + "\n" + CLEAR_BELOW;
}

export const topCommand: CommandModule<object, TopArgs> = {
  command: "top",
  describe: "A live view of the cluster, redrawn in place (Ctrl-C quits)",
  builder: (y: Argv<object>): Argv<TopArgs> =>
    withClientOptions(y)
      .option("interval", { type: "number", default: 2, describe: "Seconds between refreshes (0.5-3600)" })
      .option("count", { type: "number", describe: "Stop after this many frames (default: until Ctrl-C)" })
      .example("$0 top", "Watch the local cluster")
      .example("$0 top --interval 10 --endpoints http://pi1.local:7000", "Watch a home lab, every 10 s")
      .example("$0 top --json --interval 60 >> cluster.ndjson", "Log the health view once a minute"),
  handler: async (args) => {
    if (!(args.interval >= 0.5 && args.interval <= 3600))
      throw new UsageError("--interval must be 0.5-3600 seconds");
    if (args.count !== undefined && !(Number.isInteger(args.count) && args.count > 0)) {
      throw new UsageError("--count must be a positive whole number");
    }
    const config = clientConfigFromArgs(args);
    const out = process.stdout;
    const json = args.json === true;
    const tty = out.isTTY === true && !json;
    let lastLines: string[] = ["connecting…"];
    let frames = 0;
    let stopped = false;
    let wake: (() => void) | null = null;
    const draw = (): void => {
      if (tty) out.write(frameFor(lastLines, out.rows || 24, out.columns || 80));
      else out.write(`--- ${new Date().toISOString()}\n${lastLines.join("\n")}\n`);
    };
    const stop = (): void => {
      stopped = true;
      wake?.();
    };
    const onResize = (): void => draw();
    if (tty) {
      out.write(ENTER);
      out.on("resize", onResize);
    }
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    try {
      while (!stopped) {
        const { overview, errors } = await fetchOverview(config.endpoints, config.token, args.timeout, {
          statuses: true,
        });
        if (json) {
          const at = new Date().toISOString();
          const doc = overview
            ? { at, api: overview.api, health: overview.health, nodes: [...overview.statuses.values()] }
            : { at, errors };
          out.write(`${JSON.stringify(doc)}\n`);
        } else {
          lastLines = overview
            ? renderOverview(overview, { style: tty ? ANSI : PLAIN, now: new Date() })
            : ["no endpoint answered /v1/health:", ...errors.map((e) => `  ${e}`)];
          if (tty) lastLines.push("", ANSI.dim(`every ${args.interval} s · Ctrl-C quits`));
          draw();
        }
        frames++;
        if (args.count !== undefined && frames >= args.count) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, args.interval * 1000);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = null;
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      if (tty) {
        out.off("resize", onResize);
        out.write(LEAVE);
      }
    }
  },
};
