// Transaction tokens (draft-ietf-oauth-transaction-tokens), the mirror of Go's
// sdk/verify/txn.go, sdk/exchange/txntoken.go and sdk/exchange/txn.go: deputy's
// JWTs of typ txntoken+jwt, addressed to a trust domain rather than to one service.
// The service at the edge obtains one from the access token it received
// (obtainTxnToken), every service of the domain receives it unchanged in the
// Txn-Token header (forwardTxn) and verifies it (createTxnVerifier, with the
// authenticateTxn, expressTxn and fastifyTxn helpers; or Verifier.txn, which
// shares the access token verifier's keys). They are not access tokens: a
// TxnVerifier refuses access tokens.
import { KeySource, MAX_TOKEN_BYTES, REFUSED_HEADERS, SignatureError, TOKEN_ALGORITHMS, verifySignature } from './jwkfetch.js';
import { traceHeaders, type TraceOptions } from './trace.js';
import { basicAuth, httpURL, normalizeScope, readLimited, WELL_KNOWN, ExchangeError, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN, DEFAULT_TIMEOUT } from './exchange.js';
import type { FetchLike } from './exchange.js';
import { createProof, dpopKey, DPOP_HEADER, DPOP_NONCE_HEADER } from './dpop.js';
import type { DPoPKey, DPoPKeyPair } from './dpop.js';
import { failing, refuse } from './options.js';

/** The HTTP header a transaction token travels in (draft-ietf-oauth-transaction-tokens). */
export const TXN_TOKEN_HEADER = 'Txn-Token';
/** The token type URI of a transaction token (RFC 8693 §3 style). */
export const TOKEN_TYPE_TXN_TOKEN = 'urn:ietf:params:oauth:token-type:txn_token';
/** The JWT typ of a transaction token. */
export const TXN_TOKEN_TYPE = 'txntoken+jwt';
/** TxnVerifierConfig.clockTolerance's default, in ms: transaction tokens live about a minute. */
export const DEFAULT_TXN_CLOCK_TOLERANCE = 5_000;
/** The largest clockTolerance accepted, in ms (Go's MaxLeeway). */
export const MAX_CLOCK_TOLERANCE = 300_000;

/**
 * A transaction token that cannot be accepted, or cannot be checked now. error is
 * the OAuth error code the middleware answers with (invalid_request: no token or
 * more than one; invalid_token; temporarily_unavailable: deputy's keys cannot be
 * fetched), status its HTTP status (401, 401, 503), description what is shown to the
 * caller (never the token); message is the description.
 */
export class TxnError extends Error {
  readonly error: string;
  readonly description: string;
  readonly status: number;
  constructor(error: string, description: string, status: number, cause?: unknown) {
    super(description, cause === undefined ? undefined : { cause });
    this.name = 'TxnError';
    this.error = error;
    this.description = description;
    this.status = status;
  }
}

const invalidToken = (desc: string, cause?: unknown) => new TxnError('invalid_token', desc, 401, cause);
const unavailable = (desc: string, cause?: unknown) => new TxnError('temporarily_unavailable', desc, 503, cause);
const noCredentials = (desc: string) => new TxnError('invalid_request', desc, 401);

/** A transaction token's rctx claim as deputy writes it. */
export interface RequestContext {
  /** The IP address of the client that asked deputy for the token. */
  req_ip?: string;
  /** How the subject authenticated: its acr, else its amr values joined by a space. */
  authn?: string;
  /** The client id of the workload that asked for the token. */
  req_wl?: string;
}

/** What a verified transaction token says. */
export interface TxnPrincipal {
  /** The transaction: the same in every token of the call graph. */
  txn: string;
  /** The principal the transaction is for (sub). */
  subject: string;
  issuer: string;
  /** The transaction's purpose (scope, split at spaces). */
  scopes: string[];
  /** The transaction context (tctx); undefined when the token has none. */
  context: Record<string, unknown> | undefined;
  /** The context of the request that started the transaction (rctx); {} when none. */
  requestContext: RequestContext;
  issuedAt: Date;
  expiresAt: Date;
  jti: string;
  /** Every claim of the token. */
  claims: Record<string, unknown>;
  /** The token itself, to forward unchanged (never to log). */
  token: string;
  /** Whether the transaction's purpose includes scope s (exact, case-sensitive). */
  hasScope(s: string): boolean;
}

