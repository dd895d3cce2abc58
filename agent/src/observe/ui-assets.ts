/**
 * The dashboard's built files (`dist/ui/`, made by `make build` from `agent/ui/`), served under
 * `/ui/` with no authentication: they hold no data, only the page that asks for it with a token.
 * Files are read once and kept in memory (they are small); names are checked against the list
 * read at start, so no path from a request ever reaches the filesystem.
 */
import { readFile, readdir } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ExtraReply } from "../api/extra-routes.js";

/** Where `build-ui` writes: dist/ui, next to dist/agent. */
export const UI_DIST_DIR = fileURLToPath(new URL("../../../ui/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

export class UiAssets {
  private files: Map<string, Buffer> | null = null;
  private loading: Promise<Map<string, Buffer>> | null = null;

  constructor(private readonly dir: string = UI_DIST_DIR) {}

  private async load(): Promise<Map<string, Buffer>> {
    const files = new Map<string, Buffer>();
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch {
      // Not built: the page says so.
    }
    for (const name of names.slice(0, 64)) {
      if (!TYPES[extname(name)]) continue;
      files.set(name, await readFile(join(this.dir, name)));
    }
    return files;
  }

  async get(rest: string): Promise<ExtraReply> {
    this.files ??= await (this.loading ??= this.load());
    const name = rest === "" || rest === "/" ? "index.html" : rest.replace(/^\//, "");
    const body = this.files.get(name);
    if (!body) {
      if (name === "index.html") {
        return {
          status: 503,
          headers: { "content-type": "text/plain; charset=utf-8" },
          body: "The dashboard is not built: run `make build` (it writes dist/ui/).\n",
        };
      }
      return { status: 404, headers: { "content-type": "text/plain; charset=utf-8" }, body: "not found\n" };
    }
    return {
      status: 200,
      headers: {
        "content-type": TYPES[extname(name)]!,
        // index.html names the bundle; the bundle is rebuilt in place, so neither is cached long.
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy":
          "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        "referrer-policy": "no-referrer",
      },
      body,
    };
  }
}
