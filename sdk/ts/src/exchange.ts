// The exchange side of the SDK, the mirror of Go's sdk/exchange: a service trades
// the access token it received for one addressed to the next service, by OAuth 2.0
// Token Exchange (RFC 8693 §2) at deputy's token endpoint, authenticated with
// client_secret_basic (RFC 6749 §2.3.1). Exchanged tokens are cached per (SHA-256
// of the subject token, audience, sorted scopes, DPoP key thumbprint) until
// refreshBefore ahead of their expiry, with one request in flight per key. With a
// DPoP key (RFC 9449) every token request proves it and the tokens come back bound.
// A request's W3C trace (traceparent, tracestate; trace.ts) given to exchange or
// fetch goes with the token request to deputy and with the call to the next service.
import { createHash } from 'node:crypto';
import { createProof, dpopKey, generateDPoPKey, isNonceChallenge, DPOP_HEADER, DPOP_NONCE_HEADER } from './dpop.js';
import type { DPoPKey, DPoPKeyPair } from './dpop.js';
import { traceHeaders, TRACEPARENT_HEADER, type TraceOptions } from './trace.js';
import { failing, refuse } from './options.js';

/** Defaults of ExchangerConfig (milliseconds and counts), as in Go's sdk/exchange. */
export const DEFAULT_TIMEOUT = 10_000;
export const DEFAULT_REFRESH_BEFORE = 30_000;
export const DEFAULT_MAX_ENTRIES = 10_000;

/** RFC 8693 §2.1 and §3 names. */
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

export const WELL_KNOWN = '/.well-known/oauth-authorization-server'; // RFC 8414 §3
const MAX_BODY = 1 << 20;
const MAX_ORIGINS = 1000; // remembered nonces; past it they are all forgotten
const MAX_EXPIRES_IN = 100 * 365 * 24 * 3600;

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface ExchangerConfig {
  /** deputy's issuer URL; unless tokenEndpoint is set, the token endpoint is discovered from its RFC 8414 metadata, whose issuer must equal it. */
  issuer?: string;
  /** deputy's token endpoint; when set, no discovery is made. */
  tokenEndpoint?: string;
  /** This service's client credentials, sent as client_secret_basic (RFC 6749 §2.3.1). */
  clientId: string;
  clientSecret: string;
  /** Binds exchanged tokens to this key (RFC 9449): every token request carries a proof of it. */
  dpopKey?: DPoPKeyPair | DPoPKey;
  /** true: generate an ES256 DPoP key for this exchanger (see Exchanger.dpopKey). Ignored when dpopKey is set. */
  dpop?: boolean;
  /** The fetch used for deputy; default globalThis.fetch. */
  fetch?: FetchLike;
  /** A cached token is reused until this many ms before it expires; default 30 s. */
  refreshBefore?: number;
  /** Bound of the cache; default 10,000 tokens. */
  maxEntries?: number;
  /** Bound of one request to deputy, in ms; default 10 s. */
  timeout?: number;
  /** The clock, in ms since the epoch; default Date.now. For tests. */
  now?: () => number;
}

/** An exchanged token (RFC 8693 §2.2.1). */
export interface ExchangedToken {
  accessToken: string;
  /** "Bearer", "DPoP" or "N_A". */
  tokenType: string;
  /** A token type URI (RFC 8693 §3), e.g. urn:ietf:params:oauth:token-type:access_token. */
  issuedTokenType: string;
  /** The granted scopes (the response's scope, split at spaces). */
  scopes: string[];
  /** When the request was sent plus expires_in; undefined when deputy gave none (such a token is not cached). */
  expiresAt: Date | undefined;
}

/**
 * Options of one exchange. traceparent and tracestate (W3C Trace Context, see
 * TraceOptions) go on the token request to deputy, whose audit events then record
 * the caller's trace id: only when a request is sent — a cached token makes none,
 * and a request shared by several callers carries the trace of the one that
 * started it.
 */
export interface ExchangeOptions extends TraceOptions {
  /** The caller stops waiting when it aborts; a request shared with others goes on for them and the cache. */
  signal?: AbortSignal;
}

/**
 * The init of Exchanger.fetch: a fetch RequestInit, and the trace of the request
 * being handled (TraceOptions), sent to deputy as ExchangeOptions says and on the
 * call to the next service as the traceparent and tracestate headers, unless
 * init.headers has a traceparent already. An invalid traceparent is sent to
 * neither.
 */
