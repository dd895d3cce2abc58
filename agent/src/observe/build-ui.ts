/**
 * Builds the dashboard (`agent/ui/*.tsx`, preact) into `dist/ui/` with esbuild: one minified ES
 * module, its stylesheet and the page. `make build` runs it after tsc:
 *
 *   node dist/agent/src/observe/build-ui.js
 *
 * esbuild does not type-check; `npx tsc -p agent/ui/tsconfig.json` does (in `make check`).
 */
import { copyFile, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UI_DIST_DIR } from "./ui-assets.js";

export const UI_SOURCE_DIR = fileURLToPath(new URL("../../../../agent/ui/", import.meta.url));

export interface UiBuild {
  readonly outDir: string;
  /** Bytes of each file written, and their gzip-free total. */
  readonly files: Record<string, number>;
  readonly totalBytes: number;
}

export async function buildUi(opts: { srcDir?: string; outDir?: string } = {}): Promise<UiBuild> {
  const srcDir = opts.srcDir ?? UI_SOURCE_DIR;
  const outDir = opts.outDir ?? UI_DIST_DIR;
  // Loaded here, not at the top: the agent imports this module's neighbours, never esbuild.
  const esbuild = await import("esbuild");
  await mkdir(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [join(srcDir, "main.tsx")],
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020", "chrome100", "safari15", "firefox100"],
    jsx: "automatic",
    jsxImportSource: "preact",
    outfile: join(outDir, "app.js"),
    legalComments: "none",
    logLevel: "warning",
  });
  await copyFile(join(srcDir, "index.html"), join(outDir, "index.html"));
  await copyFile(join(srcDir, "style.css"), join(outDir, "app.css"));
  const files: Record<string, number> = {};
  for (const name of ["index.html", "app.js", "app.css"]) files[name] = (await stat(join(outDir, name))).size;
  return { outDir, files, totalBytes: Object.values(files).reduce((a, b) => a + b, 0) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildUi();
  process.stdout.write(
    `dashboard built in ${built.outDir}: ` +
      Object.entries(built.files)
        .map(([n, b]) => `${n} ${(b / 1024).toFixed(1)} KiB`)
        .join(", ") +
      "\n",
  );
}
