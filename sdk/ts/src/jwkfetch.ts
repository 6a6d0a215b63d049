// deputy's signing keys as a Node service fetches them, the port of the Go SDK's
// sdk/jwkfetch: the one key cache of this SDK, behind both the access token
// verifier (verify.ts) and the transaction token verifier (txn.ts), which share one
// when made with Verifier.txn.
//
// deputy's metadata (RFC 8414 §3) is fetched on first use, then its JWKS (RFC 7517
// §5). The set is kept for its Cache-Control max-age clamped to [1m, 24h] (5m when
// it says nothing), fetched again on an unknown kid at most once per 30 s, whatever
// forced the fetch, and past its max-age not used (fail closed: lookups fail as
// unavailable until a fetch succeeds). One fetch runs at a time. verifySignature
// is the signature check both verifiers make with it.
import { compactVerify, errors as joseErrors, importJWK, type JWK } from 'jose';
import { keyFits } from './dpop-check.js';
import { WELL_KNOWN, type FetchLike } from './exchange.js';

/** The least time between two fetches of the same document (ms): Go's jwkfetch.DefaultMinInterval. */
/** The largest token read, in bytes (Go's verify.MaxTokenBytes); longer ones are refused before any parsing. */
export const MAX_TOKEN_BYTES = 16 << 10;

/**
 * The algorithms a token may be signed with (RFC 7518 §3.1): those deputy signs
 * with, and ES384, as the Go SDK. Never none, never an HMAC.
 */
export const TOKEN_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'] as const;

/**
 * JOSE header parameters that point at or carry a key (RFC 7515 §4.1.2-4.1.6),
 * declare extensions (§4.1.11) or leave the payload unencoded (RFC 7797): a
 * token's key is deputy's, named by kid in deputy's JWKS, and nothing else.
 */
export const REFUSED_HEADERS: readonly string[] = ['jku', 'jwk', 'x5u', 'x5c', 'crit', 'b64'];

export const REFETCH_INTERVAL_MS = 30_000;
/** Bounds of a JWKS's lifetime (ms). */
export const KEYS_MAX_AGE = { min: 60_000, max: 24 * 3600_000, default: 5 * 60_000 };
/** Bound of one fetch of the metadata or the JWKS (ms), unless the caller sets one. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
const MAX_DOCUMENT_BYTES = 1 << 20;

/**
 * Why a token's signature could not be checked or was refused; each verifier
 * turns it into its own error (VerifyError, TxnError). unavailable: deputy's keys
 * cannot be had now (no set fetched, the cached one expired, the metadata or JWKS
 * unreachable or refused) — 503; otherwise the token's fault — 401. message is
 * what the client is told; cause is what went wrong underneath, for logs only.
 */
export class SignatureError extends Error {
  readonly unavailable: boolean;
  constructor(unavailable: boolean, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SignatureError';
    this.unavailable = unavailable;
  }
}

/** absoluteHTTP: u is an absolute http(s) URL with a host. */
export function absoluteHTTP(u: string): boolean {
  try {
    const p = new URL(u);
    return (p.protocol === 'http:' || p.protocol === 'https:') && p.hostname !== '';
  } catch {
    return false;
  }
}

