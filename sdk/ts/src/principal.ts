// What a verified token says (RFC 9068 §2.2, RFC 8693 §4), parsed once from its
// payload into plain fields: the Go SDK's verify.Principal.

/** One actor of a nested act claim (RFC 8693 §4.1): the outermost is the current actor. */
export interface Actor {
  sub: string;
  act?: Actor;
  [claim: string]: unknown;
}

/** The key a token is bound to (RFC 7800 §3.1): a DPoP key thumbprint or a certificate's. */
export interface Confirmation {
  /** RFC 9449 §6.1: the RFC 7638 SHA-256 thumbprint of the DPoP key. */
  jkt?: string;
  /** RFC 8705 §3.1: the SHA-256 thumbprint of the TLS client certificate. */
  'x5t#S256'?: string;
}

/** A verified token's subject, client, audience, scopes and actor chain. */
export interface Principal {
  subject: string;
  issuer: string;
  /** client_id: the client the token was issued to (the caller). */
  clientId: string;
  audience: string[];
  scopes: string[];
  /** The act chain, current actor first (RFC 8693 §4.1); empty for a token not from an exchange. */
  actors: string[];
  /** The nested act claim as it came. */
  act: Actor | undefined;
  jti: string;
  expiresAt: Date;
  /** All the token's claims. */
  claims: Record<string, unknown>;
  /** The raw token, to pass on to an exchange for the next hop. */
  token: string;
  /** The key the token is bound to; set only when the request proved that key. */
  cnf: Confirmation | undefined;
}

/** Whether p's token grants scope s (exact, case-sensitive). */
export function hasScope(p: Principal | undefined, s: string): boolean {
  return p !== undefined && p.scopes.includes(s);
}

/** The claims the verifier checks, typed. */
export interface Claims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number | undefined;
  nbf: number | undefined;
  iat: number | undefined;
  jti: string;
  clientId: string;
  scope: string;
  act: Actor | undefined;
  cnf: Confirmation | undefined;
  all: Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * parseClaims reads a payload. Each claim is read under its exact name; a claim of
 * the wrong JSON type is an error (message for logs).
 */
export function parseClaims(payload: Uint8Array): Claims {
  const all: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  if (!isObject(all)) throw new Error('payload is not a JSON object');
  const str = (name: string): string => {
    const v = all[name];
    if (v === undefined) return '';
    if (typeof v !== 'string') throw new Error(`claim ${name}: not a string`);
    return v;
  };
  const num = (name: string): number | undefined => {
    const v = all[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`claim ${name}: not a number`);
    return v;
  };
  let aud: string[] = [];
  const a = all['aud'];
  if (typeof a === 'string') aud = [a];
  else if (Array.isArray(a) && a.every((x) => typeof x === 'string')) aud = a as string[];
  else if (a !== undefined && a !== null) throw new Error('claim aud: not a string or an array of strings');
  let act: Actor | undefined;
  if (all['act'] !== undefined && all['act'] !== null) act = parseActor(all['act']);
  let cnf: Confirmation | undefined;
  if (all['cnf'] !== undefined && all['cnf'] !== null) cnf = parseConfirmation(all['cnf']);
  return {
    iss: str('iss'), sub: str('sub'), aud, exp: num('exp'), nbf: num('nbf'), iat: num('iat'),
    jti: str('jti'), clientId: str('client_id'), scope: str('scope'), act, cnf, all,
  };
}

function parseActor(v: unknown): Actor {
  if (!isObject(v)) throw new Error('claim act: not an object');
  if (v['sub'] !== undefined && typeof v['sub'] !== 'string') throw new Error('claim act: sub is not a string');
  const a: Actor = { ...v, sub: (v['sub'] as string | undefined) ?? '' };
  if (v['act'] !== undefined && v['act'] !== null) a.act = parseActor(v['act']);
  else delete a.act;
  return a;
}

/**
 * parseConfirmation reads a cnf claim (RFC 7800 §3.1). It must name exactly one key
 * the verifier can check — jkt or x5t#S256 — so that a token bound another way is
 * never taken for a bearer token.
 */
export function parseConfirmation(v: unknown): Confirmation {
  if (!isObject(v)) throw new Error('claim cnf: not a JSON object');
  const c: Confirmation = {};
  for (const [name, value] of Object.entries(v)) {
    if (name !== 'jkt' && name !== 'x5t#S256') throw new Error(`claim cnf: member "${name}" names a key this service cannot check`);
    if (typeof value !== 'string' || value === '') throw new Error(`claim cnf: member "${name}" is not a thumbprint`);
    c[name] = value;
  }
  if ((c.jkt === undefined) === (c['x5t#S256'] === undefined)) throw new Error('claim cnf: names no key or two keys');
  return c;
}

/** The act chain as a list, current actor first. */
export function actorChain(act: Actor | undefined): string[] {
  const out: string[] = [];
  for (let a = act; a !== undefined; a = a.act) out.push(a.sub);
  return out;
}

export function principalOf(c: Claims, token: string): Principal {
  return {
    subject: c.sub,
    issuer: c.iss,
    clientId: c.clientId,
    audience: c.aud,
    scopes: c.scope.split(/[ \t\r\n]+/).filter((s) => s !== ''),
    actors: actorChain(c.act),
    act: c.act,
    jti: c.jti,
    expiresAt: new Date((c.exp ?? 0) * 1000),
    claims: c.all,
    token,
    cnf: c.cnf,
  };
}
