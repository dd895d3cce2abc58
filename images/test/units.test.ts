/**
 * The image builder's pure parts: partition tables, hostnames and boards, Imager-style first-boot
 * files, account edits, ELF checks, apt output, templates and the progress line.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addSystemUser } from "../src/accounts.js";
import { boardsList, expandPattern, parseBoardsCsv, parseHostnamePattern, peersFor } from "../src/boards.js";
import { installedPackages, parseOsRelease } from "../src/dpkg.js";
import { EM_AARCH64, EM_ARM, EM_X86_64, readElfHeader } from "../src/elf.js";
import { ImageSettingsError, NotRaspberryPiOsError } from "../src/errors.js";
import { debugfsQuote } from "../src/ext4.js";
import {
  cloudInitNetworkConfig,
  cloudInitUserData,
  firstrunScript,
  patchCmdline,
  validatePasswordHash,
  validateSshKey,
  wifiPsk,
  type FirstBootSettings,
} from "../src/firstboot.js";
import { findRaspberryPiLayout, parseMbr, withRootSectors } from "../src/mbr.js";
import { TerminalProgress, formatBytes, renderBar } from "../src/progress.js";
import { debFileName, parseSimulatedInstall } from "../src/runtime.js";
import { render } from "../src/templates.js";

function mbr(entries: { type: number; start: number; sectors: number }[], diskId = 0x5e3da3da): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32LE(diskId, 440);
  entries.forEach((e, i) => {
    const at = 446 + i * 16;
    b[at + 4] = e.type;
    b.writeUInt32LE(e.start, at + 8);
    b.writeUInt32LE(e.sectors, at + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

describe("images: MBR", () => {
  const rpi = mbr([
    { type: 0x0c, start: 8192, sectors: 1048576 },
    { type: 0x83, start: 1056768, sectors: 4194304 },
  ]);

  it("finds the FAT boot and Linux root partitions of Raspberry Pi OS", () => {
    const layout = findRaspberryPiLayout(parseMbr(rpi), (1056768 + 4194304) * 512);
    assert.equal(layout.boot.startSector, 8192);
    assert.equal(layout.root.sectorCount, 4194304);
    assert.equal(layout.diskId, 0x5e3da3da);
    assert.equal(layout.rootIsLast, true);
  });

  it("rejects a missing signature, GPT, a single partition and a short file", () => {
    const noSig = Buffer.from(rpi);
    noSig[510] = 0;
    assert.throws(() => parseMbr(noSig), NotRaspberryPiOsError);
    const gpt = mbr([{ type: 0xee, start: 1, sectors: 100000 }]);
    assert.throws(() => findRaspberryPiLayout(parseMbr(gpt), 1e9), /GPT/);
    const single = mbr([{ type: 0x0c, start: 8192, sectors: 1000 }]);
    assert.throws(() => findRaspberryPiLayout(parseMbr(single), 1e9), /partition 2/);
    assert.throws(() => findRaspberryPiLayout(parseMbr(rpi), 1000 * 512), /outside the image/);
  });

  it("says the root cannot grow when a partition follows it", () => {
    const three = mbr([
      { type: 0x0c, start: 8192, sectors: 8192 },
      { type: 0x83, start: 16384, sectors: 8192 },
      { type: 0x83, start: 24576, sectors: 8192 },
    ]);
    assert.equal(findRaspberryPiLayout(parseMbr(three), 1e9).rootIsLast, false);
  });

  it("changes only partition 2's size when growing", () => {
    const grown = withRootSectors(rpi, 4194304 + 8192);
    const table = parseMbr(grown);
    assert.equal(table.partitions[1]?.sectorCount, 4194304 + 8192);
    assert.equal(table.partitions[1]?.startSector, 1056768);
    assert.deepEqual(table.partitions[0], parseMbr(rpi).partitions[0]);
    assert.equal(table.diskId, 0x5e3da3da);
    assert.throws(() => withRootSectors(rpi, 2 ** 32), RangeError);
  });
});

describe("images: hostnames and boards", () => {
  it("expands {serial} and {mac} to their last six hex digits", () => {
    assert.equal(expandPattern("rl-{serial}", "10000000ABCDEF12", ""), "rl-cdef12");
    assert.equal(expandPattern("pi-{mac}", "", "DC:A6:32:01:02:03"), "pi-010203");
    assert.equal(parseHostnamePattern("rl-{serial}").perBoard, true);
    assert.equal(parseHostnamePattern("kitchen").perBoard, false);
  });

  it("refuses unknown placeholders and names that are not hostnames", () => {
    assert.throws(() => parseHostnamePattern("rl-{id}"), /unknown placeholder \{id\}/);
    assert.throws(() => parseHostnamePattern("Bad_Name"), ImageSettingsError);
    assert.throws(() => parseHostnamePattern(`${"a".repeat(60)}-{serial}`), /not a valid hostname/);
  });

  it("reads a CSV of boards in any column order and writes the first-boot list and peers", () => {
    const boards = parseBoardsCsv("# my shelf\nserial,hostname,mac\nABCDEF12,pi1,\n,pi2,DC-A6-32-01-02-03\n");
    assert.deepEqual(boards, [
      { hostname: "pi1", serial: "abcdef12", mac: null },
      { hostname: "pi2", serial: null, mac: "dc:a6:32:01:02:03" },
    ]);
    assert.match(boardsList(boards), /^serial abcdef12 pi1$/m);
    assert.match(boardsList(boards), /^mac dc:a6:32:01:02:03 pi2$/m);
    assert.equal(peersFor(boards, 7100), "pi1=pi1.local:7100,pi2=pi2.local:7100");
  });

  it("names the bad line of a CSV", () => {
    assert.throws(() => parseBoardsCsv("hostname\npi1\n"), /header/);
    assert.throws(() => parseBoardsCsv("hostname,serial\npi1,xyz\n"), /line 2: serial "xyz"/);
    assert.throws(() => parseBoardsCsv("hostname,serial\npi1,abcd\npi1,abce\n"), /line 3: pi1 appears twice/);
    assert.throws(() => parseBoardsCsv("hostname,mac\npi1,01:02\n"), /MAC/);
  });
});

describe("images: first-boot files in Imager's conventions", () => {
  const base: FirstBootSettings = {
    hostname: parseHostnamePattern("kitchen"),
    boards: null,
    user: { name: "pi", passwordHash: "$y$j9T$abc$def", sshKeys: ["ssh-ed25519 AAAAC3Nza me@laptop"] },
    wifi: { ssid: "IEEE", psk: wifiPsk("IEEE", "password"), hidden: false },
    country: "GB",
    timezone: "Europe/London",
    locale: "en_GB.UTF-8",
    keyboard: "gb",
  };

  it("derives the WPA PSK as IEEE 802.11i's test vector says", () => {
    assert.equal(
      wifiPsk("IEEE", "password"),
      "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e",
    );
    assert.equal(wifiPsk("x", "A".repeat(64).toLowerCase().replace(/a/g, "b")), "b".repeat(64));
    assert.throws(() => wifiPsk("x", "short"), /8 to 63/);
  });

  it("writes cloud-init user-data with the fixed hostname, user, key and locale", () => {
    const ud = cloudInitUserData(base);
    assert.ok(ud.startsWith("#cloud-config\n"));
    assert.match(ud, /^hostname: kitchen$/m);
    assert.match(ud, /^manage_etc_hosts: true$/m);
    assert.match(ud, /^- name: pi$/m);
    assert.match(ud, /^ {2}passwd: "\$y\$j9T\$abc\$def"$/m);
    assert.match(ud, /^ {4}- "ssh-ed25519 AAAAC3Nza me@laptop"$/m);
    assert.match(ud, /^timezone: "Europe\/London"$/m);
    assert.match(ud, /^ssh_pwauth: false$/m);
    assert.doesNotMatch(ud, /preserve_hostname/);
  });

  it("leaves the hostname to the board when it is per board", () => {
    const ud = cloudInitUserData({ ...base, hostname: parseHostnamePattern("rl-{serial}") });
    assert.match(ud, /^preserve_hostname: true$/m);
    assert.doesNotMatch(ud, /^hostname:/m);
  });

  it("writes netplan network-config with the regulatory domain and the PSK, never the passphrase", () => {
    const net = cloudInitNetworkConfig(base) ?? "";
    assert.match(net, /regulatory-domain: "GB"/);
    assert.match(net, /"IEEE":\n {10}password: "f42c6fc5/);
    assert.doesNotMatch(net, /"password"$/m);
    assert.equal(cloudInitNetworkConfig({ ...base, wifi: null }), null);
  });

  it("writes a firstrun.sh that cleans up after itself and quotes what it is given", () => {
    const script = firstrunScript(
      { ...base, wifi: { ssid: "Bob's net", psk: "a".repeat(64), hidden: true } },
      "/boot/firmware",
    );
    assert.ok(script.startsWith("#!/bin/sh\n"));
    assert.match(script, /imager_custom set_hostname kitchen/);
    assert.match(script, /set_wlan -h 'Bob'"'"'s net' 'a{64}' 'GB'/);
    assert.match(script, /rm -f \/boot\/firmware\/firstrun.sh/);
    assert.match(script, /sed -i 's\| systemd.run.\*\|\|g' \/boot\/firmware\/cmdline.txt/);
  });

  it("patches cmdline.txt once, however often it is patched", () => {
    const original = "console=tty1 root=PARTUUID=5e3da3da-02 rootwait quiet\n";
    const once = patchCmdline(original, "firstrun", "/boot/firmware", "GB");
    const twice = patchCmdline(once, "firstrun", "/boot/firmware", "DE");
    assert.equal(twice.split("\n").length, 2);
    assert.equal(twice.match(/systemd\.run=/g)?.length, 1);
    assert.match(twice, /cfg80211\.ieee80211_regdom=DE/);
    assert.doesNotMatch(twice, /regdom=GB/);
    assert.ok(twice.startsWith("console=tty1 root=PARTUUID=5e3da3da-02 rootwait quiet "));
    assert.equal(patchCmdline(original, "cloud-init", "/boot/firmware", null), original);
  });

  it("takes hashes and keys, not passwords and junk", () => {
    assert.throws(() => validatePasswordHash("hunter2"), /crypt hash/);
    assert.equal(validatePasswordHash("$6$salt$hash"), "$6$salt$hash");
    assert.throws(() => validateSshKey("not a key"), /not an SSH public key/);
  });
});

describe("images: the agent's system user", () => {
  const files = {
    passwd: "root:x:0:0::/root:/bin/bash\nsystemd-network:x:999:999::/:/usr/sbin/nologin\n",
    group: "root:x:0:\nsystemd-network:x:999:\nsystemd-journal:x:998:\n",
    shadow: "root:*:20000:0:99999:7:::\n",
    gshadow: "root:*::\n",
  };

  it("takes the highest id free for both user and group, and adds all four lines", () => {
    const { files: out, user } = addSystemUser(files, "ringleader", {
      home: "/var/lib/ringleader",
      gecos: "Agent",
      now: new Date(86_400_000 * 20000),
    });
    assert.deepEqual(user, { name: "ringleader", uid: 997, gid: 997, added: true });
    assert.match(out.passwd, /^ringleader:x:997:997:Agent:\/var\/lib\/ringleader:\/usr\/sbin\/nologin$/m);
    assert.match(out.group, /^ringleader:x:997:$/m);
    assert.match(out.shadow ?? "", /^ringleader:!\*:20000::::::$/m);
    assert.match(out.gshadow ?? "", /^ringleader:!\*::$/m);
    assert.ok(out.passwd.startsWith(files.passwd));
  });

  it("keeps an existing user as it is", () => {
    const withUser = { ...files, passwd: files.passwd + "ringleader:x:990:991::/x:/bin/false\n" };
    const { files: out, user } = addSystemUser(withUser, "ringleader", {
      home: "/h",
      gecos: "g",
      now: new Date(),
    });
    assert.deepEqual(user, { name: "ringleader", uid: 990, gid: 991, added: false });
    assert.equal(out, withUser);
  });
});

describe("images: small parsers", () => {
  it("reads ELF headers", () => {
    const elf = (bits: number, machine: number) => {
      const b = Buffer.alloc(20);
      b.set([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, 1]);
      b.writeUInt16LE(machine, 18);
      return b;
    };
    assert.deepEqual(readElfHeader(elf(64, EM_AARCH64)), { bits: 64, machine: EM_AARCH64 });
    assert.deepEqual(readElfHeader(elf(32, EM_ARM)), { bits: 32, machine: EM_ARM });
    assert.equal(readElfHeader(elf(64, EM_X86_64))?.machine, 62);
    assert.equal(readElfHeader(Buffer.from("MZ not an elf file at all")), null);
  });

  it("reads apt's simulated install and names the files apt downloads", () => {
    const out = [
      "NOTE: This is only a simulation!",
      "Inst libuv1t64 (1.50.0-2 Debian:13.2/stable [arm64])",
      "Inst libc6 [2.41-12] (2.41-12+deb13u1 Debian:13.2/stable, Debian-Security:13/stable-security [arm64])",
      "Conf libuv1t64 (1.50.0-2 Debian:13.2/stable [arm64])",
      "Inst zlib1g (1:1.3.dfsg+really1.3.1-1+deb13u1 Debian:13.2/stable [armhf])",
    ].join("\n");
    const pkgs = parseSimulatedInstall(out);
    assert.deepEqual(
      pkgs.map((p) => `${p.name}=${p.version}/${p.architecture}`),
      [
        "libuv1t64=1.50.0-2/arm64",
        "libc6=2.41-12+deb13u1/arm64",
        "zlib1g=1:1.3.dfsg+really1.3.1-1+deb13u1/armhf",
      ],
    );
    assert.equal(debFileName(pkgs[2]!), "zlib1g_1%3a1.3.dfsg+really1.3.1-1+deb13u1_armhf.deb");
  });

  it("reads dpkg status and os-release", () => {
    const status =
      "Package: a\nStatus: install ok installed\nArchitecture: arm64\nVersion: 1\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n";
    assert.deepEqual([...installedPackages(status).keys()], ["a"]);
    assert.equal(
      parseOsRelease('VERSION_CODENAME=trixie\nPRETTY_NAME="Debian 13"\n').get("PRETTY_NAME"),
      "Debian 13",
    );
  });

  it("quotes paths for debugfs and refuses what it cannot quote", () => {
    assert.equal(debugfsQuote("/opt/a b"), '"/opt/a b"');
    assert.throws(() => debugfsQuote('/opt/"x'), RangeError);
    assert.throws(() => debugfsQuote("/opt/x\ny"), RangeError);
  });

  it("fills templates and fails on a missing or unused value", () => {
    assert.equal(render("t", "port @@P@@ and @@P@@", { P: "7" }), "port 7 and 7");
    assert.throws(() => render("t", "@@A@@", {}), /needs a value for @@A@@/);
    assert.throws(() => render("t", "none", { A: "1" }), /has no @@A@@/);
  });
});

describe("images: progress", () => {
  it("shows percent, amounts, throughput and time left", () => {
    const line = renderBar("writing", 50 * 1024 * 1024, 100 * 1024 * 1024, 25e6, 10);
    assert.match(line, /\[#####-----\]\s+50%/);
    assert.match(line, /50\.0 MiB \/ 100\.0 MiB/);
    assert.match(line, /25\.0 MB\/s/);
    assert.match(line, /ETA 0:02/);
    assert.equal(formatBytes(1536), "1.50 KiB");
  });

  it("measures throughput from the samples it was given", () => {
    let now = 0;
    const written: string[] = [];
    const out = {
      write: (s: string) => written.push(s) > 0,
      isTTY: false,
    } as unknown as NodeJS.WritableStream;
    const p = new TerminalProgress(out, () => now);
    p.phase("writing", 100e6);
    now = 1000;
    p.advance(20e6);
    assert.equal(Math.round(p.rate()), 20e6);
    now = 2000;
    p.advance(60e6);
    assert.equal(Math.round(p.rate()), 30e6);
    p.finish();
    // A log gets a line per tenth reached, not one per sample.
    assert.deepEqual(
      written.map((l) => /(\d+)%/.exec(l)?.[1]),
      ["0", "20", "60"],
    );
  });
});
