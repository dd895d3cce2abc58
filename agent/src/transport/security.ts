/**
 * Peer authentication and encryption: standard TLS with a pre-shared key (TLS-PSK), the key
 * derived from the cluster secret. No certificates to issue, rotate or copy onto SD cards, and no
 * home-made crypto: OpenSSL does the handshake and the record layer.
 *
 * Why TLS 1.3 and these suites (checked against Node 20's bundled OpenSSL 3.0):
 *  - TLS 1.3 external PSKs work through Node's `pskCallback` as long as the suite's hash is
 *    SHA-256 (OpenSSL's PSK callback assumes it). With a SHA-384 suite the server looks for a
 *    certificate and the handshake fails, so only SHA-256 suites are offered.
 *  - OpenSSL uses the `psk_dhe_ke` mode: the PSK authenticates and an ephemeral X25519 exchange
 *    keys the session, so recorded traffic stays secret even if the cluster secret leaks later.
 *    TLS 1.2 plain PSK suites (`PSK-AES256-GCM-SHA384`, which also work) have no such forward
 *    secrecy, which is why 1.2 is not allowed at all.
 *  - A wrong secret is caught on the server at the very first flight (the ClientHello's PSK binder
 *    does not verify), before any application byte is read; the client in turn authenticates the
 *    server through the PSK-keyed Finished message. Both directions are therefore authenticated.
 *  - ChaCha20-Poly1305 comes first because the Pi 3 and Pi 4 have no AES instructions; the Pi 5
 *    does, and AES-128-GCM is there for it and for anything else that prefers it.
 */
import { hkdfSync } from "node:crypto";
import type { ConnectionOptions, TLSSocket, TlsOptions } from "node:tls";

export const TLS_VERSION = "TLSv1.3";
export const TLS_CIPHERS = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
/** Shorter secrets are a configuration error: `ringleader init` makes 32 random bytes. */
export const MIN_SECRET_BYTES = 16;
const PSK_BYTES = 32;
/** Versioned, so a future change of derivation cannot silently agree with the old one. */
const HKDF_SALT = "ringleader/transport/psk/v1";

/** Raised when the cluster secret or name cannot be used; the agent should not start. */
export class TransportConfigError extends Error {
  override readonly name = "TransportConfigError";
  constructor(message: string) {
    super(message);
  }
}

/**
 * The TLS pre-shared key: HKDF-SHA256 of the cluster secret, with the cluster name as `info`, so
 * two clusters that happen to share a secret still do not share a key.
 */
export function derivePsk(secret: string | Uint8Array, clusterName: string): Buffer {
  const secretBytes = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
  if (secretBytes.length < MIN_SECRET_BYTES) {
    throw new TransportConfigError(
      `the cluster secret is ${secretBytes.length} bytes; at least ${MIN_SECRET_BYTES} are needed`,
    );
  }
  if (clusterName.length === 0) throw new TransportConfigError("the cluster name is empty");
  return Buffer.from(hkdfSync("sha256", secretBytes, HKDF_SALT, clusterName, PSK_BYTES));
}

/**
 * Server options: the client's PSK identity must be our cluster name, otherwise no key is
 * returned and the handshake fails. No certificate is configured, so a client that offers no PSK
 * cannot complete a handshake either.
 */
export function serverTlsOptions(psk: Buffer, clusterName: string, handshakeTimeoutMs: number): TlsOptions {
  return {
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    ciphers: TLS_CIPHERS,
    handshakeTimeout: handshakeTimeoutMs,
    pskCallback: (_socket, identity) => (identity === clusterName ? psk : null),
  };
}

/**
 * Client options: present the cluster name as the PSK identity, and accept nothing else.
 *
 * A TLS 1.3 server may ignore the offered PSK and authenticate with a certificate instead; a
 * server without our key but with a certificate the client trusts would then get a session. Node
 * calls `checkServerIdentity` only when the server presented a certificate (never in a PSK
 * session), so failing it refuses every certificate-authenticated session during the handshake.
 */
export function clientTlsOptions(psk: Buffer, clusterName: string): ConnectionOptions {
  return {
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    ciphers: TLS_CIPHERS,
    pskCallback: () => ({ psk, identity: clusterName }),
    checkServerIdentity: () =>
      new Error("the peer authenticated with a certificate, not the cluster key; refusing it"),
  };
}

/**
 * Whether an established session was authenticated by the cluster key: TLS 1.3 and no peer
 * certificate. Checked again before the first byte is written, in case the option above is ever
 * bypassed (a resumed session, a change in Node).
 */
export function isPskSession(socket: TLSSocket): boolean {
  return socket.getProtocol() === TLS_VERSION && Object.keys(socket.getPeerCertificate()).length === 0;
}