/** What a transaction token verifier checks beyond its issuer and keys: Verifier.txn's argument (Go's verify.TxnConfig). */
export interface TxnConfig {
  /** deputy's txn_tokens.trust_domain: a token's aud must be it, a single string. */
  trustDomain: string;
  /** A request without a Txn-Token header passes authenticateTxn and the middleware with no principal; a header that is there is always verified. */
  optional?: boolean;
  /** Clock skew tolerated on exp, nbf and iat, in ms; default 5 s, at most 5 min. */
  clockTolerance?: number;
}

/**
 * A stand-alone transaction token verifier's configuration. Its keys are fetched
 * and cached as the access token verifier's (jwkfetch.ts), but in a cache of its
 * own: a service that verifies both kinds of token makes this one with
 * Verifier.txn instead, so that one cache serves both.
 */
export interface TxnVerifierConfig extends TxnConfig {
  /** deputy's issuer URL: a token's iss must equal it; jwks_uri is discovered from its RFC 8414 metadata unless jwksUri is set. */
  issuer: string;
  /** deputy's JWKS URL; when set, no discovery is made. */
  jwksUri?: string;
  /** The fetch used for discovery and the JWKS; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Bound of one request to deputy, in ms; default 10 s. */
  timeout?: number;
  /** The clock, in ms since the epoch; default Date.now. For tests. */
  now?: () => number;
}

export interface TxnVerifier {
  readonly issuer: string;
  readonly trustDomain: string;
  readonly optional: boolean;
  /**
   * Checks token, a transaction token, as Go's TxnVerifier.Verify: size; compact
   * JWS; typ txntoken+jwt or application/txntoken+jwt; alg in the allow-list; no
   * jku, jwk, x5u, x5c, crit or b64 header; a kid deputy publishes (the JWKS is
   * fetched again for an unknown one); the signature; iss; aud the trust domain, a
   * single string; exp, iat (required) and nbf within clockTolerance; txn and sub;
   * tctx and rctx, when present, JSON objects. No revocation is checked. Rejects
   * with a TxnError.
   */
  verify(token: string): Promise<TxnPrincipal>;
}


/**
 * Returns a TxnVerifier for config, with a key cache of its own (see
 * TxnVerifierConfig; Verifier.txn shares one). It makes no request; discovery
 * happens on the first verify. Bad configuration throws a TypeError.
 */
export function createTxnVerifier(config: TxnVerifierConfig): TxnVerifier {
  refuse([
    ...failing('txn: config: ', [
      [!config.issuer, 'issuer is required'],
      [!!config.issuer && !httpURL(config.issuer), 'issuer must be an absolute http or https URL'],
      [!!config.jwksUri && !httpURL(config.jwksUri), 'jwksUri must be an absolute http or https URL'],
      [config.timeout !== undefined && !(config.timeout > 0), 'timeout must be positive'],
    ]),
    ...txnConfigProblems(config),
  ]);
  const doFetch: FetchLike = config.fetch ?? ((i, init) => globalThis.fetch(i, init));
  const keys = new KeySource({ issuer: config.issuer, jwksUri: config.jwksUri, fetch: doFetch, timeout: config.timeout ?? DEFAULT_TIMEOUT });
  return txnVerifierOf(config, config.issuer, keys, config.now ?? Date.now);
}

function txnConfigProblems(config: TxnConfig): string[] {
  return failing('txn: config: ', [
    [!config.trustDomain, 'trustDomain is required'],
    [config.clockTolerance !== undefined && !(config.clockTolerance >= 0), 'clockTolerance must not be negative'],
    [config.clockTolerance !== undefined && config.clockTolerance > MAX_CLOCK_TOLERANCE, 'clockTolerance must be at most 5 min'],
  ]);
}

/**
 * txnVerifierOf is the TxnVerifier of config for tokens of issuer signed with the
 * keys of keys, at the time now gives: createTxnVerifier's and Verifier.txn's.
 */
