/**
 * Preloaded (`node --import`) into `cluster up`, which passes its Node flags on to its agents: in
 * the agent named by `TAKE_PORT_NODE`, it binds that agent's own `--peer` address before the agent
 * does, as another program taking the port in the moment between `cluster up` choosing it and the
 * agent binding it would. It happens once: the first agent to do it writes the port into the file
 * `TAKE_PORT_MARKER`, and later agents find the file there.
 */
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";

const argv = process.argv;
const node = process.env["TAKE_PORT_NODE"];
const marker = process.env["TAKE_PORT_MARKER"];
const peer = argv[argv.indexOf("--peer") + 1] ?? "";
if (argv[2] === "agent" && node && marker && argv[argv.indexOf("--id") + 1] === node) {
  let first = true;
  try {
    writeFileSync(marker, peer, { flag: "wx" });
  } catch {
    first = false;
  }
  if (first) {
    const i = peer.lastIndexOf(":");
    // Bound at once (an IP address needs no lookup), so before the agent's own listen; unref'd so
    // that it does not keep the agent's process alive once the agent gives up.
    createServer()
      .listen(Number(peer.slice(i + 1)), peer.slice(0, i))
      .unref();
  }
}
