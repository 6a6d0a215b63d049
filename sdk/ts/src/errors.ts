// The one error type of the verify side: what a client reads (code, description,
// status, the WWW-Authenticate challenge) is kept apart from the cause, which is
// for logs only and never serialised. Codes and statuses are those of the Go SDK
// (sdk/verify): RFC 6750 §3.1, RFC 9449 §7.1 and §12.2.

/** The error codes a verifier answers with. */
export type VerifyErrorCode =
  | 'invalid_request' // no usable Authorization header (RFC 6750 §3.1)
  | 'invalid_token' // RFC 6750 §3.1
  | 'insufficient_scope' // RFC 6750 §3.1
  | 'invalid_dpop_proof' // RFC 9449 §7.1
  | 'use_dpop_nonce' // RFC 9449 §9
  | 'temporarily_unavailable'; // deputy's keys cannot be had now

/** The algorithms a DPoP proof may be signed with (RFC 9449 §4.2; the Go SDK's dpop.Algorithms). */
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;

const statusOf: Record<VerifyErrorCode, number> = {
  invalid_request: 401,
  invalid_token: 401,
  insufficient_scope: 403,
  invalid_dpop_proof: 401,
  use_dpop_nonce: 401,
  temporarily_unavailable: 503,
};

export interface VerifyErrorOptions {
  /** The challenge scheme: DPoP for DPoP requests, bound tokens and bad proofs (RFC 9449 §7.1). */
  scheme?: 'Bearer' | 'DPoP';
  /** The realm of a challenge without credentials: the verifier's audience. */
  realm?: string;
  /** The scopes a refused request required (insufficient_scope). */
  scopes?: string[];
  /** Without credentials, whether a Bearer challenge is offered besides DPoP (false with requireBinding). */
  offerBearer?: boolean;
  /** With use_dpop_nonce, a fresh nonce to send in the DPoP-Nonce header (RFC 9449 §9). */
  dpopNonce?: string;
  /** What went wrong in detail, for logs; never sent to the client. */
  cause?: unknown;
}

/**
 * A refused token or request. `code`, `description` and `status` are what the
 * client is told; `challenges()` are the WWW-Authenticate values (RFC 6750 §3,
 * RFC 9449 §7.1). The description never contains the token.
 */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  readonly description: string;
  readonly status: number;
  readonly scheme: 'Bearer' | 'DPoP';
  readonly realm: string | undefined;
  readonly scopes: string[];
  readonly offerBearer: boolean;
  /** A fresh server nonce for the DPoP-Nonce header of the answer (use_dpop_nonce), else undefined. */
  readonly dpopNonce: string | undefined;

  constructor(code: VerifyErrorCode, description: string, opts: VerifyErrorOptions = {}) {
    super(`${code}: ${description}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VerifyError';
    this.code = code;
    this.description = description;
    this.status = statusOf[code];
    this.scheme = opts.scheme ?? (code === 'invalid_dpop_proof' || code === 'use_dpop_nonce' ? 'DPoP' : 'Bearer');
    this.realm = opts.realm;
    this.scopes = opts.scopes ? [...opts.scopes] : [];
    this.offerBearer = opts.offerBearer ?? true;
    this.dpopNonce = opts.dpopNonce;
  }

  /** The headers of the answer besides its body: WWW-Authenticate (when there are challenges) and DPoP-Nonce. */
  headers(): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = {};
    const challenges = this.challenges();
    if (challenges.length > 0) h['WWW-Authenticate'] = challenges;
    if (this.dpopNonce !== undefined) h['DPoP-Nonce'] = this.dpopNonce;
    return h;
  }

  /**
   * The WWW-Authenticate challenges, one per header value, as the Go SDK writes them:
   * without credentials `Bearer realm="…"` and `DPoP realm="…", algs="…"` (no error
   * code, RFC 6750 §3.1); a DPoP challenge with error, error_description and algs;
   * `Bearer error="insufficient_scope", scope="…"`; `Bearer error="invalid_token",
   * error_description="…"`; none for 503.
   */
  challenges(): string[] {
    const algs = `algs="${DPOP_ALGORITHMS.join(' ')}"`;
    switch (this.code) {
      case 'invalid_request': {
        const realm = `realm="${quotable(this.realm ?? '')}"`;
        const dpop = `DPoP ${realm}, ${algs}`;
        return this.offerBearer ? [`Bearer ${realm}`, dpop] : [dpop];
      }
      case 'temporarily_unavailable':
        return [];
      case 'insufficient_scope':
        return [`Bearer error="insufficient_scope", scope="${quotable(this.scopes.join(' '))}"`];
    }
    if (this.scheme === 'DPoP') {
      return [`DPoP error="${this.code}", error_description="${quotable(this.description)}", ${algs}`];
    }
    return [`Bearer error="${this.code}", error_description="${quotable(this.description)}"`];
  }

  /** The WWW-Authenticate header value: the challenges joined (RFC 9110 §11.6.1), or '' for none. */
  wwwAuthenticate(): string {
    return this.challenges().join(', ');
  }

  /** The JSON body of the answer: {error, error_description} only. */
  toJSON(): { error: VerifyErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description };
  }

  /** This error with another scheme, realm or required scopes (a fresh value). */
  with(opts: VerifyErrorOptions): VerifyError {
    return new VerifyError(this.code, this.description, {
      scheme: opts.scheme ?? this.scheme,
      realm: opts.realm ?? this.realm,
      scopes: opts.scopes ?? this.scopes,
      offerBearer: opts.offerBearer ?? this.offerBearer,
      dpopNonce: opts.dpopNonce ?? this.dpopNonce,
      cause: this.cause,
    });
  }
}

/** Keeps only what RFC 6750 §3 allows in a quoted value: %x20-21 / %x23-5B / %x5D-7E. */
export function quotable(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x20 && c <= 0x7e && ch !== '"' && ch !== '\\') out += ch;
  }
  return out;
}

// Constructors: a fresh error each time, so no shared value is mutated.

export function invalidToken(description: string, cause?: unknown): VerifyError {
  return new VerifyError('invalid_token', description, { cause });
}

export function invalidProof(description: string, cause?: unknown): VerifyError {
  return new VerifyError('invalid_dpop_proof', description, { scheme: 'DPoP', cause });
}

export function insufficientScope(scopes: string[]): VerifyError {
  return new VerifyError('insufficient_scope', 'token lacks a required scope', { scopes });
}

export function useNonce(dpopNonce: string | undefined, cause?: unknown): VerifyError {
  return new VerifyError('use_dpop_nonce', 'DPoP proof must carry the nonce in DPoP-Nonce', { scheme: 'DPoP', dpopNonce, cause });
}

export function unavailable(description: string, cause?: unknown): VerifyError {
  return new VerifyError('temporarily_unavailable', description, { cause });
}

export function noCredentials(description: string): VerifyError {
  return new VerifyError('invalid_request', description);
}

/** err answered with a DPoP challenge when it is invalid_token; others (503) unchanged. */
export function dpopChallenge(err: unknown): unknown {
  if (err instanceof VerifyError && err.code === 'invalid_token') return err.with({ scheme: 'DPoP' });
  return err;
}
