/**
 * Free TCP ports on loopback, the kernel's choice. All `n` listeners stay open until every port is
 * known, so one call never hands out the same port twice (closing each before asking for the
 * next let the kernel give it again). Another process may still take a port before its user
 * binds it; callers that start agents on them say so when an agent exits.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:net";

export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = createServer();
      servers.push(srv);
      srv.listen(0, "127.0.0.1");
      await once(srv, "listening");
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