export function txnVerifierOf(config: TxnConfig, issuer: string, keys: KeySource, now: () => number): TxnVerifier {
  refuse(txnConfigProblems(config));
  const trustDomain = config.trustDomain;
  const leeway = config.clockTolerance || DEFAULT_TXN_CLOCK_TOLERANCE;

  async function verify(token: string): Promise<TxnPrincipal> {
    const t = now();
    const payload = await verifySigned(token, t);
    const c = parseClaims(payload);
    checkClaims(c, t);
    const scope = typeof c.all.scope === 'string' ? c.all.scope : '';
    const scopes = scope.split(/\s+/).filter((s) => s !== '');
    return {
      txn: c.txn, subject: c.sub, issuer: c.iss, scopes,
      context: c.tctx, requestContext: c.rctx,
      issuedAt: new Date(c.iat! * 1000), expiresAt: new Date(c.exp! * 1000),
      jti: c.jti, claims: c.all, token,
      hasScope: (s: string) => scopes.includes(s),
    };
  }

  async function verifySigned(raw: string, t: number): Promise<Uint8Array> {
    if (typeof raw !== 'string' || raw === '') throw invalidToken('token is empty');
    if (Buffer.byteLength(raw) > MAX_TOKEN_BYTES) throw invalidToken('token is too large');
    if (raw.split('.').length !== 3) throw invalidToken('token is not a compact JWS');
    const h = parseHeader(raw.slice(0, raw.indexOf('.')));
    try {
      return await verifySignature(keys, raw, h.alg, h.kid, t);
    } catch (e) {
      if (!(e instanceof SignatureError)) throw e;
      if (e.unavailable) throw unavailable(e.message, e.cause);
      throw invalidToken(e.message, e.cause);
    }
  }

  interface Claims {
    iss: string; sub: string; jti: string; txn: string;
    aud: string; audNotString: boolean;
    exp?: number; nbf?: number; iat?: number;
    tctx?: Record<string, unknown>; rctx: RequestContext;
    all: Record<string, unknown>;
  }

  function parseClaims(payload: Uint8Array): Claims {
    const malformed = (why: string) => invalidToken('transaction token claims are malformed', new Error(why));
    let all: unknown;
    try {
      all = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch (e) {
      throw invalidToken('transaction token claims are malformed', e);
    }
    if (!isObject(all)) throw malformed('payload is not a JSON object');
    const str = (name: string, v: unknown): string => {
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw malformed(`claim ${name} is not a string`);
      return v;
    };
    const num = (name: string, v: unknown): number | undefined => {
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(`claim ${name} is not a number`);
      return v;
    };
    const c: Claims = {
      iss: str('iss', all.iss), sub: str('sub', all.sub), jti: str('jti', all.jti), txn: str('txn', all.txn),
      aud: '', audNotString: false,
      exp: num('exp', all.exp), nbf: num('nbf', all.nbf), iat: num('iat', all.iat),
      rctx: {}, all,
    };
    str('scope', all.scope);
    // A transaction token's aud is the trust domain, a single string, never an array.
    if (typeof all.aud === 'string') c.aud = all.aud;
    else if (all.aud !== undefined && all.aud !== null) c.audNotString = true;
    if ('tctx' in all) {
      if (!isObject(all.tctx)) throw malformed('claim tctx is not a JSON object');
      c.tctx = all.tctx;
    }
    if ('rctx' in all) {
      const r = all.rctx;
      if (!isObject(r)) throw malformed('claim rctx is not a JSON object');
      for (const name of ['req_ip', 'authn', 'req_wl'] as const) {
        const v = str(`rctx.${name}`, r[name]);
        if (v !== '') c.rctx[name] = v;
      }
    }
    return c;
  }

  function checkClaims(c: Claims, t: number): void {
    const at = (s: number) => new Date(s * 1000).toISOString();
    if (c.iss !== issuer) throw invalidToken('token is from another issuer', new Error(`iss ${JSON.stringify(c.iss)}, want ${JSON.stringify(issuer)}`));
    if (c.audNotString) throw invalidToken("transaction token's aud is not a single string", new Error(`aud is no string, want ${JSON.stringify(trustDomain)}`));
    if (c.aud !== trustDomain) throw invalidToken('transaction token is for another trust domain', new Error(`aud ${JSON.stringify(c.aud)}, want ${JSON.stringify(trustDomain)}`));
    if (c.exp === undefined) throw invalidToken('token has no expiry (exp)');
    if (t >= c.exp * 1000 + leeway) throw invalidToken('token is expired', new Error(`exp ${at(c.exp)}, now ${new Date(t).toISOString()}`));
    if (c.iat === undefined) throw invalidToken('token has no issue time (iat)');
    if (c.iat * 1000 > t + leeway) throw invalidToken('token is issued in the future (iat)', new Error(`iat ${at(c.iat)}`));
    if (c.nbf !== undefined && c.nbf * 1000 > t + leeway) throw invalidToken('token is not valid yet (nbf)', new Error(`nbf ${at(c.nbf)}`));
    if (c.txn === '') throw invalidToken('transaction token has no transaction id (txn)');
    if (c.sub === '') throw invalidToken('token has no subject (sub)');
  }

  return { issuer, trustDomain, optional: config.optional ?? false, verify };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// parseHeader decodes the protected header and applies the checks that need no key,
// as Go's: no refused parameter, typ txntoken+jwt, an allowed alg, a kid.
function parseHeader(segment: string): { alg: string; kid: string } {
  let h: unknown;
  try {
    if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new Error('not base64url');
    h = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch (e) {
    throw invalidToken('token header is malformed', e);
  }
  if (!isObject(h)) throw invalidToken('token header is malformed', new Error('not a JSON object'));
  for (const name of REFUSED_HEADERS) {
    if (name in h) throw invalidToken(`token header carries ${name}, which is refused`);
  }
  for (const name of ['alg', 'kid', 'typ']) {
    if (name in h && typeof h[name] !== 'string') throw invalidToken('token header is malformed', new Error(`${name} is not a string`));
  }
  const typ = ((h.typ as string | undefined) ?? '').toLowerCase();
  if (typ !== TXN_TOKEN_TYPE && typ !== 'application/' + TXN_TOKEN_TYPE) {
    throw invalidToken(`token is not a transaction token (typ must be ${TXN_TOKEN_TYPE})`);
  }
  const alg = (h.alg as string | undefined) ?? '';
  if (!(TOKEN_ALGORITHMS as readonly string[]).includes(alg)) throw invalidToken('token algorithm is not allowed');
  const kid = (h.kid as string | undefined) ?? '';
  if (kid === '') throw invalidToken('token names no key (kid)');
  return { alg, kid };
}

// discover reads deputy's RFC 8414 metadata, whose issuer must be issuer.
async function discover(issuer: string, doFetch: FetchLike, timeout: number): Promise<Record<string, unknown>> {
  const where = issuer.replace(/\/$/, '') + WELL_KNOWN;
  const res = await doFetch(where, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeout) });
  const body = await readLimited(res);
  if (res.status !== 200) throw new Error(`${where} answered ${res.status}`);
  const md: unknown = JSON.parse(body);
  if (!isObject(md)) throw new Error(`${where}: not a JSON object`);
  if (md.issuer !== issuer) throw new Error(`${where} names issuer ${JSON.stringify(md.issuer)}, want ${JSON.stringify(issuer)}`);
  return md;
}

// --- middleware -------------------------------------------------------------

/** Request headers as the frameworks give them: a fetch Headers, or Node's object (lower-case names, string or string[] values). */
export type HeadersLike = Headers | { get(name: string): string | null } | Record<string, string | string[] | undefined>;

// txnHeaderValues returns the values of the Txn-Token header. Node joins repeated
// headers with ", " and Headers.get does too; a JWT holds no comma, so a comma
// separates values.
function txnHeaderValues(headers: HeadersLike): string[] {
  let raw: (string | undefined)[] = [];
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const v = (headers as { get(name: string): string | null }).get(TXN_TOKEN_HEADER);
    if (v !== null) raw = [v];
  } else {
    for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
      if (k.toLowerCase() !== 'txn-token' || v === undefined) continue;
      raw.push(...(Array.isArray(v) ? v : [v]));
    }
  }
  return raw.flatMap((v) => (v ?? '').split(',')).map((v) => v.trim());
}

