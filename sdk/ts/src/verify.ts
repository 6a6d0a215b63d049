// Verifies deputy's access tokens in a Node service: the checks of the Go SDK's
// sdk/verify — RFC 9068 JWT access tokens signed with one of deputy's published
// keys, addressed to the service, within their lifetime, with the scopes the
// resource requires, and for DPoP-bound tokens the proof of their key (RFC 9449 §7).
//
// deputy's metadata (RFC 8414) and JWKS are fetched lazily, on the first verify,
// so a service starts while deputy is down and answers 503 until deputy is back.
// The keys are jwkfetch.ts's KeySource: cached for the JWKS's Cache-Control max-age
// clamped to [1m, 24h] (5m when it says nothing), fetched again on an unknown kid
// at most once per 30 s, and past its max-age refused (fail closed). A transaction
// token verifier made with Verifier.txn shares them. Signatures are checked by jose.
import { base64url } from 'jose';
import {
  VerifyError, dpopChallenge, insufficientScope, invalidProof, invalidToken, noCredentials, unavailable, useNonce,
} from './errors.js';
import type { NonceSource } from './nonces.js';
import { certificateMatches } from './certificate.js';
import { checkProof, NonceError, ProofError, ReplayCache, DEFAULT_DPOP_MAX_AGE_S, DPOP_SKEW_S } from './dpop-check.js';
import { parseClaims, principalOf, type Claims, type Principal } from './principal.js';
import {
  absoluteHTTP, DEFAULT_FETCH_TIMEOUT_MS, KeySource, MAX_TOKEN_BYTES, REFUSED_HEADERS, SignatureError, TOKEN_ALGORITHMS, verifySignature,
} from './jwkfetch.js';
import { Introspector } from './introspect.js';
import { txnVerifierOf, type TxnConfig, type TxnVerifier } from './txn.js';
import { failing, refuse } from './options.js';

export { keysMaxAge, parseKeySet, REFETCH_INTERVAL_MS, KEYS_MAX_AGE, MAX_TOKEN_BYTES, TOKEN_ALGORITHMS } from './jwkfetch.js';

/** leeway's default and bound, in seconds: the clock skew tolerated on exp, nbf and iat. */
export const DEFAULT_LEEWAY_S = 30;
export const MAX_LEEWAY_S = 300;
const DEFAULT_DPOP_REPLAY_ENTRIES = 100_000;
const MAX_DPOP_MAX_AGE_S = 600;


export interface VerifierOptions {
  /** deputy's issuer URL; a token's iss must equal it exactly. */
  issuer: string;
  /** This service's audience id; a token's aud must contain it. */
  audience: string;
  /** Overrides the metadata's jwks_uri. */
  jwksUri?: string;
  /** Clock skew tolerated on exp, nbf and iat, in seconds; default 30, at most 300. */
  leeway?: number;
  /** Refuse every token that is not DPoP-bound (RFC 9449 §7). */
  requireBinding?: boolean;
  /** How old a DPoP proof's iat may be, in seconds; default 60, at most 600. */
  dpopMaxAge?: number;
  /** Bound of the replay cache of DPoP proof jti values; default 100000. */
  dpopReplayEntries?: number;
  /**
   * When set, every DPoP proof must carry a server nonce this source accepts (RFC 9449
   * §9): a proof without a valid one is refused 401 use_dpop_nonce, and the error
   * carries a fresh nonce for the DPoP-Nonce header (VerifyError.dpopNonce, sent by
   * writeRefusal and the adapters). createNonces makes a stateless source that every
   * replica sharing its key accepts, Go's included.
   */
  dpopNonces?: NonceSource;
  /** The fetch used to reach deputy; default globalThis.fetch. */
  fetch?: typeof globalThis.fetch;
  /**
   * Introspection mode: every token that passes the offline checks is also checked
   * at deputy's introspection endpoint (RFC 7662) with clientId and clientSecret
   * (client_secret_basic), so a revoked token is refused at once. It costs one
   * request to deputy per verify; when deputy cannot answer, the token is refused
   * with 503, never passed.
   */
  introspect?: boolean;
  /** This service's client at deputy, for introspection mode. */
  clientId?: string;
  clientSecret?: string;
  /** Overrides the metadata's introspection_endpoint. */
  introspectionUri?: string;
  /** The current time in milliseconds; default Date.now. For tests. */
  now?: () => number;
}