export interface ExchangeFetchInit extends RequestInit, TraceOptions {}

/**
 * An exchange that failed. error and errorDescription are deputy's OAuth error
 * (RFC 6749 §5.2, RFC 8693 §2.2.2) when it answered one; status is the HTTP status
 * (undefined when no answer came). retryable: the same request may succeed later
 * (no answer, a timeout, 5xx, 408, 429).
 */
export class ExchangeError extends Error {
  readonly error: string | undefined;
  readonly errorDescription: string | undefined;
  readonly status: number | undefined;
  readonly retryable: boolean;
  constructor(message: string, o: { error?: string; errorDescription?: string; status?: number; retryable?: boolean; cause?: unknown } = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'ExchangeError';
    this.error = o.error;
    this.errorDescription = o.errorDescription;
    this.status = o.status;
    this.retryable = o.retryable ?? false;
  }

  /** A copy, so that no waiter of a shared exchange changes what another sees. */
  clone(): ExchangeError {
    const c = new ExchangeError(this.message, { error: this.error, errorDescription: this.errorDescription, status: this.status, retryable: this.retryable, cause: this.cause });
    c.stack = this.stack;
    return c;
  }
}

/** Whether a request answered with status may succeed if repeated. */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

interface Entry {
  tok: ExchangedToken;
  refreshAt: number;
}

export interface Exchanger {
  /**
   * Trades subjectToken, an access token this service received, for one addressed
   * to audience with the given scopes (RFC 8693 §2.1: subject_token_type
   * access_token; no scopes: what deputy's policy allows; an empty audience sends
   * none). Cached and shared per key; errors are ExchangeError and are not cached.
   */
  exchange(subjectToken: string, audience: string, scopes?: string[] | string, options?: ExchangeOptions): Promise<ExchangedToken>;
  /** The DPoP key tokens are bound to (generated on first use with dpop: true); undefined for bearer tokens. */
  dpopKey(): Promise<DPoPKey | undefined>;
  /**
   * fetch with a token exchanged for audience and scopes from subjectToken: as
   * `Authorization: Bearer`, or for a DPoP-bound token `Authorization: DPoP` with a
   * fresh proof (RFC 9449 §7.1), asking once more with the service's nonce when it
   * answers a use_dpop_nonce challenge (§9) and the body can be sent again.
   * init.traceparent and init.tracestate carry the request's trace to deputy and
   * the next service (ExchangeFetchInit).
   */
  fetch(subjectToken: string, audience: string, scopes: string[] | string | undefined, input: string | URL, init?: ExchangeFetchInit): Promise<Response>;
}

export function httpURL(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '' && u.hash === '';
  } catch {
    return false;
  }
}

/** RFC 6749 §2.3.1 / Appendix B: application/x-www-form-urlencoded, as Go's url.QueryEscape. */
export function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()).replace(/%20/g, '+');
}

/** The Authorization header of client_secret_basic (RFC 6749 §2.3.1). */
export function basicAuth(clientId: string, clientSecret: string): string {
  return 'Basic ' + Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64');
}

/** The scope parameter of scopes (RFC 6749 §3.3): split at spaces, sorted, without duplicates. */
export function normalizeScope(scopes: string[] | string | undefined): string {
  const all = (Array.isArray(scopes) ? scopes : scopes === undefined ? [] : [scopes]).flatMap((s) => s.split(/\s+/)).filter((s) => s !== '');
  return [...new Set(all)].sort().join(' ');
}

/**
 * The body of res as text, at most max bytes of it (a longer one is cut there and
 * the rest not read): what is read of a token endpoint or discovery answer is bounded.
 */
export async function readLimited(res: Response, max = MAX_BODY): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = max - size;
    chunks.push(value.length > room ? value.subarray(0, room) : value);
    size += Math.min(value.length, room);
    if (size >= max) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

const readBody = (res: Response) => readLimited(res);

function waitFor<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((ok, fail) => {
    const onAbort = () => fail(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); ok(v); },
      (e) => { signal.removeEventListener('abort', onAbort); fail(e); },
    );
  });
}