/**
 * Verifies the one value of the Txn-Token header of a request. Resolves to its
 * principal, or to undefined when the header is absent and the verifier is
 * optional. Rejects with a TxnError: invalid_request (401) for no header or more
 * than one, invalid_token (401), temporarily_unavailable (503).
 */
export async function authenticateTxn(verifier: TxnVerifier, headers: HeadersLike): Promise<TxnPrincipal | undefined> {
  const values = txnHeaderValues(headers);
  if (values.length === 0) {
    if (verifier.optional) return undefined;
    throw noCredentials(`request has no ${TXN_TOKEN_HEADER} header`);
  }
  if (values.length > 1) throw noCredentials(`request has more than one ${TXN_TOKEN_HEADER} header`);
  return verifier.verify(values[0]!);
}

function quotable(s: string): string {
  return [...s].filter((c) => { const p = c.codePointAt(0)!; return p >= 0x20 && p <= 0x7e && c !== '"' && c !== '\\'; }).join('');
}

/** An error response of the middleware: status, headers and the JSON body. */
export interface TxnErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The response to a failed authenticateTxn, as Go's TxnVerifier middleware writes
 * it: 401 with `WWW-Authenticate: Txn-Token realm="<trust domain>"` for no header
 * or more than one, 401 with `Txn-Token error="invalid_token",
 * error_description="…"` for an invalid token, 503 when deputy cannot be reached,
 * 500 for anything else; a JSON body {"error", "error_description"}, never the
 * token.
 */
