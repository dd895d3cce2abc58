/**
 * First-boot configuration on the boot partition, in the conventions Raspberry Pi Imager uses,
 * so a user who knows Imager finds the same files: cloud-init `user-data`, `network-config` and
 * `meta-data` for current Raspberry Pi OS, or the older `firstrun.sh` started from cmdline.txt.
 * Secrets never go in as plain text: the user's password arrives as a crypt hash, and the Wi-Fi
 * passphrase becomes its WPA PSK (PBKDF2-SHA1, as Imager does).
 */
import { pbkdf2Sync } from "node:crypto";
import { type Board, type HostnamePattern } from "./boards.js";
import { ImageSettingsError } from "./errors.js";

export type FirstBootRoute = "cloud-init" | "firstrun";

export interface UserSettings {
  readonly name: string;
  /** A crypt(3) hash (`$y$…`, `$6$…`, `$5$…`), or null for key-only login. */
  readonly passwordHash: string | null;
  readonly sshKeys: readonly string[];
}

export interface WifiSettings {
  readonly ssid: string;
  /** 64 hex digits: the WPA pre-shared key. */
  readonly psk: string;
  readonly hidden: boolean;
}

export interface FirstBootSettings {
  readonly hostname: HostnamePattern;
  readonly boards: readonly Board[] | null;
  readonly user: UserSettings | null;
  readonly wifi: WifiSettings | null;
  /** Wi-Fi regulatory domain (ISO 3166 alpha-2), required with Wi-Fi. */
  readonly country: string | null;
  readonly timezone: string | null;
  readonly locale: string | null;
  readonly keyboard: string | null;
}

/** Imager's groups for the first user. */
const USER_GROUPS = "users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo";

/** The WPA PSK of a passphrase: PBKDF2-HMAC-SHA1(passphrase, ssid, 4096 rounds, 32 bytes). */
export function wifiPsk(ssid: string, passphrase: string): string {
  if (/^[0-9a-fA-F]{64}$/.test(passphrase)) return passphrase.toLowerCase();
  const length = Buffer.byteLength(passphrase, "utf8");
  if (length < 8 || length > 63) {
    throw new ImageSettingsError("the Wi-Fi passphrase must be 8 to 63 characters (or a 64-hex-digit PSK)");
  }
  return pbkdf2Sync(passphrase, ssid, 4096, 32, "sha1").toString("hex");
}

export function validateUserName(name: string): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name) || name === "root" || name === "ringleader") {
    throw new ImageSettingsError(`${JSON.stringify(name)} cannot be the login user's name`);
  }
  return name;
}

export function validatePasswordHash(hash: string): string {
  if (!/^\$(y|gy|7|6|5|2b)\$[./0-9A-Za-z$,=]+$/.test(hash)) {
    throw new ImageSettingsError(
      "--password-hash must be a crypt hash such as the output of `mkpasswd -m yescrypt` or `openssl passwd -6`, not a password",
    );
  }
  return hash;
}

export function validateSshKey(line: string): string {
  const key = line.trim();
  if (
    !/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/.test(
      key,
    )
  ) {
    throw new ImageSettingsError(`not an SSH public key: ${key.slice(0, 40)}…`);
  }
  if (/[\r\n]/.test(key)) throw new ImageSettingsError("an SSH key must be one line");
  return key;
}

export function validateCountry(code: string): string {
  const upper = code.toUpperCase();
  if (!/^[A-Z]{2}$/.test(upper))
    throw new ImageSettingsError(`Wi-Fi country ${JSON.stringify(code)} should be two letters, e.g. GB`);
  return upper;
}

export function validateTimezone(tz: string): string {
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+){0,2}$/.test(tz))
    throw new ImageSettingsError(`odd timezone ${JSON.stringify(tz)}`);
  return tz;
}

export function validateLocale(locale: string): string {
  if (!/^[a-z]{2,3}(_[A-Z]{2})?\.UTF-8$/.test(locale)) {
    throw new ImageSettingsError(`locale ${JSON.stringify(locale)} should look like en_GB.UTF-8`);
  }
  return locale;
}

export function validateKeyboard(layout: string): string {
  if (!/^[a-z]{2,8}$/.test(layout))
    throw new ImageSettingsError(`keyboard layout ${JSON.stringify(layout)} should look like gb`);
  return layout;
}

/** YAML double-quoted scalar; JSON's escapes are a subset of YAML's. */
function y(value: string): string {
  return JSON.stringify(value);
}

/** One shell word. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** The board's name when the image sets one name for all boards, else null (first boot decides). */
function fixedHostname(s: FirstBootSettings): string | null {
  return s.boards === null && !s.hostname.perBoard ? s.hostname.pattern : null;
}