/** Returns an Exchanger for config. It makes no request; discovery, when needed, happens on the first exchange. */
export function createExchanger(config: ExchangerConfig): Exchanger {
  refuse(failing('exchange: config: ', [
    [!config.clientId, 'clientId is required'],
    [!config.clientSecret, 'clientSecret is required'],
    [!config.issuer && !config.tokenEndpoint, 'issuer or tokenEndpoint is required'],
    [!!config.issuer && !httpURL(config.issuer), 'issuer must be an absolute http or https URL'],
    [!!config.tokenEndpoint && !httpURL(config.tokenEndpoint), 'tokenEndpoint must be an absolute http or https URL'],
    [config.refreshBefore !== undefined && !(config.refreshBefore >= 0), 'refreshBefore must not be negative'],
    [config.maxEntries !== undefined && !(config.maxEntries >= 1), 'maxEntries must be at least 1'],
    [config.timeout !== undefined && !(config.timeout > 0), 'timeout must be positive'],
  ]));

  const clientId = config.clientId;
  const clientSecret = config.clientSecret;
  const issuer = config.issuer;
  const doFetch: FetchLike = config.fetch ?? ((i, init) => globalThis.fetch(i, init));
  const refreshBefore = config.refreshBefore ?? DEFAULT_REFRESH_BEFORE;
  const maxEntries = config.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const timeout = config.timeout ?? DEFAULT_TIMEOUT;
  const now = config.now ?? Date.now;

  let keyPromise: Promise<DPoPKey> | undefined;
  if (config.dpopKey) keyPromise = dpopKey(config.dpopKey);
  else if (config.dpop) keyPromise = generateDPoPKey();
  // An invalid key fails every exchange with its reason, not an unhandled rejection.
  keyPromise?.catch(() => {});

  let tokenURL = config.tokenEndpoint;
  let discovering: Promise<string> | undefined;
  const cache = new Map<string, Entry>();
  const flights = new Map<string, Promise<ExchangedToken>>();
  const nonces = new Map<string, string>(); // the last DPoP-Nonce of each origin

  function tokenEndpoint(): Promise<string> {
    if (tokenURL) return Promise.resolve(tokenURL);
    if (!discovering) {
      discovering = discover().then(
        (u) => { tokenURL = u; discovering = undefined; return u; },
        (e) => { discovering = undefined; throw e; }, // not remembered: the next exchange tries again
      );
    }
    return discovering;
  }

  async function discover(): Promise<string> {
    const where = issuer!.replace(/\/$/, '') + WELL_KNOWN;
    let res: Response;
    try {
      res = await doFetch(where, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeout) });
    } catch (e) {
      throw new ExchangeError(`exchange: discovery: ${where}: ${(e as Error).message}`, { retryable: true, cause: e });
    }
    const body = await readBody(res);
    if (res.status !== 200) {
      throw new ExchangeError(`exchange: discovery: ${where} answered ${res.status}`, { status: res.status, retryable: retryableStatus(res.status) });
    }
    let md: { issuer?: unknown; token_endpoint?: unknown };
    try {
      md = JSON.parse(body);
    } catch (e) {
      throw new ExchangeError(`exchange: discovery: ${where}: ${(e as Error).message}`, { status: res.status, cause: e });
    }
    if (md.issuer !== issuer) throw new ExchangeError(`exchange: discovery: ${where} names issuer ${JSON.stringify(md.issuer)}, want ${JSON.stringify(issuer)}`, { status: res.status });
    if (typeof md.token_endpoint !== 'string' || !httpURL(md.token_endpoint)) {
      throw new ExchangeError(`exchange: discovery: ${where} has no usable token_endpoint (${JSON.stringify(md.token_endpoint)})`, { status: res.status });
    }
    return md.token_endpoint;
  }

  function origin(u: string | URL): string {
    return new URL(u).origin.toLowerCase();
  }

  // rememberNonce keeps a response's DPoP-Nonce (RFC 9449 §8.2: any answer may
  // carry a new one) and says whether it differs from sent: only then can a retry
  // succeed.
  function rememberNonce(u: string | URL, res: Response, sent: string | undefined): boolean {
    const n = res.headers.get(DPOP_NONCE_HEADER);
    if (!n) return false;
    const o = origin(u);
    if (!nonces.has(o) && nonces.size >= MAX_ORIGINS) nonces.clear();
    nonces.set(o, n);
    return n !== sent;
  }

  // tokenRequest sends one token request of form, with the trace headers trace,
  // and reads its answer; with a DPoP key the request proves it and the answer
  // must be a DPoP token.
  async function tokenRequest(form: URLSearchParams, trace: Record<string, string>): Promise<ExchangedToken> {
    const endpoint = await tokenEndpoint();
    const key = keyPromise ? await keyPromise : undefined;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        authorization: basicAuth(clientId, clientSecret),
        ...trace,
      };
      let nonce: string | undefined;
      if (key) {
        nonce = nonces.get(origin(endpoint));
        headers[DPOP_HEADER] = await createProof({ key, method: 'POST', url: endpoint, nonce });
      }
      const sent = now();
      let res: Response;
      let body: string;
      try {
        res = await doFetch(endpoint, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(timeout) });
        body = await readBody(res);
      } catch (e) {
        throw new ExchangeError(`exchange: token request: ${(e as Error).message}`, { retryable: true, cause: e });
      }
      const fresh = key !== undefined && rememberNonce(endpoint, res, nonce);
      let tok: ExchangedToken;
      try {
        tok = parseTokenResponse(res.status, body, sent);
      } catch (e) {
        if (attempt === 0 && fresh && e instanceof ExchangeError && e.error === 'use_dpop_nonce') continue; // RFC 9449 §8
        throw e;
      }
      if (key && tok.tokenType.toLowerCase() !== 'dpop') {
        throw new ExchangeError(`exchange: deputy answered a DPoP proof with token_type ${JSON.stringify(tok.tokenType)}, not DPoP: the token is not bound`, { status: res.status });
      }
      return tok;
    }
  }

  function lookup(k: string): ExchangedToken | undefined {
    const e = cache.get(k);
    if (!e) return undefined;
    if (now() >= e.refreshAt) {
      cache.delete(k);
      return undefined;
    }
    return copy(e.tok);
  }

  // store caches tok unless it has no expiry or is already due; a full cache drops
  // stale entries, then those due soonest.
  function store(k: string, tok: ExchangedToken): void {
    if (!tok.expiresAt) return;
    const t = now();
    const refreshAt = tok.expiresAt.getTime() - refreshBefore;
    if (t >= refreshAt) return;
    if (!cache.has(k) && cache.size >= maxEntries) {
      for (const [key, e] of cache) if (t >= e.refreshAt) cache.delete(key);
      while (cache.size >= maxEntries) {
        let oldest: string | undefined;
        let at = Infinity;
        for (const [key, e] of cache) {
          if (e.refreshAt < at) { oldest = key; at = e.refreshAt; }
        }
        cache.delete(oldest!);
      }
    }
    cache.set(k, { tok, refreshAt });
  }

  async function exchange(subjectToken: string, audience: string, scopes?: string[] | string, options?: ExchangeOptions): Promise<ExchangedToken> {
    if (!subjectToken) throw new ExchangeError('exchange: empty subject token');
    options?.signal?.throwIfAborted();
    const scope = normalizeScope(scopes);
    const key = keyPromise ? await keyPromise.catch((e: unknown) => {
      throw new ExchangeError(`exchange: config: dpopKey: ${(e as Error).message}`, { cause: e });
    }) : undefined;
    const k = [createHash('sha256').update(subjectToken).digest('base64url'), audience, scope, key?.jkt ?? ''].join('\n');
    const hit = lookup(k);
    if (hit) return hit;
    let f = flights.get(k);
    if (!f) {
      const form = new URLSearchParams({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: TOKEN_TYPE_ACCESS_TOKEN });
      if (audience) form.set('audience', audience);
      if (scope) form.set('scope', scope);
      f = tokenRequest(form, traceHeaders(options?.traceparent, options?.tracestate)).then(
        (tok) => { flights.delete(k); store(k, tok); return tok; },
        (e) => { flights.delete(k); throw e; },
      );
      f.catch(() => {}); // every waiter handles it; none may leave it unhandled
      flights.set(k, f);
    }
    try {
      return copy(await waitFor(f, options?.signal));
    } catch (e) {
      throw e instanceof ExchangeError ? e.clone() : e;
    }
  }

  async function send(input: string | URL, init: RequestInit | undefined, trace: Record<string, string>, tok: ExchangedToken, key: DPoPKey | undefined, nonce?: string): Promise<Response> {
    const headers = new Headers(init?.headers);
    if (!headers.has(TRACEPARENT_HEADER)) { // the caller's own instrumentation wrote one
      for (const [name, value] of Object.entries(trace)) headers.set(name, value);
    }
    if (key) {
      headers.set('authorization', `DPoP ${tok.accessToken}`);
      headers.set(DPOP_HEADER, await createProof({ key, method: init?.method ?? 'GET', url: input, accessToken: tok.accessToken, nonce }));
    } else {
      headers.set('authorization', `Bearer ${tok.accessToken}`);
    }
    return doFetch(input, { ...init, headers });
  }

  async function authorizedFetch(subjectToken: string, audience: string, scopes: string[] | string | undefined, input: string | URL, traced?: ExchangeFetchInit): Promise<Response> {
    let init: RequestInit | undefined = traced;
    let traceparent: string | null | undefined;
    let tracestate: string | null | undefined;
    if (traced) ({ traceparent, tracestate, ...init } = traced);
    const trace = traceHeaders(traceparent, tracestate);
    const tok = await exchange(subjectToken, audience, scopes, { signal: init?.signal ?? undefined, traceparent, tracestate });
    const key = keyPromise ? await keyPromise : undefined;
    const want = key ? 'dpop' : 'bearer';
    if (tok.tokenType.toLowerCase() !== want) {
      throw new ExchangeError(`exchange: token for ${audience} has token_type ${JSON.stringify(tok.tokenType)}, not ${key ? 'DPoP' : 'Bearer'}`);
    }
    const nonce = key ? nonces.get(origin(input)) : undefined;
    const res = await send(input, init, trace, tok, key, nonce);
    if (!key || !rememberNonce(input, res, nonce) || !isNonceChallenge(res)) return res;
    // RFC 9449 §9: the service wants a nonce; ask once more with it, if the body can be sent again.
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof URLSearchParams) &&
        !(body instanceof ArrayBuffer) && !ArrayBuffer.isView(body) && !(body instanceof Blob) && !(body instanceof FormData)) {
      return res;
    }
    await res.body?.cancel();
    const again = await send(input, init, trace, tok, key, nonces.get(origin(input)));
    rememberNonce(input, again, undefined);
    return again;
  }

  return {
    exchange,
    dpopKey: () => (keyPromise ? keyPromise : Promise.resolve(undefined)),
    fetch: authorizedFetch,
  };
}