/** fetchDocument GETs a JSON document with a bounded time and size; anything but 200 is an error. */
async function fetchDocument(fetchFn: FetchLike, url: string, timeout: number): Promise<{ body: unknown; cacheControl: string }> {
  let r: Response;
  try {
    r = await fetchFn(url, {
      headers: { accept: 'application/json, application/jwk-set+json' },
      signal: AbortSignal.timeout(timeout),
    });
  } catch (e) {
    throw new Error(`GET ${url}: ${(e as Error).message}`, { cause: e }); // which document, for the logs
  }
  if (r.status !== 200) {
    await r.body?.cancel();
    throw new Error(`GET ${url}: HTTP ${r.status}`);
  }
  // Read at most MAX_DOCUMENT_BYTES, whatever Content-Length says.
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (r.body) {
    const reader = r.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_DOCUMENT_BYTES) {
        await reader.cancel();
        throw new Error(`GET ${url}: response larger than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      chunks.push(value);
    }
  }
  const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  return { body: JSON.parse(text), cacheControl: r.headers.get('cache-control') ?? '' };
}

/** The members of deputy's metadata (RFC 8414 §2) the SDK reads. */
export interface Metadata {
  issuer?: string;
  jwks_uri?: string;
  introspection_endpoint?: string;
}

/**
 * Discovery fetches deputy's metadata (RFC 8414 §3) once and keeps it; a failed
 * fetch is not retried within REFETCH_INTERVAL_MS. One fetch at a time.
 */
class Discovery {
  private doc: Metadata | undefined;
  private lastTry = -Infinity;
  private lastErr: unknown;
  private inflight: Promise<void> | undefined;
  private readonly url: string;

  constructor(private readonly issuer: string, private readonly fetchFn: FetchLike, private readonly timeout: number) {
    this.url = issuer.replace(/\/$/, '') + WELL_KNOWN;
  }

  async get(now: number): Promise<Metadata> {
    for (let waited = false; ; waited = true) {
      if (this.doc) return this.doc;
      const recent = now - this.lastTry < REFETCH_INTERVAL_MS;
      if (waited || (!this.inflight && recent)) throw this.lastErr;
      if (!this.inflight) {
        this.lastTry = now;
        this.inflight = this.refresh().finally(() => { this.inflight = undefined; });
      }
      await this.inflight;
    }
  }

  private async refresh(): Promise<void> {
    try {
      const { body } = await fetchDocument(this.fetchFn, this.url, this.timeout);
      const m = body as Metadata;
      if (typeof m !== 'object' || m === null) throw new Error(`metadata ${this.url}: not an object`);
      // RFC 8414 §3.3: the issuer in the document must be the one asked.
      if (m.issuer !== this.issuer) throw new Error(`metadata ${this.url}: issuer ${JSON.stringify(m.issuer)}, want ${this.issuer}`);
      for (const name of ['jwks_uri', 'introspection_endpoint'] as const) {
        const u = m[name];
        if (u !== undefined && (typeof u !== 'string' || !absoluteHTTP(u))) throw new Error(`metadata ${this.url}: ${name} is not an absolute http(s) URL`);
      }
      this.doc = m;
      this.lastErr = undefined;
    } catch (e) {
      this.lastErr = e;
    }
  }
}

/** keysMaxAge is how long a JWKS served with this Cache-Control is kept (ms), the Go SDK's jwkfetch.MaxAge. */
export function keysMaxAge(cacheControl: string, b = KEYS_MAX_AGE): number {
  let d = b.default;
  for (const dir of cacheControl.split(',')) {
    const [rawName, ...rest] = dir.trim().split('=');
    const name = (rawName ?? '').trim().toLowerCase();
    if (name === 'no-cache' || name === 'no-store') return b.min;
    if (name === 'max-age') {
      const v = rest.join('=').trim().replace(/^"|"$/g, '');
      if (!/^[0-9]+$/.test(v)) continue;
      d = Math.min(Number(v) * 1000, b.max);
    }
  }
  return Math.min(Math.max(d, b.min), b.max);
}

/**
 * parseKeySet reads a JWKS (RFC 7517 §5) as the Go SDK does (jwk.Parse): it keeps
 * public signing keys with a kid, skips encryption keys and key types it does not
 * know, and refuses the whole set when it carries private or symmetric key
 * material, an invalid key or one kid twice, and a set without any usable key.
 */
export async function parseKeySet(doc: unknown): Promise<Map<string, JWK>> {
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('not a JSON Web Key Set');
  const out = new Map<string, JWK>();
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) throw new Error(`keys[${i}]: not an object`);
    const jwk = k as JWK;
    if (jwk.d !== undefined || jwk.k !== undefined || String(jwk.kty).toLowerCase() === 'oct') {
      throw new Error(`keys[${i}]: private or symmetric key material in a public key set`);
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    const alg = canonicalAlg(jwk);
    if (alg === undefined) continue; // a key type no token can use
    try {
      await importJWK(jwk, alg);
    } catch {
      throw new Error(`keys[${i}]: not a valid public key`);
    }
    if (typeof jwk.kid !== 'string' || jwk.kid === '') continue; // tokens must name their key
    if (out.has(jwk.kid)) throw new Error(`keys[${i}]: kid ${JSON.stringify(jwk.kid)} appears twice`);
    out.set(jwk.kid, jwk);
  }
  if (out.size === 0) throw new Error('no usable public signing key in the set');
  return out;
}

function canonicalAlg(k: JWK): string | undefined {
  switch (k.kty) {
    case 'RSA':
      return k.alg !== undefined && ['RS256', 'PS256', 'RS384', 'RS512', 'PS384', 'PS512'].includes(k.alg) ? k.alg : 'RS256';
    case 'EC':
      return ({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[String(k.crv)];
    case 'OKP':
      return k.crv === 'Ed25519' ? 'EdDSA' : undefined;
  }
  return undefined;
}

/** Where deputy's keys are and how to fetch them. */
export interface KeySourceOptions {
  /** deputy's issuer URL; the JWKS's URL is its metadata's jwks_uri unless jwksUri is set. */
  issuer: string;
  /** deputy's JWKS URL; when set, no discovery is made. */
  jwksUri?: string;
  fetch: FetchLike;
  /** Bound of one fetch (ms); default DEFAULT_FETCH_TIMEOUT_MS. */
  timeout?: number;
}

/**
 * KeySource is deputy's JWKS (the Go SDK's jwkfetch.Cache with its discovery):
 * fetched on first use, kept for its max-age, fetched again when a kid is unknown
 * — never more than once per REFETCH_INTERVAL_MS, whatever forced it — and one
 * fetch at a time; lookups of known kids never wait for it. Past its max-age a set
 * is not used: lookups fail as unavailable until a fetch succeeds. Every verifier
 * that holds the same KeySource sees the same set: a kid one fetched is known to
 * all.
 */
export class KeySource {
  private set: Map<string, JWK> | undefined;
  private expires = 0;
  private lastFetch = -Infinity;
  private lastErr: unknown;
  private inflight: Promise<void> | undefined;
  private readonly fetchFn: FetchLike;
  private readonly timeout: number;
  private readonly url: (now: number) => Promise<string>;
  private readonly meta: Discovery;

  constructor(o: KeySourceOptions) {
    this.fetchFn = o.fetch;
    this.timeout = o.timeout ?? DEFAULT_FETCH_TIMEOUT_MS;
    const jwksUri = o.jwksUri;
    const meta = (this.meta = new Discovery(o.issuer, o.fetch, this.timeout));
    this.url = async (now) => {
      if (jwksUri !== undefined) return jwksUri;
      const m = await meta.get(now);
      if (!m.jwks_uri) throw new Error("deputy's metadata has no jwks_uri");
      return m.jwks_uri;
    };
  }

  /** deputy's metadata, fetched once (and at most every REFETCH_INTERVAL_MS while it fails) for every user of this source. */
  metadata(now: number): Promise<Metadata> {
    return this.meta.get(now);
  }

  /**
   * lookup returns deputy's public key named kid at time now (ms), fetching the
   * set when none is cached, when the cached one has expired, or when kid is
   * unknown and the last fetch is at least REFETCH_INTERVAL_MS old. It throws a
   * SignatureError otherwise.
   */
  async lookup(kid: string, now: number): Promise<JWK> {
    for (let waited = false; ; waited = true) {
      const valid = this.set !== undefined && now < this.expires;
      if (valid) {
        const k = this.set!.get(kid);
        if (k) return k;
      }
      // A now before the last fetch (stamped before it waited) counts as recent.
      const recent = now - this.lastFetch < REFETCH_INTERVAL_MS;
      if (waited || (!this.inflight && recent)) throw this.miss(valid, waited);
      if (!this.inflight) {
        this.lastFetch = now;
        this.inflight = this.refresh(now).finally(() => { this.inflight = undefined; });
      }
      await this.inflight;
    }
  }

  private miss(valid: boolean, waited: boolean): SignatureError {
    if (!valid && this.lastErr !== undefined) return new SignatureError(true, "deputy's signing keys cannot be fetched", this.lastErr);
    if (!valid) return new SignatureError(true, "deputy's signing keys cannot be fetched", new Error('the cached key set has expired'));
    return new SignatureError(false, 'token is signed with a key deputy does not publish',
      waited && this.lastErr !== undefined ? this.lastErr : undefined);
  }

  private async refresh(started: number): Promise<void> {
    try {
      const url = await this.url(started);
      const { body, cacheControl } = await fetchDocument(this.fetchFn, url, this.timeout);
      const set = await parseKeySet(body);
      this.set = set;
      this.expires = started + keysMaxAge(cacheControl);
      this.lastErr = undefined;
    } catch (e) {
      this.lastErr = e;
    }
  }
}

// Imported keys, by JWK object (a key set's are immutable) and alg: importing
// is not free, and a service verifies with the same few keys all day.
const imported = new WeakMap<JWK, Map<string, Promise<Awaited<ReturnType<typeof importJWK>>>>>();

/** importKey is jose's importJWK of jwk for alg, done once per key and alg. */
function importKey(jwk: JWK, alg: string) {
  let byAlg = imported.get(jwk);
  if (!byAlg) imported.set(jwk, (byAlg = new Map()));
  let k = byAlg.get(alg);
  if (!k) {
    k = importJWK(jwk, alg);
    k.catch(() => byAlg.delete(alg));
    byAlg.set(alg, k);
  }
  return k;
}

/**
 * verifySignature checks the compact JWS raw, whose protected header names alg
 * (already in the caller's allow-list) and kid, with deputy's key kid, and returns
 * its payload: the key is looked up in keys at time now, must fit alg (kty, curve,
 * RSA size; keyFits) and must verify the signature. It throws a SignatureError.
 */
export async function verifySignature(keys: KeySource, raw: string, alg: string, kid: string, now: number): Promise<Uint8Array> {
  const jwk = await keys.lookup(kid, now);
  const misfit = keyFits(jwk, alg);
  if (misfit !== undefined) throw new SignatureError(false, 'token algorithm does not match its key', new Error(misfit));
  let key;
  try {
    key = await importKey(jwk, alg);
  } catch (e) {
    throw new SignatureError(false, 'token algorithm does not match its key', e);
  }
  try {
    const { payload } = await compactVerify(raw, key, { algorithms: [alg] });
    return payload;
  } catch (e) {
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new SignatureError(false, 'token signature is invalid', e);
    throw new SignatureError(false, 'token is malformed', e);
  }
}
