import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { describe, it } from "node:test";
import { clientTlsOptions, derivePsk, TransportConfigError } from "../../src/transport/security.js";
import { PeerTransport } from "../../src/transport/tcp-transport.js";
import { CLUSTER, heartbeat, SECRET, until } from "./helpers.js";

// A self-signed certificate for 127.0.0.1 (valid 2000-2100), used only to play a server that has
// a certificate but not the cluster key.
const ROGUE_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWG4giEmLA0CdzSo+
/Zq97jt9DBQL86yBsQ4c16Ro256hRANCAAQiczOqlRV3IEueMmiKOlo+ReehvehZ
+fVLk0GGBlFab1WXg+6V3BueznPZShaEvyYBgK3KARp9bHZmp8dsOMi3
-----END PRIVATE KEY-----
`;
const ROGUE_CERT = `-----BEGIN CERTIFICATE-----
MIIBUDCB96ADAgECAgEBMAoGCCqGSM49BAMCMBAxDjAMBgNVBAMMBXJvZ3VlMCAX
DTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjAQMQ4wDAYDVQQDDAVyb2d1
ZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCJzM6qVFXcgS54yaIo6Wj5F56G9
6Fn59UuTQYYGUVpvVZeD7pXcG57Oc9lKFoS/JgGArcoBGn1sdmanx2w4yLejQDA+
MA8GA1UdEQQIMAaHBH8AAAEwDAYDVR0TBAUwAwEB/zAdBgNVHQ4EFgQUb/C6vPUx
+tmpMGTPi0WYM9fqPuwwCgYIKoZIzj0EAwIDSAAwRQIhAPf8N3m6rDi7TBjhqYMl
ekYgpuyl1RlsvNGnOAnWB5ylAiAX+genMMzoHGObE1QJwxCIqXz6VNlMLMrNdnJ1
hNOPWw==
-----END CERTIFICATE-----
`;

/** A TLS 1.3 server with a certificate and no PSK; records every byte it is sent. */
async function rogueServer(): Promise<{ server: tls.Server; port: number; received: () => number }> {
  let bytes = 0;
  const server = tls.createServer({ key: ROGUE_KEY, cert: ROGUE_CERT, minVersion: "TLSv1.3" }, (socket) => {
    socket.on("data", (chunk: Buffer) => (bytes += chunk.length));
    socket.on("error", () => {});
  });
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port, received: () => bytes };
}

describe("peer authentication", () => {
  it("derives a 32-byte key, the same every time, different per cluster name and per secret", () => {
    const k = derivePsk(SECRET, CLUSTER);
    assert.equal(k.length, 32);
    assert.deepEqual(derivePsk(SECRET, CLUSTER), k);
    assert.deepEqual(derivePsk(new TextEncoder().encode(SECRET), CLUSTER), k);
    assert.notDeepEqual(derivePsk(SECRET, "other"), k);
    assert.notDeepEqual(derivePsk(`${SECRET}!`, CLUSTER), k);
  });

  it("refuses a short secret or an empty cluster name", () => {
    assert.throws(() => derivePsk("short", CLUSTER), TransportConfigError);
    assert.throws(() => derivePsk(SECRET, ""), TransportConfigError);
    assert.throws(
      () =>
        new PeerTransport({
          nodeId: "a",
          listen: { host: "127.0.0.1", port: 0 },
          secret: "short",
          clusterName: CLUSTER,
          resolve: () => undefined,
          onMessages: () => {},
        }),
      (err: unknown) => err instanceof TransportConfigError && err.name === "TransportConfigError",
    );
  });

  it("a client refuses a server that authenticates with a trusted certificate instead of the key", async () => {
    const rogue = await rogueServer();
    try {
      // Even when told to trust the rogue's certificate, the client must not accept the session.
      const socket = tls.connect({
        host: "127.0.0.1",
        port: rogue.port,
        ...clientTlsOptions(derivePsk(SECRET, CLUSTER), CLUSTER),
        ca: ROGUE_CERT,
      });
      let secured = false;
      let failure = "";
      socket.on("secureConnect", () => (secured = true));
      socket.on("error", (err) => (failure = err.message));
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
      assert.equal(secured, false);
      assert.match(failure, /certificate, not the cluster key/);
    } finally {
      await new Promise<void>((resolve) => rogue.server.close(() => resolve()));
    }
  });

  it("a transport sends nothing to a server without the key, and reports it unreachable", async () => {
    const rogue = await rogueServer();
    const reports: string[] = [];
    const t = new PeerTransport({
      nodeId: "a",
      listen: { host: "127.0.0.1", port: 0 },
      secret: SECRET,
      clusterName: CLUSTER,
      resolve: () => ({ host: "127.0.0.1", port: rogue.port }),
      onMessages: () => {},
      unreachable: (id) => reports.push(id),
      limits: { backoffBaseMs: 10, backoffMaxMs: 50 },
    });
    await t.start();
    try {
      t.send("b", heartbeat("a", "b", 1));
      await until(() => reports.length >= 2, "two failed dials");
      assert.equal(rogue.received(), 0);
      assert.equal(t.stats().bytesSent, 0);
      assert.equal(t.stats().queueDepth, 1);
    } finally {
      await t.stop();
      await new Promise<void>((resolve) => rogue.server.close(() => resolve()));
    }
  });
});