export function txnErrorResponse(verifier: TxnVerifier, err: unknown): TxnErrorResponse {
  const e = err instanceof TxnError ? err : new TxnError('server_error', 'the transaction token could not be checked', 500, err);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (e.status === 401 && e.error === 'invalid_request') {
    headers['www-authenticate'] = `${TXN_TOKEN_HEADER} realm="${quotable(verifier.trustDomain)}"`;
  } else if (e.status === 401) {
    headers['www-authenticate'] = `${TXN_TOKEN_HEADER} error="invalid_token", error_description="${quotable(e.description)}"`;
  }
  return { status: e.status, headers, body: JSON.stringify({ error: e.error, error_description: e.description }) + '\n' };
}

interface NodeishRequest { headers: Record<string, string | string[] | undefined>; txn?: TxnPrincipal }
interface NodeishResponse { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }

/**
 * Express middleware: verifies the request's Txn-Token and sets req.txn to its
 * principal (left unset for an absent header with optional), or answers as
 * txnErrorResponse. It reads no Authorization header: chain it with the access
 * token's middleware.
 */
export function expressTxn(verifier: TxnVerifier): (req: NodeishRequest, res: NodeishResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    authenticateTxn(verifier, req.headers).then(
      (p) => {
        if (p) req.txn = p;
        next();
      },
      (e: unknown) => {
        const r = txnErrorResponse(verifier, e);
        res.writeHead(r.status, r.headers);
        res.end(r.body);
      },
    );
  };
}

interface FastifyishReply { code(status: number): FastifyishReply; headers(h: Record<string, string>): FastifyishReply; send(body: string): unknown }

/**
 * A Fastify preHandler hook: verifies the request's Txn-Token and sets
 * request.txn to its principal, or answers as txnErrorResponse.
 */
export function fastifyTxn(verifier: TxnVerifier): (request: NodeishRequest, reply: FastifyishReply) => Promise<unknown> {
  return async (request, reply) => {
    try {
      const p = await authenticateTxn(verifier, request.headers);
      if (p) request.txn = p;
      return undefined;
    } catch (e) {
      const r = txnErrorResponse(verifier, e);
      return reply.code(r.status).headers(r.headers).send(r.body);
    }
  };
}

// --- obtaining one ------------------------------------------------------------

export interface TxnClientConfig {
  /** deputy's issuer URL; unless tokenEndpoint is set, the token endpoint is discovered from its metadata. */
  issuer?: string;
  /** deputy's token endpoint; when set, no discovery is made. */
  tokenEndpoint?: string;
  /** This service's client credentials (client_secret_basic). */
  clientId: string;
  clientSecret: string;
  /** The request proves this key (RFC 9449), as deputy requires when the subject token is bound; the transaction token itself is never bound. */
  dpopKey?: DPoPKeyPair | DPoPKey;
  fetch?: FetchLike;
  /** Bound of one request to deputy, in ms; default 10 s. */
  timeout?: number;
}

/**
 * What obtainTxnToken asks for. traceparent and tracestate (TraceOptions) go on
 * the token request, so deputy's audit event of the transaction token records the
 * trace id of the request that started the transaction; an invalid traceparent is
 * not sent.
 */
export interface TxnRequest extends TraceOptions {
  /** The transaction's purpose, narrowed from the subject token's; none asks for every scope deputy's policy allows. */
  scopes?: string[] | string;
  /** The transaction's context (the token's tctx), sent as request_context; it must be a JSON object. */
  context?: Record<string, unknown>;
  /** Sent as the audience when set; deputy accepts its own trust domain only, and uses it when none is sent. */
  trustDomain?: string;
  signal?: AbortSignal;
}