export function cloudInitUserData(s: FirstBootSettings): string {
  const lines = [
    "#cloud-config",
    "# Written by `ringleader image build` in the form Raspberry Pi Imager uses.",
  ];
  const fixed = fixedHostname(s);
  if (fixed !== null) lines.push(`hostname: ${fixed}`, "manage_etc_hosts: true");
  // Per-board names are set by ringleader-firstboot.service before the network starts; cloud-init
  // must not put the image's name back.
  else lines.push("preserve_hostname: true");
  if (s.timezone) lines.push(`timezone: ${y(s.timezone)}`);
  if (s.locale) lines.push(`locale: ${y(s.locale)}`);
  if (s.keyboard) lines.push("keyboard:", "  model: pc105", `  layout: ${y(s.keyboard)}`);
  if (s.user) {
    const u = s.user;
    lines.push(
      "enable_ssh: true",
      "users:",
      `- name: ${u.name}`,
      `  groups: ${USER_GROUPS}`,
      "  shell: /bin/bash",
    );
    if (u.passwordHash) lines.push("  lock_passwd: false", `  passwd: ${y(u.passwordHash)}`);
    else lines.push("  lock_passwd: true");
    if (u.sshKeys.length > 0) {
      lines.push(
        "  ssh_authorized_keys:",
        ...u.sshKeys.map((k) => `    - ${y(k)}`),
        "  sudo: ALL=(ALL) NOPASSWD:ALL",
      );
    }
    lines.push(`ssh_pwauth: ${u.passwordHash !== null && u.sshKeys.length === 0}`);
  }
  if (s.country && !s.wifi) {
    // Imager's way to lift the rfkill block when only the country is known.
    lines.push("runcmd:", "  - [ rfkill, unblock, wifi ]");
  }
  return lines.join("\n") + "\n";
}

/** netplan v2 for cloud-init; null when there is no Wi-Fi (Ethernet needs no configuration). */
export function cloudInitNetworkConfig(s: FirstBootSettings): string | null {
  if (!s.wifi) return null;
  const lines = [
    "# Written by `ringleader image build` in the form Raspberry Pi Imager uses.",
    "network:",
    "  version: 2",
    "  wifis:",
    "    wlan0:",
    "      dhcp4: true",
  ];
  if (s.country) lines.push(`      regulatory-domain: ${y(s.country)}`);
  lines.push("      access-points:", `        ${y(s.wifi.ssid)}:`);
  if (s.wifi.hidden) lines.push("          hidden: true");
  lines.push(`          password: ${y(s.wifi.psk)}`, "      optional: true");
  return lines.join("\n") + "\n";
}

/** A new instance id makes cloud-init treat the card as a new machine and run the seed. */
export function cloudInitMetaData(instanceId: string): string {
  return `instance-id: ${instanceId}\n`;
}

/**
 * Imager's legacy first-boot script: `imager_custom` from raspberrypi-sys-mods when the image
 * has it, plain commands otherwise. It removes itself and its cmdline.txt entry when done.
 */
