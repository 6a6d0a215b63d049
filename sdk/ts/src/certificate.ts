// Certificate-bound access tokens (RFC 8705 §3): the TLS client certificate a
// request came with, and its SHA-256 thumbprint, which a bound token names in
// cnf["x5t#S256"].
import { createHash, timingSafeEqual } from 'node:crypto';

/** The part of a TLS socket (node:tls TLSSocket) peerCertificate reads. */
export interface PeerCertificateSource {
  getPeerCertificate?(detailed?: boolean): { raw?: Uint8Array } | null | undefined;
}

/**
 * peerCertificate returns the DER bytes of the client certificate presented on
 * socket — a request's req.socket on node:https, Express or Fastify — or
 * undefined on a connection without TLS or without a client certificate. The
 * server must ask for one (https.createServer({ requestCert: true, … })); as in
 * Go, the certificate need not be issued by a CA the server trusts: the token's
 * binding names the certificate itself.
 */
export function peerCertificate(socket: unknown): Uint8Array | undefined {
  const s = socket as PeerCertificateSource | null | undefined;
  if (typeof s?.getPeerCertificate !== 'function') return undefined;
  const raw = s.getPeerCertificate(false)?.raw;
  if (!(raw instanceof Uint8Array) || raw.length === 0) return undefined;
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** certificateMatches: der's SHA-256 thumbprint (base64url, RFC 8705 §3.1) is x5t. */
export function certificateMatches(der: Uint8Array, x5t: string): boolean {
  const sum = createHash('sha256').update(der).digest();
  const want = Buffer.from(x5t, 'base64url');
  return want.length === sum.length && want.toString('base64url') === x5t && timingSafeEqual(sum, want);
}