/** How a token was presented with a DPoP proof: Authorization: DPoP (RFC 9449 §7.1). */
export interface DPoPPresentation {
  /** The DPoP header(s) of the request; none, or more than one, is refused. */
  proof: string | string[] | undefined;
  /** The request's method. */
  method: string;
  /** The URL the client sent the request to (its query and fragment are ignored). */
  url: string;
}

export interface VerifyOptions {
  /** Scopes the token must all carry. */
  scopes?: string[];
  /** Present when the token came with the DPoP scheme; absent for Bearer. */
  dpop?: DPoPPresentation;
  /**
   * The DER bytes of the TLS client certificate the request came with
   * (peerCertificate(req.socket)); a certificate-bound token (cnf["x5t#S256"],
   * RFC 8705 §3) is accepted only with the certificate it names.
   */
  certificate?: Uint8Array;
}

export interface Verifier {
  readonly issuer: string;
  readonly audience: string;
  readonly requireBinding: boolean;
  /**
   * verify checks token and returns its Principal, or throws a VerifyError. The
   * checks, in order: size; compact JWS; typ at+jwt or application/at+jwt (any
   * case); alg in the allow-list; no jku, jwk, x5u, x5c, crit or b64 header; a kid
   * deputy publishes whose key fits alg; the signature; iss; sub; aud; exp, nbf
   * and iat within the leeway; the act chain; then the binding: a DPoP-bound
   * token only with opts.dpop and a proof of its key for this request, a
   * certificate-bound token only with opts.certificate the certificate it names,
   * an unbound token never with opts.dpop; in introspection mode, that deputy
   * still calls the token active; last the scopes.
   */
  verify(token: string, opts?: VerifyOptions): Promise<Principal>;
  /**
   * txn returns a verifier of the transaction tokens deputy issues for
   * config.trustDomain, with this verifier's issuer, clock and key cache (the
   * mirror of Go's Verifier.Txn): one JWKS fetch serves both kinds of token, a kid
   * rotation seen by one is seen by the other, and both answer 503 while deputy's
   * keys cannot be fetched. It validates config (TypeError) and makes no request.
   */
  txn(config: TxnConfig): TxnVerifier;
}

/** createVerifier validates options and returns a Verifier; it does no network I/O. */
export function createVerifier(options: VerifierOptions): Verifier {
  validate(options);
  return new TokenVerifier(options);
}

function validate(o: VerifierOptions): void {
  refuse(failing('verify: options: ', [
    [!o.issuer, 'issuer is required'],
    [!!o.issuer && !absoluteHTTP(o.issuer), 'issuer must be an absolute http(s) URL'],
    [!o.audience, 'audience is required'],
    [o.jwksUri !== undefined && !absoluteHTTP(o.jwksUri), 'jwksUri must be an absolute http(s) URL'],
    [o.leeway !== undefined && !(o.leeway >= 0), 'leeway must not be negative'],
    [o.leeway !== undefined && o.leeway > MAX_LEEWAY_S, `leeway must be at most ${MAX_LEEWAY_S} seconds`],
    [o.dpopNonces !== undefined && (typeof o.dpopNonces?.nonce !== 'function' || typeof o.dpopNonces?.check !== 'function'),
      'dpopNonces must have nonce() and check(nonce)'],
    [o.introspectionUri !== undefined && !absoluteHTTP(o.introspectionUri), 'introspectionUri must be an absolute http(s) URL'],
    [!!o.introspect && !o.clientId, 'clientId is required with introspect'],
    [!!o.introspect && !o.clientSecret, 'clientSecret is required with introspect'],
    [o.dpopMaxAge !== undefined && !(o.dpopMaxAge >= 0), 'dpopMaxAge must not be negative'],
    [o.dpopMaxAge !== undefined && o.dpopMaxAge > MAX_DPOP_MAX_AGE_S, `dpopMaxAge must be at most ${MAX_DPOP_MAX_AGE_S} seconds`],
    [o.dpopReplayEntries !== undefined && !(o.dpopReplayEntries >= 0), 'dpopReplayEntries must not be negative'],
  ]));
}

