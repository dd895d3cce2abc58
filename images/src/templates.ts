/**
 * The files under images/templates/, with `@@NAME@@` placeholders filled in. A placeholder
 * without a value, or a value without a placeholder, is a programming error and fails loudly.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The checkout this code runs from (dist/images/src/ → three folders up). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const TEMPLATES_DIR = join(REPO_ROOT, "images", "templates");

export function render(name: string, text: string, values: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const out = text.replace(/@@([A-Z_]+)@@/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`template ${name} needs a value for @@${key}@@`);
    used.add(key);
    return value;
  });
  for (const key of Object.keys(values)) {
    if (!used.has(key)) throw new Error(`template ${name} has no @@${key}@@`);
  }
  return out;
}

export async function renderTemplate(
  name: string,
  values: Readonly<Record<string, string>> = {},
  dir: string = TEMPLATES_DIR,
): Promise<string> {
  return render(name, await readFile(join(dir, name), "utf8"), values);
}
