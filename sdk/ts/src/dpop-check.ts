// DPoP proof checks (RFC 9449 §4.3), the Go SDK's dpop.Check, and the replay cache
// of proof jti values (RFC 9449 §11.1). Signatures and thumbprints are jose's.
import { createHash } from 'node:crypto';
import { base64url, calculateJwkThumbprint, compactVerify, importJWK, type JWK } from 'jose';
import { DPOP_ALGORITHMS } from './errors.js';

/** Default maximum age of a proof's iat, and how far in the future it may be. */
export const DEFAULT_DPOP_MAX_AGE_S = 60;
export const DPOP_SKEW_S = 5;
const MAX_PROOF_LEN = 8 << 10;
const MAX_JTI_LEN = 256;

/** A refused proof; reason says which check failed (it names no secret). */
export class ProofError extends Error {
  constructor(readonly reason: string) {
    super(`invalid DPoP proof: ${reason}`);
    this.name = 'ProofError';
  }
}

/** A proof without the server nonce the service requires, or with a stale or unknown one (RFC 9449 §9, use_dpop_nonce). */
export class NonceError extends Error {
  constructor(readonly reason: string) {
    super(`DPoP nonce required: ${reason}`);
    this.name = 'NonceError';
  }
}

/** What a proof must match. */
export interface ProofRequest {
  method: string;
  /** The request's URL as the client used it; query and fragment are ignored. */
  url: string;
  /** The access token presented with the proof: ath must be its hash. */
  accessToken?: string;
  /** Milliseconds since the epoch. */
  now: number;
  maxAgeS?: number;
  skewS?: number;
  /** When set, judges the proof's nonce claim ('' when absent): what it throws, or rejects with, refuses the proof with a NonceError. */
  nonce?: (nonce: string) => void | Promise<void>;
}

/** A checked proof. */
export interface CheckedProof {
  jkt: string;
  jti: string;
  iat: number;
  /** When the proof is no longer accepted (ms): its jti may be forgotten then. */
  expires: number;
}

/**
 * keyFits says why a token or proof signed with alg may not be verified with k, or
 * undefined when it may (the Go SDK's jwk.Fits): the key's own alg, when it states
 * one, is alg; its type and curve are those alg uses; an RSA key has at least 2048
 * bits (RFC 7518 §3.3). It never lets a token choose how a key is used.
 */
export function keyFits(k: JWK, alg: string): string | undefined {
  if (k.alg !== undefined && k.alg !== alg) return `token alg ${alg}, key alg ${k.alg}`;
  switch (k.kty) {
    case 'RSA': {
      if (!['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'].includes(alg)) return `alg ${alg} does not fit an RSA key`;
      if (typeof k.n !== 'string') return 'RSA key without n';
      let n: Uint8Array;
      try {
        n = base64url.decode(k.n);
      } catch {
        return 'RSA key with a malformed n';
      }
      let i = 0;
      while (i < n.length && n[i] === 0) i++;
      const bits = i === n.length ? 0 : (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]!));
      if (bits < 2048) return `RSA key of ${bits} bits; at least 2048 are required (RFC 7518 §3.3)`;
      return undefined;
    }
    case 'EC': {
      const want = ({ ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' } as Record<string, string>)[alg];
      if (want === undefined || k.crv !== want) return `alg ${alg} does not fit an EC key on ${String(k.crv)}`;
      return undefined;
    }
    case 'OKP':
      if (alg !== 'EdDSA' || k.crv !== 'Ed25519') return `alg ${alg} does not fit an OKP key on ${String(k.crv)}`;
      return undefined;
  }
  return `alg ${alg} does not fit a key of type ${String(k.kty)}`;
}

// The keys of the proofs seen lately, imported and with their thumbprint: a
// client signs every proof with the same key, and importing it into WebCrypto
// costs more than checking the signature. Keyed by alg and every member of the
// jwk as sent (so a cached key is one this very jwk imports to); when full it is
// emptied.
const PROOF_KEYS_MAX = 1000;
const proofKeys = new Map<string, { key: ReturnType<typeof importJWK>; jkt: Promise<string> }>();

