/**
 * The address `ip-hash` hashes. On the agent: the peer of the HTTP connection, or, for a request
 * another agent forwarded (it carries the hop header only agents set), the `x-forwarded-for`
 * that agent added, so the client is the same wherever the request entered. On a client (the
 * CLI, the bridge): this machine's own first non-internal address, so one machine keeps one entry agent.
 */
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";

/** `::ffff:10.0.0.5` and `10.0.0.5` are one client. */
export function normalizeAddress(address: string): string {
  const a = address.trim();
  return a.startsWith("::ffff:") && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/**
 * The client address of a request: `x-forwarded-for`'s first entry when `forwarded` (a request
 * between our own agents) and it is an IP address, else the connection's peer.
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  forwarded: boolean,
): string {
  if (forwarded && typeof forwardedFor === "string") {
    const first = forwardedFor.split(",")[0]!.trim();
    if (first.length <= 64 && isIP(first) !== 0) return normalizeAddress(first);
  }
  return normalizeAddress(socketAddress ?? "");
}

/** This machine's first non-internal IPv4 address (else IPv6, else ""), for a client's `ip-hash`. */
export function ownAddress(): string {
  let v6 = "";
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (ni.internal) continue;
      if (ni.family === "IPv4") return ni.address;
      if (v6 === "") v6 = ni.address;
    }
  }
  return v6;
}