export interface TxnToken {
  /** The transaction token, to send unchanged in the Txn-Token header. */
  token: string;
  /** "N_A": a transaction token is never bound. */
  tokenType: string;
  /** urn:ietf:params:oauth:token-type:txn_token. */
  issuedTokenType: string;
  scopes: string[];
  /** When the request was sent plus expires_in; undefined when deputy gave none. */
  expiresAt: Date | undefined;
}

/**
 * Obtains a transaction token for the transaction that subjectToken, an access
 * token this service received, starts: a token exchange (RFC 8693 §2.1) with
 * requested_token_type txn_token, as Go's (*Exchanger).TxnToken. Each call is one
 * transaction with its own txn: nothing is cached or shared. Rejects with an
 * ExchangeError, as createExchanger's exchange does.
 */
export async function obtainTxnToken(config: TxnClientConfig, subjectToken: string, request: TxnRequest = {}): Promise<TxnToken> {
  if (!config.clientId || !config.clientSecret) throw new TypeError('txn: config: clientId and clientSecret are required');
  if (!config.issuer && !config.tokenEndpoint) throw new TypeError('txn: config: issuer or tokenEndpoint is required');
  if (!subjectToken) throw new ExchangeError('exchange: empty subject token');
  const doFetch: FetchLike = config.fetch ?? ((i, init) => globalThis.fetch(i, init));
  const timeout = config.timeout ?? DEFAULT_TIMEOUT;
  const form = new URLSearchParams({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: TOKEN_TYPE_ACCESS_TOKEN });
  if (request.trustDomain) form.set('audience', request.trustDomain);
  const scope = normalizeScope(request.scopes);
  if (scope) form.set('scope', scope);
  form.set('requested_token_type', TOKEN_TYPE_TXN_TOKEN);
  if (request.context !== undefined) {
    if (!isObject(request.context)) throw new ExchangeError('exchange: transaction context: not a JSON object');
    form.set('request_context', JSON.stringify(request.context));
  }
  let endpoint = config.tokenEndpoint;
  if (!endpoint) {
    let md: Record<string, unknown>;
    try {
      md = await discover(config.issuer!, doFetch, timeout);
    } catch (e) {
      throw new ExchangeError(`exchange: discovery: ${(e as Error).message}`, { retryable: true, cause: e });
    }
    if (typeof md.token_endpoint !== 'string' || !httpURL(md.token_endpoint)) {
      throw new ExchangeError(`exchange: discovery: no usable token_endpoint (${JSON.stringify(md.token_endpoint)})`);
    }
    endpoint = md.token_endpoint;
  }
  const key = config.dpopKey ? await dpopKey(config.dpopKey) : undefined;
  let nonce: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: basicAuth(config.clientId, config.clientSecret),
      ...traceHeaders(request.traceparent, request.tracestate),
    };
    if (key) headers[DPOP_HEADER] = await createProof({ key, method: 'POST', url: endpoint, nonce });
    const signal = request.signal ? AbortSignal.any([request.signal, AbortSignal.timeout(timeout)]) : AbortSignal.timeout(timeout);
    const sent = Date.now();
    let res: Response;
    let body: string;
    try {
      res = await doFetch(endpoint, { method: 'POST', headers, body: form.toString(), signal });
      body = await readLimited(res);
    } catch (e) {
      throw new ExchangeError(`exchange: token request: ${(e as Error).message}`, { retryable: true, cause: e });
    }
    let j: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(body);
      if (!isObject(v)) throw new Error('not a JSON object');
      j = v;
    } catch (e) {
      throw new ExchangeError(`exchange: token endpoint answered ${res.status} with a body that is not a JSON object: ${(e as Error).message}`, { status: res.status, retryable: res.status >= 500, cause: e });
    }
    if (res.status !== 200) {
      const code = typeof j.error === 'string' ? j.error : '';
      const desc = typeof j.error_description === 'string' ? j.error_description : undefined;
      const fresh = res.headers.get(DPOP_NONCE_HEADER);
      if (key && attempt === 0 && code === 'use_dpop_nonce' && fresh && fresh !== nonce) { // RFC 9449 §8
        nonce = fresh;
        continue;
      }
      throw new ExchangeError(`exchange: ${code || 'no error code'}${desc ? ': ' + desc : ''}`, {
        error: code || undefined, errorDescription: desc, status: res.status,
        retryable: res.status >= 500 || res.status === 429 || res.status === 408,
      });
    }
    if (typeof j.access_token !== 'string' || !j.access_token || typeof j.token_type !== 'string') {
      throw new ExchangeError('exchange: token response without access_token or token_type', { status: res.status });
    }
    if (j.issued_token_type !== TOKEN_TYPE_TXN_TOKEN) {
      throw new ExchangeError(`exchange: deputy answered a transaction token request with issued_token_type ${JSON.stringify(j.issued_token_type)}`, { status: res.status });
    }
    const expiresIn = typeof j.expires_in === 'number' && j.expires_in > 0 ? j.expires_in : 0;
    return {
      token: j.access_token,
      tokenType: j.token_type,
      issuedTokenType: j.issued_token_type,
      scopes: typeof j.scope === 'string' ? j.scope.split(' ').filter((s) => s !== '') : [],
      expiresAt: expiresIn > 0 ? new Date(sent + expiresIn * 1000) : undefined,
    };
  }
}