function proofKey(jwk: JWK, alg: string): { key: ReturnType<typeof importJWK>; jkt: Promise<string> } {
  const id = JSON.stringify([alg, Object.entries(jwk).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
  let k = proofKeys.get(id);
  if (!k) {
    k = { key: importJWK(jwk, alg), jkt: calculateJwkThumbprint(jwk, 'sha256') };
    // A key that does not import is not kept: the next proof with it fails the same way.
    const drop = () => { if (proofKeys.get(id) === k) proofKeys.delete(id); };
    k.key.catch(drop);
    k.jkt.catch(drop);
    if (proofKeys.size >= PROOF_KEYS_MAX) proofKeys.clear();
    proofKeys.set(id, k);
  }
  return k;
}

/** ath for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return base64url.encode(createHash('sha256').update(token, 'utf8').digest());
}

function decodeJSON(segment: string): unknown {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64url.decode(segment)));
}

const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * checkProof checks proof against req as RFC 9449 §4.3 lists: one compact JWS, typ
 * dpop+jwt, an allowed asymmetric alg, a public jwk that fits alg and verifies the
 * signature, jti, htm, htu (normalised, without query and fragment), iat within
 * [now - maxAge - skew, now + skew], ath when an access token is given, and the
 * server nonce when req.nonce is set (a NonceError when it is refused). The
 * caller still refuses a jti seen before and compares jkt with the token's cnf.jkt.
 */
export async function checkProof(proof: string, req: ProofRequest): Promise<CheckedProof> {
  if (proof === '') throw new ProofError('no proof');
  if (proof.length > MAX_PROOF_LEN) throw new ProofError(`proof of ${proof.length} bytes`);
  const parts = proof.split('.');
  if (parts.length !== 3) throw new ProofError('not a compact JWS');
  let h: unknown;
  try {
    h = decodeJSON(parts[0]!);
  } catch {
    throw new ProofError('header is malformed');
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw new ProofError('header is malformed');
  const hdr = h as Record<string, unknown>;
  const alg = hdr['alg'];
  if (typeof alg !== 'string' || !(DPOP_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new ProofError(`alg ${JSON.stringify(alg)} is not allowed`);
  }
  const typ = hdr['typ'];
  if (typeof typ !== 'string' || typ.toLowerCase() !== 'dpop+jwt') throw new ProofError(`typ ${JSON.stringify(typ ?? '')}, want dpop+jwt`);
  const jwk = hdr['jwk'];
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new ProofError('no jwk header');
  const key = jwk as JWK;
  if (privateMembers.some((m) => m in key)) throw new ProofError('jwk is not a valid public key');
  const fit = keyFits(key, alg);
  if (fit !== undefined) throw new ProofError(`jwk: ${fit}`);
  let payload: Uint8Array;
  const known = proofKey(key, alg);
  try {
    ({ payload } = await compactVerify(proof, await known.key, { algorithms: [alg] }));
  } catch {
    throw new ProofError('signature does not verify with the jwk');
  }
  let c: Record<string, unknown>;
  try {
    const v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    c = v as Record<string, unknown>;
  } catch {
    throw new ProofError('claims are malformed');
  }
  if (c['nonce'] !== undefined && c['nonce'] !== null && typeof c['nonce'] !== 'string') throw new ProofError('claims are malformed');
  const jti = c['jti'];
  if (typeof jti !== 'string' || jti === '') throw new ProofError('no jti');
  if (jti.length > MAX_JTI_LEN) throw new ProofError(`jti of ${jti.length} bytes`);
  if (c['htm'] !== req.method) throw new ProofError(`htm is not ${req.method}`);
  if (typeof c['htu'] !== 'string') throw new ProofError('no htu');
  let want: string;
  try {
    want = normalizeURL(req.url);
  } catch (e) {
    throw new ProofError(`request URL: ${(e as Error).message}`);
  }
  let got: string | undefined;
  try {
    got = normalizeURL(c['htu']);
  } catch {
    got = undefined;
  }
  if (got !== want) throw new ProofError(`htu is not ${want}`);
  const iat = c['iat'];
  if (iat === undefined) throw new ProofError('no iat');
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat < 0 || iat > 2 ** 40) throw new ProofError('iat is not a time');
  const now = req.now / 1000;
  const maxAge = req.maxAgeS ?? DEFAULT_DPOP_MAX_AGE_S;
  const skew = req.skewS ?? DPOP_SKEW_S;
  const iatS = Math.trunc(iat);
  if (iatS > now + skew) throw new ProofError('iat is in the future');
  if (now - iatS > maxAge + skew) throw new ProofError(`iat is older than ${maxAge}s`);
  if (req.accessToken !== undefined && req.accessToken !== '') {
    if (c['ath'] !== accessTokenHash(req.accessToken)) throw new ProofError('ath does not match the access token');
  }
  if (req.nonce !== undefined) {
    try {
      await req.nonce(typeof c['nonce'] === 'string' ? c['nonce'] : '');
    } catch (e) {
      throw new NonceError(e instanceof Error ? e.message : String(e));
    }
  }
  const jkt = await known.jkt;
  return { jkt, jti, iat: iatS, expires: (iatS + maxAge + skew + 1) * 1000 };
}

/**
 * normalizeURL returns u without query and fragment, normalised as RFC 9449 §4.3
 * asks (RFC 3986 §6.2.2, §6.2.3): scheme and host in lower case, default port
 * dropped, an empty path as "/", percent-encodings upper-cased and those of
 * unreserved characters decoded. Only absolute http(s) URIs are accepted.
 */
export function normalizeURL(u: string): string {
  let p: URL;
  try {
    p = new URL(u);
  } catch {
    throw new Error(`${JSON.stringify(u)} is not an absolute http(s) URI`);
  }
  if ((p.protocol !== 'http:' && p.protocol !== 'https:') || p.hostname === '') {
    throw new Error(`${JSON.stringify(u)} is not an absolute http(s) URI`);
  }
  // WHATWG URL already lower-cases scheme and host, drops default ports and
  // writes an empty path as "/".
  return `${p.protocol}//${p.host}${normalizePercent(p.pathname)}`;
}

function normalizePercent(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /^[A-Za-z0-9\-._~]$/.test(c) ? c : m.toUpperCase();
  });
}

/**
 * ReplayCache remembers the proofs accepted within their lifetime, in the order
 * they were accepted, up to a bound (RFC 9449 §11.1); when full the oldest go.
 */
export class ReplayCache {
  private seen = new Map<string, number>();
  private order: { key: string; expires: number }[] = [];
  private head = 0;
  constructor(private readonly max: number) {}

  /** add records key until expires (ms) and reports whether it was new at now. */
  add(key: string, expires: number, now: number): boolean {
    while (this.head < this.order.length) {
      const old = this.order[this.head]!;
      if (now < old.expires && this.order.length - this.head < this.max) break;
      if (this.seen.get(old.key) === old.expires) this.seen.delete(old.key);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    const exp = this.seen.get(key);
    if (exp !== undefined && now < exp) return false;
    this.seen.set(key, expires);
    this.order.push({ key, expires });
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
