// Introspection mode (RFC 7662): a token that passed the offline checks is also
// shown to deputy, which says whether it is still active — a revoked token is
// refused at once instead of at its exp. The Go SDK's verify introspector.
import { basicAuth, formEncode, readLimited, type FetchLike } from './exchange.js';
import { invalidToken, unavailable } from './errors.js';
import type { KeySource } from './jwkfetch.js';

export interface IntrospectorOptions {
  /** deputy's introspection endpoint; else its metadata's introspection_endpoint. */
  url?: string;
  keys: KeySource;
  fetch: FetchLike;
  clientId: string;
  clientSecret: string;
  timeout: number;
}

const MAX_ANSWER = 1 << 20;

/** Introspector asks deputy whether a token is still active. */
export class Introspector {
  constructor(private readonly o: IntrospectorOptions) {}

  /**
   * check posts raw to the introspection endpoint with the service's client
   * credentials (client_secret_basic). An inactive token is invalid_token; a
   * failure to get an answer is 503 temporarily_unavailable, never a pass.
   */
  async check(raw: string, now: number): Promise<void> {
    let url: string;
    try {
      url = this.o.url ?? await this.endpoint(now);
    } catch (e) {
      throw unavailable("deputy's introspection endpoint is unknown", e);
    }
    let active: unknown;
    try {
      const r = await this.o.fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          authorization: basicAuth(this.o.clientId, this.o.clientSecret),
        },
        body: `token=${formEncode(raw)}&token_type_hint=access_token`,
        signal: AbortSignal.timeout(this.o.timeout),
        redirect: 'error',
      });
      const text = await readLimited(r, MAX_ANSWER);
      if (r.status !== 200) throw new Error(`POST ${url}: HTTP ${r.status}`);
      const body: unknown = JSON.parse(text);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error(`POST ${url}: not a JSON object`);
      active = (body as Record<string, unknown>)['active'];
      if (typeof active !== 'boolean') throw new Error(`POST ${url}: no boolean active member`);
    } catch (e) {
      throw unavailable("deputy's introspection endpoint cannot be used", e);
    }
    if (!active) throw invalidToken('token is revoked or inactive');
  }

  private async endpoint(now: number): Promise<string> {
    const m = await this.o.keys.metadata(now);
    if (!m.introspection_endpoint) throw new Error("deputy's metadata has no introspection_endpoint");
    return m.introspection_endpoint;
  }
}