export function firstrunScript(s: FirstBootSettings, bootMount: string): string {
  const L: string[] = [
    "#!/bin/sh",
    "# Written by `ringleader image build` in the form Raspberry Pi Imager uses.",
    "",
    "set +e",
    "",
  ];
  const custom = "/usr/lib/raspberrypi-sys-mods/imager_custom";
  const fixed = fixedHostname(s);
  if (fixed !== null) {
    L.push(
      'CURRENT_HOSTNAME=$(cat /etc/hostname | tr -d " \\t\\n\\r")',
      `if [ -f ${custom} ]; then`,
      `   ${custom} set_hostname ${fixed}`,
      "else",
      `   echo ${fixed} >/etc/hostname`,
      `   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t${fixed}/g" /etc/hosts`,
      "fi",
    );
  }
  L.push(
    "FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)",
    "FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)",
  );
  const u = s.user;
  if (u && u.sshKeys.length > 0) {
    const keys = u.sshKeys.map(shellQuote).join(" ");
    L.push(
      `if [ -f ${custom} ]; then`,
      `   ${custom} enable_ssh -k ${keys}`,
      "else",
      '   install -o "$FIRSTUSER" -m 700 -d "$FIRSTUSERHOME/.ssh"',
      `   printf '%s\\n' ${keys} > "$FIRSTUSERHOME/.ssh/authorized_keys"`,
      '   chown "$FIRSTUSER:$FIRSTUSER" "$FIRSTUSERHOME/.ssh/authorized_keys"',
      '   chmod 600 "$FIRSTUSERHOME/.ssh/authorized_keys"',
      "   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config",
      "   systemctl enable ssh",
      "fi",
    );
  } else if (u?.passwordHash) {
    L.push(`if [ -f ${custom} ]; then`, `   ${custom} enable_ssh`, "else", "   systemctl enable ssh", "fi");
  }
  if (u) {
    L.push(
      "if [ -f /usr/lib/userconf-pi/userconf ]; then",
      `   /usr/lib/userconf-pi/userconf ${shellQuote(u.name)} ${shellQuote(u.passwordHash ?? "")}`,
      "else",
    );
    if (u.passwordHash) L.push(`   echo "$FIRSTUSER:"${shellQuote(u.passwordHash)} | chpasswd -e`);
    L.push(
      `   if [ "$FIRSTUSER" != ${shellQuote(u.name)} ]; then`,
      `      usermod -l ${shellQuote(u.name)} "$FIRSTUSER"`,
      `      usermod -m -d /home/${u.name} ${shellQuote(u.name)}`,
      `      groupmod -n ${shellQuote(u.name)} "$FIRSTUSER"`,
      "   fi",
      "fi",
    );
  }
  if (s.wifi) {
    const hidden = s.wifi.hidden ? " -h" : "";
    L.push(
      `if [ -f ${custom} ]; then`,
      `   ${custom} set_wlan${hidden} ${shellQuote(s.wifi.ssid)} ${shellQuote(s.wifi.psk)} ${shellQuote(s.country ?? "")}`,
      "else",
      "cat >/etc/wpa_supplicant/wpa_supplicant.conf <<'WPAEOF'",
      ...(s.country ? [`country=${s.country}`] : []),
      "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev",
      "ap_scan=1",
      "update_config=1",
      "network={",
      ...(s.wifi.hidden ? ["\tscan_ssid=1"] : []),
      `\tssid=${JSON.stringify(s.wifi.ssid)}`,
      "\tkey_mgmt=WPA-PSK SAE",
      `\tpsk=${s.wifi.psk}`,
      "\tieee80211w=1",
      "}",
      "WPAEOF",
      "   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf",
      "   rfkill unblock wifi",
      "   for filename in /var/lib/systemd/rfkill/*:wlan ; do",
      "       echo 0 > $filename",
      "   done",
      "fi",
    );
  } else if (s.country) {
    L.push(
      "rfkill unblock wifi",
      "for filename in /var/lib/systemd/rfkill/*:wlan ; do",
      "  echo 0 > $filename",
      "done",
    );
  }
  if (s.keyboard || s.timezone) {
    L.push(`if [ -f ${custom} ]; then`);
    if (s.keyboard) L.push(`   ${custom} set_keymap ${shellQuote(s.keyboard)}`);
    if (s.timezone) L.push(`   ${custom} set_timezone ${shellQuote(s.timezone)}`);
    L.push("else");
    if (s.timezone) {
      L.push(
        "   rm -f /etc/localtime",
        `   echo ${shellQuote(s.timezone)} >/etc/timezone`,
        "   dpkg-reconfigure -f noninteractive tzdata",
      );
    }
    if (s.keyboard) {
      L.push(
        "cat >/etc/default/keyboard <<'KBEOF'",
        'XKBMODEL="pc105"',
        `XKBLAYOUT="${s.keyboard}"`,
        'XKBVARIANT=""',
        'XKBOPTIONS=""',
        "KBEOF",
        "   dpkg-reconfigure -f noninteractive keyboard-configuration",
      );
    }
    L.push("fi");
  }
  if (s.locale) {
    const esc = s.locale.replace(/\./g, "\\.");
    L.push(
      `sed -i 's/^# *\\(${esc} \\)/\\1/' /etc/locale.gen`,
      "locale-gen",
      `update-locale LANG=${s.locale}`,
    );
  }
  L.push(`rm -f ${bootMount}/firstrun.sh`, `sed -i 's| systemd.run.*||g' ${bootMount}/cmdline.txt`, "exit 0");
  return L.join("\n") + "\n";
}

const FIRSTRUN_ARGS = (bootMount: string) =>
  `systemd.run=${bootMount}/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target`;

/**
 * cmdline.txt stays one line. We add the Wi-Fi regulatory domain (as Imager does) and, for the
 * firstrun route, the systemd.run hook; earlier copies of either are replaced, not repeated.
 */
export function patchCmdline(
  cmdline: string,
  route: FirstBootRoute,
  bootMount: string,
  country: string | null,
): string {
  let words = cmdline
    .trim()
    .replace(/(^|\s+)systemd\.run.*$/, "")
    .split(/\s+/)
    .filter((w) => w !== "" && !w.startsWith("cfg80211.ieee80211_regdom="));
  if (country) words.push(`cfg80211.ieee80211_regdom=${country}`);
  if (route === "firstrun") words = [...words, FIRSTRUN_ARGS(bootMount)];
  return words.join(" ") + "\n";
}

/** Every file the boot partition gets, by name. */
export function bootFiles(
  s: FirstBootSettings,
  route: FirstBootRoute,
  bootMount: string,
  instanceId: string,
): Map<string, string> {
  const files = new Map<string, string>();
  if (route === "cloud-init") {
    files.set("user-data", cloudInitUserData(s));
    files.set("meta-data", cloudInitMetaData(instanceId));
    const net = cloudInitNetworkConfig(s);
    if (net !== null) files.set("network-config", net);
  } else {
    files.set("firstrun.sh", firstrunScript(s, bootMount));
  }
  return files;
}