function copy(t: ExchangedToken): ExchangedToken {
  return { ...t, scopes: [...t.scopes], expiresAt: t.expiresAt && new Date(t.expiresAt.getTime()) };
}

// parseTokenResponse reads a token endpoint answer: a token on 200 (RFC 6749 §5.1,
// RFC 8693 §2.2.1), a protocol error otherwise (RFC 6749 §5.2). sent is when the
// request was sent, from which expires_in counts.
function parseTokenResponse(status: number, body: string, sent: number): ExchangedToken {
  let j: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(body);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    j = v as Record<string, unknown>;
  } catch (e) {
    throw new ExchangeError(`exchange: token endpoint answered ${status} with a body that is not a JSON object: ${(e as Error).message}`, { status, retryable: retryableStatus(status), cause: e });
  }
  if (status !== 200) {
    const code = typeof j.error === 'string' ? j.error : '';
    if (!code) throw new ExchangeError(`exchange: token endpoint answered ${status} with no error code`, { status, retryable: retryableStatus(status) });
    const desc = typeof j.error_description === 'string' ? j.error_description : undefined;
    throw new ExchangeError(`exchange: ${code}${desc ? ': ' + desc : ''}`, { error: code, errorDescription: desc, status, retryable: retryableStatus(status) });
  }
  if (typeof j.access_token !== 'string' || !j.access_token || typeof j.token_type !== 'string' || !j.token_type) {
    throw new ExchangeError('exchange: token response without access_token or token_type', { status });
  }
  const expiresIn = typeof j.expires_in === 'number' && j.expires_in > 0 ? Math.min(j.expires_in, MAX_EXPIRES_IN) : 0;
  return {
    accessToken: j.access_token,
    tokenType: j.token_type,
    issuedTokenType: typeof j.issued_token_type === 'string' ? j.issued_token_type : '',
    scopes: typeof j.scope === 'string' ? j.scope.split(' ').filter((s) => s !== '') : [],
    expiresAt: expiresIn > 0 ? new Date(sent + expiresIn * 1000) : undefined,
  };
}
