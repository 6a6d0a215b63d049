// Server nonces for DPoP proofs at a service (RFC 9449 §9): a service that wants
// proofs made just now, not hours ago by a stolen key, hands out nonces in the
// DPoP-Nonce header and accepts only proofs carrying a fresh one.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { DPOP_SKEW_S } from './dpop-check.js';

/** NewNonces's default: how long a nonce is accepted, in ms (Go's DefaultNonceLifetime). */
export const DEFAULT_NONCE_LIFETIME = 5 * 60_000;

/**
 * A NonceSource hands out and judges the server nonces of DPoP proofs. A service
 * run as several replicas needs a source whose nonces every replica accepts.
 */
export interface NonceSource {
  /** A nonce to send in the DPoP-Nonce header now (or a promise of one: a shared store may be asked). */
  nonce(): string | Promise<string>;
  /**
   * Throws (or rejects with) an Error saying why nonce ('' when the proof has none)
   * is not acceptable now; the verifier awaits what it returns.
   */
  check(nonce: string): void | Promise<void>;
}

const LABEL = Buffer.from('deputy sdk/verify DPoP nonce\0', 'latin1');

/**
 * createNonces returns a stateless NonceSource: a nonce is the time it was made
 * (milliseconds, 8 bytes big-endian) and an HMAC-SHA256 of it under key, in
 * base64url, so every replica sharing the key accepts the others' nonces and none
 * stores anything. The format is the Go SDK's (verify.NewNonces): Go and Node
 * replicas of one service can share a key. key must be at least 32 bytes of secret
 * randomness; lifetime (ms) defaults to 5 minutes.
 */
export function createNonces(key: Uint8Array, opts: { lifetime?: number; now?: () => number } = {}): NonceSource {
  if (!(key instanceof Uint8Array) || key.length < 32) throw new TypeError('nonces: the key must be at least 32 bytes');
  const lifetime = opts.lifetime ?? DEFAULT_NONCE_LIFETIME;
  if (!(lifetime >= 0) || !Number.isFinite(lifetime)) throw new TypeError('nonces: lifetime must not be negative');
  const life = lifetime === 0 ? DEFAULT_NONCE_LIFETIME : lifetime;
  const secret = Buffer.from(key); // a copy: the caller's array may change
  const now = opts.now ?? Date.now;
  const mac = (ts: Uint8Array) => createHmac('sha256', secret).update(LABEL).update(ts).digest();
  return {
    nonce(): string {
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(Math.trunc(now())));
      return Buffer.concat([ts, mac(ts)]).toString('base64url');
    },
    check(nonce: string): void {
      const b = /^[A-Za-z0-9_-]*$/.test(nonce) ? Buffer.from(nonce, 'base64url') : Buffer.alloc(0);
      if (b.length !== 8 + 32 || b.toString('base64url') !== nonce || !timingSafeEqual(b.subarray(8), mac(b.subarray(0, 8)))) {
        throw new Error('not a nonce of this service');
      }
      const made = Number(b.readBigUInt64BE(0));
      const t = now();
      if (made > t + DPOP_SKEW_S * 1000 || t - made > life) throw new Error('stale nonce');
    },
  };
}
