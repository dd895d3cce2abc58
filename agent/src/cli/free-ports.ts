/**
 * Free TCP ports on loopback for agents that are told their ports before they start (`cluster up`,
 * tests). All `n` listeners stay open until every port is known, so one call never hands out the
 * same port twice.
 *
 * The ports come from below the kernel's ephemeral range, not from `listen(0)`. A port the kernel
 * chose for us is one it hands out again as the source port of any outgoing connection once we
 * release it, and on a busy machine one did: a CI run's `cluster up` lost its peer port to another
 * program in the moment between this function closing it and the agent binding it. Below the
 * range only a program that asks for that very port by number can take it. Where the range cannot
 * be read (not Linux) or leaves no room below it, the kernel chooses.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";

/** The lowest port handed out by number; below it are the well-known and common service ports. */
const LOWEST = 10_000;

/** Ports to draw from: `[from, to)`, or null to let the kernel choose. */
export type PortRange = readonly [from: number, to: number] | null;

/** The ports below the kernel's ephemeral range, from `LOWEST`; null where there are too few. */
export function portsBelowEphemeral(file = "/proc/sys/net/ipv4/ip_local_port_range"): PortRange {
  let low: number;
  try {
    low = Number(readFileSync(file, "utf8").trim().split(/\s+/)[0]);
  } catch {
    return null;
  }
  return Number.isInteger(low) && low - LOWEST >= 1000 ? [LOWEST, low] : null;
}

async function listenOn(port: number): Promise<Server | null> {
  const srv = createServer();
  srv.listen(port, "127.0.0.1");
  try {
    await once(srv, "listening");
    return srv;
  } catch {
    return null; // taken (EADDRINUSE) or not ours to take (EACCES)
  }
}

export async function freePorts(n: number, range: PortRange = portsBelowEphemeral()): Promise<number[]> {
  const servers: Server[] = [];
  try {
    if (range === null) {
      for (let i = 0; i < n; i++) {
        const srv = await listenOn(0);
        if (!srv) throw new Error("could not listen on a port of the kernel's choice on 127.0.0.1");
        servers.push(srv);
      }
    } else {
      const [from, to] = range;
      const tried = new Set<number>();
      while (servers.length < n) {
        if (tried.size === to - from)
          throw new Error(
            `only ${servers.length} of ${to - from} ports in ${from}-${to - 1} are free; ${n} needed`,
          );
        const port = from + Math.floor(Math.random() * (to - from));
        if (tried.has(port)) continue;
        tried.add(port);
        const srv = await listenOn(port);
        if (srv) servers.push(srv);
      }
    }
    return servers.map((srv) => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") throw new Error("could not find a free port");
      return addr.port;
    });
  } finally {
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  }
}