class TokenVerifier implements Verifier {
  readonly issuer: string;
  readonly audience: string;
  readonly requireBinding: boolean;
  private readonly leeway: number;
  private readonly now: () => number;
  private readonly keys: KeySource;
  private readonly dpopMaxAge: number;
  private readonly replay: ReplayCache;
  private readonly nonces: NonceSource | undefined;
  private readonly introspector: Introspector | undefined;

  constructor(o: VerifierOptions) {
    this.issuer = o.issuer;
    this.audience = o.audience;
    this.requireBinding = o.requireBinding ?? false;
    this.leeway = o.leeway || DEFAULT_LEEWAY_S;
    this.now = o.now ?? Date.now;
    this.dpopMaxAge = o.dpopMaxAge || DEFAULT_DPOP_MAX_AGE_S;
    this.replay = new ReplayCache(o.dpopReplayEntries || DEFAULT_DPOP_REPLAY_ENTRIES);
    this.nonces = o.dpopNonces;
    const fetchFn = o.fetch ?? globalThis.fetch;
    this.keys = new KeySource({ issuer: o.issuer, jwksUri: o.jwksUri, fetch: fetchFn });
    if (o.introspect) {
      this.introspector = new Introspector({
        url: o.introspectionUri, keys: this.keys, fetch: fetchFn, clientId: o.clientId!, clientSecret: o.clientSecret!,
        timeout: DEFAULT_FETCH_TIMEOUT_MS,
      });
    }
  }

  txn(config: TxnConfig): TxnVerifier {
    return txnVerifierOf(config, this.issuer, this.keys, this.now);
  }

  async verify(token: string, opts: VerifyOptions = {}): Promise<Principal> {
    const now = this.now();
    let p: Principal;
    try {
      p = await this.verifyJWT(token, now);
    } catch (e) {
      throw opts.dpop ? dpopChallenge(e) : e;
    }
    const proof = await this.checkBinding(p, token, opts.dpop, opts.certificate, now);
    // The proof's jti is spent only by a request that passed every check of the token.
    if (this.introspector) await this.introspector.check(token, now);
    if (proof !== undefined && !this.replay.add(proof.key, proof.expires, now)) {
      throw invalidProof('DPoP proof was used before (jti)');
    }
    const missing = (opts.scopes ?? []).filter((s) => !p.scopes.includes(s));
    if (missing.length > 0) throw insufficientScope(opts.scopes ?? []);
    return p;
  }

  private async verifyJWT(raw: string, now: number): Promise<Principal> {
    const payload = await this.verifySigned(raw, now);
    let c: Claims;
    try {
      c = parseClaims(payload);
    } catch (e) {
      throw invalidToken('token claims are malformed', e);
    }
    this.checkClaims(c, now);
    return principalOf(c, raw);
  }

  private async verifySigned(raw: string, now: number): Promise<Uint8Array> {
    if (typeof raw !== 'string' || raw === '') throw invalidToken('token is empty');
    if (Buffer.byteLength(raw) > MAX_TOKEN_BYTES) throw invalidToken('token is too large');
    const parts = raw.split('.');
    if (parts.length !== 3) throw invalidToken('token is not a compact JWS');
    const h = parseHeader(parts[0]!);
    try {
      return await verifySignature(this.keys, raw, h.alg, h.kid, now);
    } catch (e) {
      if (!(e instanceof SignatureError)) throw e;
      if (e.unavailable) throw unavailable(e.message, e.cause);
      throw invalidToken(e.message, e.cause);
    }
  }

