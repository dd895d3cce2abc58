/**
 * Adds the agent's system user to the image's account files (passwd, group, shadow, gshadow),
 * the way `adduser --system` would, but as text edits: the image is never booted or chrooted.
 * The ids are chosen now because the files we install must be owned by them.
 */
import { ImageSettingsError } from "./errors.js";

export interface AccountFiles {
  readonly passwd: string;
  readonly group: string;
  readonly shadow: string | null;
  readonly gshadow: string | null;
}

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** False when the image already had the user (a rebuilt image): its ids are kept. */
  readonly added: boolean;
}

/** systemd-sysusers allocates system ids downwards from here; so do we. */
const SYSTEM_ID_MAX = 999;
const SYSTEM_ID_MIN = 100;

function ids(text: string, field: number): Set<number> {
  const out = new Set<number>();
  for (const line of text.split("\n")) {
    const value = Number(line.split(":")[field]);
    if (Number.isInteger(value)) out.add(value);
  }
  return out;
}

function entry(text: string, name: string): string[] | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name}:`));
  return line ? line.split(":") : null;
}

function append(text: string, line: string): string {
  return (text === "" || text.endsWith("\n") ? text : `${text}\n`) + `${line}\n`;
}

export function addSystemUser(
  files: AccountFiles,
  name: string,
  options: { home: string; gecos: string; now: Date },
): { files: AccountFiles; user: SystemUser } {
  const existing = entry(files.passwd, name);
  if (existing) {
    const uid = Number(existing[2]);
    const gid = Number(existing[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid))
      throw new ImageSettingsError(`/etc/passwd has a broken ${name} line`);
    return { files, user: { name, uid, gid, added: false } };
  }
  const usedUids = ids(files.passwd, 2);
  const usedGids = ids(files.group, 2);
  const groupLine = entry(files.group, name);
  let uid = -1;
  let gid = groupLine ? Number(groupLine[2]) : -1;
  // Prefer one number for both user and group, as adduser and sysusers do.
  for (let id = SYSTEM_ID_MAX; id >= SYSTEM_ID_MIN; id--) {
    if (usedUids.has(id)) continue;
    if (gid >= 0 || !usedGids.has(id)) {
      uid = id;
      if (gid < 0) gid = id;
      break;
    }
  }
  if (uid < 0 || gid < 0)
    throw new ImageSettingsError("no free system user id between 100 and 999 in the image");
  const days = Math.floor(options.now.getTime() / 86_400_000);
  const out: AccountFiles = {
    passwd: append(
      files.passwd,
      `${name}:x:${uid}:${gid}:${options.gecos}:${options.home}:/usr/sbin/nologin`,
    ),
    group: groupLine ? files.group : append(files.group, `${name}:x:${gid}:`),
    // `!*`: no password can ever log in; the agent runs from systemd only.
    shadow: files.shadow === null ? null : append(files.shadow, `${name}:!*:${days}::::::`),
    gshadow: files.gshadow === null || groupLine ? files.gshadow : append(files.gshadow, `${name}:!*::`),
  };
  return { files: out, user: { name, uid, gid, added: true } };
}
