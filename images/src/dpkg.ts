/**
 * Reading Debian control data: the base image's dpkg status (which packages it has, for which
 * architecture) and os-release. Plain text parsers, no IO.
 */

export interface InstalledPackage {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
}

/** Stanzas of a Debian control file, field names lowercased; continuation lines are dropped. */
export function parseControl(text: string): Map<string, string>[] {
  const stanzas: Map<string, string>[] = [];
  let current = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      if (current.size > 0) stanzas.push(current);
      current = new Map();
      continue;
    }
    if (line.startsWith(" ") || line.startsWith("\t")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    current.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  if (current.size > 0) stanzas.push(current);
  return stanzas;
}

/** Packages dpkg considers installed (`Status: install ok installed`), by name. */
export function installedPackages(statusText: string): Map<string, InstalledPackage> {
  const out = new Map<string, InstalledPackage>();
  for (const s of parseControl(statusText)) {
    const name = s.get("package");
    if (!name || !/\binstalled$/.test(s.get("status") ?? "")) continue;
    out.set(name, { name, version: s.get("version") ?? "", architecture: s.get("architecture") ?? "" });
  }
  return out;
}

/** `KEY=value` / `KEY="value"` lines of /etc/os-release. */
export function parseOsRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    out.set(m[1], m[2].replace(/^(["'])(.*)\1$/, "$2"));
  }
  return out;
}