  private checkClaims(c: Claims, now: number): void {
    const t = now / 1000;
    if (c.iss !== this.issuer) throw invalidToken('token is from another issuer', new Error(`iss ${JSON.stringify(c.iss)}`));
    if (c.sub === '') throw invalidToken('token has no subject (sub)');
    if (!c.aud.includes(this.audience)) throw invalidToken('token is not for this audience');
    if (c.exp === undefined) throw invalidToken('token has no expiry (exp)');
    if (!(t < c.exp + this.leeway)) throw invalidToken('token is expired');
    if (c.nbf !== undefined && c.nbf > t + this.leeway) throw invalidToken('token is not valid yet (nbf)');
    if (c.iat !== undefined && c.iat > t + this.leeway) throw invalidToken('token is issued in the future (iat)');
    for (let a = c.act; a !== undefined; a = a.act) {
      if (a.sub === '') throw invalidToken('token act claim is malformed', new Error('an actor without sub'));
    }
  }

  /** checkBinding: the request proves the key p's token is bound to (RFC 9449 §7, RFC 8705 §3). */
  private async checkBinding(p: Principal, raw: string, dpop: DPoPPresentation | undefined,
    certificate: Uint8Array | undefined, now: number): Promise<{ key: string; expires: number } | undefined> {
    const cnf = p.cnf;
    if (cnf?.jkt !== undefined) {
      if (!dpop) {
        throw invalidToken('token is DPoP-bound and must be sent with Authorization: DPoP and a proof').with({ scheme: 'DPoP' });
      }
      return this.checkProof(dpop, raw, cnf.jkt, now);
    }
    if (dpop) throw invalidToken('token is not DPoP-bound').with({ scheme: 'DPoP' });
    const x5t = cnf?.['x5t#S256'];
    if (x5t !== undefined) {
      if (certificate === undefined) throw invalidToken('token is certificate-bound and the request has no TLS client certificate');
      if (!certificateMatches(certificate, x5t)) throw invalidToken('token is bound to another TLS client certificate');
      return undefined;
    }
    if (this.requireBinding) {
      throw invalidToken('token is not sender-constrained (no cnf); this service requires bound tokens').with({ scheme: 'DPoP' });
    }
    return undefined;
  }

  private async checkProof(d: DPoPPresentation, raw: string, jkt: string, now: number) {
    const proofs = d.proof === undefined ? [] : Array.isArray(d.proof) ? d.proof : [d.proof];
    if (proofs.length === 0) {
      throw invalidToken('DPoP-bound token presented without a DPoP proof').with({ scheme: 'DPoP' });
    }
    if (proofs.length > 1) throw invalidProof('more than one DPoP header');
    let checked;
    try {
      const nonces = this.nonces;
      checked = await checkProof(proofs[0]!, {
        method: d.method, url: d.url, accessToken: raw, now, maxAgeS: this.dpopMaxAge, skewS: DPOP_SKEW_S,
        nonce: nonces && ((n) => nonces.check(n)),
      });
    } catch (e) {
      if (e instanceof ProofError) throw invalidProof(`DPoP proof is invalid: ${e.reason}`, e);
      if (e instanceof NonceError) throw useNonce(await this.freshNonce(), e);
      throw e;
    }
    if (checked.jkt !== jkt) throw invalidProof('DPoP proof is signed by another key than the token is bound to');
    return { key: `${checked.jkt} ${checked.jti}`, expires: now + (this.dpopMaxAge + 2 * DPOP_SKEW_S) * 1000 };
  }

  /** A nonce for the DPoP-Nonce header of a use_dpop_nonce answer; none when the source fails. */
  private async freshNonce(): Promise<string | undefined> {
    try {
      const n = await this.nonces?.nonce();
      // RFC 9449 §8.1: a nonce is 1*NQCHAR; anything else is not sent.
      return typeof n === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }
}

interface Header {
  alg: string;
  kid: string;
  typ: string;
}

/** parseHeader decodes the protected header and applies the checks that need no key. */
function parseHeader(segment: string): Header {
  let params: unknown;
  try {
    params = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64url.decode(segment)));
  } catch (e) {
    throw invalidToken('token header is malformed', e);
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw invalidToken('token header is malformed');
  const p = params as Record<string, unknown>;
  for (const name of REFUSED_HEADERS) {
    if (Object.hasOwn(p, name)) throw invalidToken(`token header carries ${name}, which is refused`);
  }
  const h: Header = { alg: '', kid: '', typ: '' };
  for (const name of ['alg', 'kid', 'typ'] as const) {
    const v = p[name];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw invalidToken('token header is malformed', new Error(`${name} is not a string`));
    h[name] = v;
  }
  const typ = h.typ.toLowerCase();
  if (typ !== 'at+jwt' && typ !== 'application/at+jwt') {
    throw invalidToken('token is not a JWT access token (typ must be at+jwt)');
  }
  if (!(TOKEN_ALGORITHMS as readonly string[]).includes(h.alg)) throw invalidToken('token algorithm is not allowed');
  if (h.kid === '') throw invalidToken('token names no key (kid)');
  return h;
}

