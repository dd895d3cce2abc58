/**
 * Test support: the discovery module's own mDNS (`BonjourMdns`) in a process of its own, so a
 * test can run it inside a network namespace and kill it without a goodbye.
 *
 *   node mdns-tool.js advertise <node id>   publish `ringleader-<id>` (cluster "lab"), print "ready"
 *   node mdns-tool.js browse <refresh ms>   refresh every <refresh ms> and print, after each, one
 *                                           JSON line: the sorted instance names it sees now
 */
import { BonjourMdns } from "../../agent/src/discovery/mdns.js";

const [mode, arg] = process.argv.slice(2);
const mdns = new BonjourMdns({ onError: (err) => process.stderr.write(`mDNS error: ${err.message}\n`) });

if (mode === "advertise" && arg) {
  await mdns.publish({
    name: `ringleader-${arg}`,
    host: `ringleader-${arg}.local`,
    port: 7000,
    txt: { cluster: "lab", id: arg, peer: "7100", api: "7000", ver: "0.0.0", state: "member" },
  });
  process.stdout.write("ready\n");
  // Runs until killed (the point of the tool), whether or not the library's socket holds the loop.
  setInterval(() => {}, 60_000);
} else if (mode === "browse" && Number(arg) > 0) {
  setInterval(() => {
    mdns.refresh();
    const names = mdns
      .services()
      .map((s) => s.name)
      .sort();
    process.stdout.write(`${JSON.stringify(names)}\n`);
  }, Number(arg));
} else {
  process.stderr.write("usage: mdns-tool.js advertise <node id> | browse <refresh ms>\n");
  process.exit(2);
}
process.on("SIGTERM", () => void mdns.stop().then(() => process.exit(0)));
