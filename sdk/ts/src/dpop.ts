// DPoP proofs (RFC 9449): what a service sends to prove the key its tokens are
// bound to, at deputy's token endpoint (§5) and to the next service (§7). The
// mirror of Go's sdk/dpop on the sending side; checking proofs belongs to verify.
import { SignJWT, exportJWK, calculateJwkThumbprint, generateKeyPair, base64url } from 'jose';
import type { CryptoKey, KeyObject, JWK } from 'jose';
import { createHash, randomBytes } from 'node:crypto';

/** The HTTP header that carries a proof (RFC 9449 §4.1). */
export const DPOP_HEADER = 'DPoP';
/** The HTTP header that carries a server's nonce (RFC 9449 §8). */
export const DPOP_NONCE_HEADER = 'DPoP-Nonce';
/** The typ header of a proof (RFC 9449 §4.2). */
export const DPOP_TYPE = 'dpop+jwt';

/** The signature algorithms a proof may use (RFC 9449 §4.2; deputy's dpop_signing_alg_values_supported). */
export type DPoPAlgorithm = 'ES256' | 'EdDSA' | 'RS256' | 'PS256';

/**
 * A service's DPoP key: an asymmetric key pair (jose's generateKeyPair result, a
 * WebCrypto CryptoKeyPair, or node:crypto KeyObjects). alg, when absent, follows
 * from the key: EC P-256 → ES256, Ed25519 → EdDSA, RSA (2048 bits or more) → PS256
 * (RS256 for a WebCrypto RSASSA-PKCS1-v1_5 key).
 */
export interface DPoPKeyPair {
  privateKey: CryptoKey | KeyObject;
  publicKey: CryptoKey | KeyObject;
  alg?: DPoPAlgorithm;
}

/** A key ready to sign proofs: its algorithm, public JWK and RFC 7638 thumbprint (cnf.jkt). */
export interface DPoPKey {
  privateKey: CryptoKey | KeyObject;
  alg: DPoPAlgorithm;
  jwk: JWK;
  /** The RFC 7638 SHA-256 thumbprint of the public key, base64url: the cnf.jkt of tokens bound to it. */
  jkt: string;
}

const keys = new WeakMap<object, Promise<DPoPKey>>();

/**
 * Reads a key pair once: the algorithm it signs with, its public JWK (private
 * members never included) and its thumbprint. Refuses a key that is not EC P-256,
 * Ed25519 or RSA of at least 2048 bits, and an alg that does not fit the key.
 */
export function dpopKey(pair: DPoPKeyPair | DPoPKey): Promise<DPoPKey> {
  if ('jkt' in pair && 'jwk' in pair) return Promise.resolve(pair);
  let k = keys.get(pair);
  if (!k) {
    k = readKey(pair);
    keys.set(pair, k);
    k.catch(() => keys.delete(pair));
  }
  return k;
}

async function readKey(pair: DPoPKeyPair): Promise<DPoPKey> {
  if (!pair || !pair.privateKey || !pair.publicKey) throw new TypeError('dpop: a key pair { privateKey, publicKey } is required');
  const full = await exportJWK(pair.publicKey);
  let jwk: JWK;
  let fits: DPoPAlgorithm[];
  if (full.kty === 'EC' && full.crv === 'P-256') {
    jwk = { kty: 'EC', crv: 'P-256', x: full.x, y: full.y };
    fits = ['ES256'];
  } else if (full.kty === 'OKP' && full.crv === 'Ed25519') {
    jwk = { kty: 'OKP', crv: 'Ed25519', x: full.x };
    fits = ['EdDSA'];
  } else if (full.kty === 'RSA') {
    if (!full.n || base64url.decode(full.n).length < 256) throw new TypeError('dpop: an RSA key must have at least 2048 bits');
    jwk = { kty: 'RSA', n: full.n, e: full.e };
    fits = webCryptoName(pair.privateKey) === 'RSASSA-PKCS1-v1_5' ? ['RS256'] : ['PS256', 'RS256'];
  } else {
    throw new TypeError(`dpop: a ${full.kty} ${full.crv ?? ''} key is not EC P-256, Ed25519 or RSA`.replace('  ', ' '));
  }
  const alg = pair.alg ?? fits[0]!;
  if (!fits.includes(alg)) throw new TypeError(`dpop: alg ${alg} does not fit a ${jwk.kty} key`);
  return { privateKey: pair.privateKey, alg, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

function webCryptoName(k: CryptoKey | KeyObject): string | undefined {
  const alg = (k as { algorithm?: { name?: unknown } }).algorithm;
  return typeof alg?.name === 'string' ? alg.name : undefined;
}

/** Generates a new ES256 (EC P-256) DPoP key; the private key is not extractable. */
export async function generateDPoPKey(): Promise<DPoPKey> {
  const pair = await generateKeyPair('ES256');
  return dpopKey(pair);
}

/** The ath claim for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2). */
export function ath(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

/** htu of a proof: the request's URL without query and fragment (RFC 9449 §4.2). */
export function htu(url: string | URL): string {
  const u = new URL(url);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`dpop: ${u.protocol} is not http or https`);
  return u.origin + u.pathname;
}

export interface ProofOptions {
  key: DPoPKeyPair | DPoPKey;
  /** The HTTP method of the request (htm). */
  method: string;
  /** The request's URL; htu is it without query and fragment. */
  url: string | URL;
  /** The access token sent with the proof, when there is one: the proof carries its ath (RFC 9449 §7.1). */
  accessToken?: string;
  /** The server's last DPoP-Nonce, when it asked for one (RFC 9449 §8, §9). */
  nonce?: string;
}

/**
 * A proof for one request (RFC 9449 §4.2): typ dpop+jwt, the public key in jwk, a
 * fresh random jti, iat now, htm and htu of the request, nonce when given, ath when
 * an access token goes with it.
 */
export async function createProof(o: ProofOptions): Promise<string> {
  const key = await dpopKey(o.key);
  if (!o.method) throw new TypeError('dpop: method is required');
  const claims: Record<string, string> = {
    jti: randomBytes(16).toString('base64url'),
    htm: o.method.toUpperCase(),
    htu: htu(o.url),
  };
  if (o.nonce) claims.nonce = o.nonce;
  if (o.accessToken) claims.ath = ath(o.accessToken);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: DPOP_TYPE, jwk: key.jwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/**
 * The headers of a call with a DPoP-bound access token (RFC 9449 §7.1):
 * `Authorization: DPoP <token>` and a `DPoP` proof for this method and URL, with ath.
 */
export async function dpopHeaders(o: ProofOptions & { accessToken: string }): Promise<{ Authorization: string; DPoP: string }> {
  if (!o.accessToken) throw new TypeError('dpop: accessToken is required');
  return { Authorization: `DPoP ${o.accessToken}`, DPoP: await createProof(o) };
}

/**
 * Whether a response is a resource server asking for a DPoP nonce: 401 with a
 * DPoP challenge whose error is use_dpop_nonce (RFC 9449 §9).
 */
export function isNonceChallenge(res: { status: number; headers: { get(name: string): string | null } }): boolean {
  if (res.status !== 401) return false;
  const h = res.headers.get('www-authenticate') ?? '';
  return /(^|,)\s*DPoP\b[^]*error="use_dpop_nonce"/i.test(h);
}