// --- The framework-neutral request check -----------------------------------------

/** What authenticate reads of a request. Header values as Node gives them (headersDistinct gives arrays). */
export interface RequestCredentials {
  authorization: string | string[] | undefined;
  dpop?: string | string[] | undefined;
  method: string;
  /** The URL the client used (for a DPoP proof's htu); see requestURL. */
  url: string;
  /** The TLS client certificate of the connection, DER (peerCertificate(req.socket)); for certificate-bound tokens. */
  certificate?: Uint8Array;
}

export interface AuthenticateOptions {
  scopes?: string[];
}

/**
 * authenticate reads the one Authorization header — scheme Bearer (RFC 6750 §2.1)
 * or DPoP (RFC 9449 §7.1), any case; tokens in the query or body are never read —
 * and verifies its token (and DPoP proof) for the request. It returns the
 * Principal or throws a VerifyError carrying the verifier's realm and the scopes
 * required, ready to be answered (status, challenges(), toJSON()).
 */
export async function authenticate(verifier: Verifier, req: RequestCredentials, opts: AuthenticateOptions = {}): Promise<Principal> {
  const scopes = opts.scopes ?? [];
  try {
    const { token, scheme } = parseAuthorization(req.authorization);
    return await verifier.verify(token, {
      scopes,
      dpop: scheme === 'DPoP' ? { proof: req.dpop, method: req.method, url: req.url } : undefined,
      certificate: req.certificate,
    });
  } catch (e) {
    if (e instanceof VerifyError) {
      throw e.with({ realm: verifier.audience, scopes, offerBearer: !verifier.requireBinding });
    }
    throw e;
  }
}

/** parseAuthorization returns the token and scheme of the one Authorization header. */
export function parseAuthorization(h: string | string[] | undefined): { token: string; scheme: 'Bearer' | 'DPoP' } {
  const values = h === undefined ? [] : Array.isArray(h) ? h : [h];
  if (values.length === 0) throw noCredentials('missing bearer token');
  if (values.length > 1) throw noCredentials('more than one Authorization header');
  const v = values[0]!;
  const sp = v.indexOf(' ');
  const name = sp < 0 ? v : v.slice(0, sp);
  let scheme: 'Bearer' | 'DPoP';
  if (sp >= 0 && name.toLowerCase() === 'bearer') scheme = 'Bearer';
  else if (sp >= 0 && name.toLowerCase() === 'dpop') scheme = 'DPoP';
  else throw noCredentials('the Authorization header does not carry a bearer or DPoP token');
  const token = v.slice(sp + 1).replace(/^ +/, '');
  if (token === '' || /[ \t]/.test(token)) throw noCredentials('the Authorization header does not carry a bearer or DPoP token');
  return { token, scheme };
}

/**
 * requestURL is the URL a client sent a request to, without query and fragment,
 * as a DPoP proof's htu names it: publicUrl (the service's external base URL,
 * e.g. "https://gateway.example/ledger" behind a proxy) followed by the path, or
 * protocol://host followed by the path; '' when the request has no Host.
 */
export function requestURL(r: { publicUrl?: string; protocol: string; host: string | undefined; path: string }): string {
  let path = r.path;
  const q = path.search(/[?#]/);
  if (q >= 0) path = path.slice(0, q);
  if (!path.startsWith('/')) path = '/' + path;
  if (r.publicUrl) return r.publicUrl.replace(/\/+$/, '') + path;
  if (!r.host) return ''; // no Host: no proof can match (checkProof refuses '')
  return `${r.protocol}://${r.host}${path}`;
}