// --- forwarding ----------------------------------------------------------------

/**
 * The headers, or the RequestInit, of a call to url for the transaction of token:
 * a copy with `Txn-Token: <token>` when url's host is one of hosts, unchanged
 * otherwise (the token goes only to the services of the trust domain), as Go's
 * ForwardTxn.
 *
 * Host matching: each entry is "host" or "host:port" and is read as the host of a
 * URL of url's scheme, as a WHATWG URL reads it, then compared with url's host
 * exactly. Both sides are thus lower-cased and lose the scheme's default port (80
 * for http:, 443 for https:); an IPv6 address, listed in brackets, is compared
 * in its canonical form, and an internationalised name in its ASCII form: "ledger:80" and "ledger" both match
 * http://ledger/… and http://ledger:80/…, but not https://ledger/… (whose default
 * port is 443) nor http://ledger:8080/…; "[::1]:8080" matches http://[::1]:8080/….
 * An entry with anything but a host and port (a scheme, a path, user info) throws
 * a TypeError, as does an empty list: list the trust domain's services.
 *
 * The difference from Go's ForwardTxn: Go compares the entry with URL.Host as
 * written, so there "ledger" does not match https://ledger:443/ and "ledger:443"
 * does not match https://ledger/; a WHATWG URL has no such distinction (it drops
 * the default port), so here both match.
 *
 * It never overwrites a Txn-Token header already there and never adds an empty
 * token. The scheme is not checked: list only hosts reached over a protected
 * channel. redirect: a fetch that follows a redirect to another host carries the
 * header there; use redirect: 'manual' for calls that carry the token.
 */
export function forwardTxn(init: Headers, token: string | undefined, url: string | URL, hosts: readonly string[]): Headers;
export function forwardTxn(init: RequestInit | undefined, token: string | undefined, url: string | URL, hosts: readonly string[]): RequestInit;
export function forwardTxn(init: Headers | RequestInit | undefined, token: string | undefined, url: string | URL, hosts: readonly string[]): Headers | RequestInit {
  if (hosts.length === 0) throw new TypeError('txn: forwardTxn has no hosts to send the transaction token to');
  const isHeaders = init instanceof Headers;
  const headers = new Headers(isHeaders ? init : init?.headers);
  const target = new URL(url);
  const listed = hosts.map((h) => listedHost(h, target.protocol));
  if (token && !headers.has(TXN_TOKEN_HEADER) && listed.includes(target.host)) {
    headers.set(TXN_TOKEN_HEADER, token);
  }
  return isHeaders ? headers : { ...init, headers };
}

// listedHost is entry ("host" or "host:port") as the host of a URL of protocol:
// lower-cased, without protocol's default port, an IPv6 address in its canonical
// form (WHATWG URL host parsing). Anything else in entry is a TypeError.
function listedHost(entry: string, protocol: string): string {
  let u: URL | undefined;
  try {
    if (typeof entry === 'string' && entry !== '' && !/[/?#@\\\s]/.test(entry)) u = new URL(`${protocol}//${entry}/`);
  } catch {
    u = undefined;
  }
  if (u === undefined || u.host === '' || u.pathname !== '/') {
    throw new TypeError(`txn: forwardTxn: host ${JSON.stringify(entry)} is not a host or host:port`);
  }
  return u.host;
}
