// The verify side against a real deputy: tokens deputy issues verify (client
// credentials, one and two hops of token exchange, every signing algorithm), and
// each bad input of the Go SDK's table (sdk/verify verify_test.go, keys_test.go) is
// refused with the code and description class sdk/verify gives it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { generateKeyPair, exportJWK, exportSPKI, importJWK, CompactSign, base64url } from 'jose';
import { startDeputy, clientCredentials, deputyBinary, rejects } from './deputy.mjs';
import { createVerifier, keysMaxAge } from '../dist/verify.js';
import { hasScope } from '../dist/principal.js';

const api1 = 'https://api1.example';
const api2 = 'https://api2.example';
const api3 = 'https://api3.example';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

// chainConfig is the Go tests' development setup, cut to what these tests use:
// web-app calls api1, api1 exchanges for api2, api2 for api3.
function chainConfig(signingAlgorithm = 'ES256') {
  const api = (n, scopes) => ({
    id: `api${n}`, secret: `api${n}-secret`, grant_types: ['client_credentials', TOKEN_EXCHANGE],
    scopes, audiences: [`https://api${n}.example`],
  });
  return {
    signing: { algorithm: signingAlgorithm },
    audiences: [
      { id: api1, scopes: ['payments:read', 'payments:write'], client: 'api1' },
      { id: api2, scopes: ['ledger:read', 'ledger:write', 'fraud:check'], client: 'api2' },
      { id: api3, scopes: ['fraud:check'], client: 'api3' },
    ],
    clients: [
      { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
        scopes: ['payments:read', 'payments:write', 'ledger:read', 'fraud:check'], audiences: [api1] },
      api('1', ['payments:read', 'payments:write']),
      api('2', ['ledger:read', 'ledger:write']),
      api('3', ['fraud:check']),
    ],
    exchange: {
      policies: [
        { name: 'api1-to-api2', client: 'api1', audiences: [api2], scopes: ['ledger:read', 'ledger:write', 'fraud:check'],
          requested_token_types: ['access_token', 'jwt'] },
        { name: 'api2-to-api3', client: 'api2', audiences: [api3], scopes: ['fraud:check'] },
      ],
    },
  };
}

// exchange has client id (secret id-secret) exchange subject for a token for
// audience (RFC 8693 §2.1).
async function exchange(d, id, subject, audience, scope, requested) {
  const form = { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, audience };
  if (scope) form.scope = scope;
  if (requested) form.requested_token_type = requested;
  const t = await clientCredentials(d, id, `${id}-secret`, form);
  return t.access_token;
}

// counting wraps fetch and counts requests by path.
function counting(down = () => false) {
  const counts = new Map();
  const f = async (url, init) => {
    const path = new URL(url).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    if (down()) throw new TypeError('test fetch: network is down');
    return fetch(url, init);
  };
  return { fetch: f, count: (p) => counts.get(p) ?? 0 };
}

// clock is a now() a test moves by hand.
function clock() {
  let t = Date.now();
  return { now: () => t, add: (ms) => { t += ms; } };
}

const METADATA = '/.well-known/oauth-authorization-server';

function segments(raw) {
  const [h, p] = raw.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

const enc = (v) => base64url.encode(typeof v === 'string' ? v : JSON.stringify(v));

// compact assembles a JWS by hand from a header, a payload and signature bytes.
function compact(header, payload, sig = new Uint8Array()) {
  return `${enc(header)}.${typeof payload === 'string' ? payload : enc(payload)}.${base64url.encode(sig)}`;
}

// localKeys is a key set served on 127.0.0.1 that a verifier may be pointed at
// (jwksUri): a token signed with it is correctly signed yet wrong in one chosen way
// (the Go tests sign with deputy's own key; this package cannot reach it).
async function localKeys() {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'local-key', alg: 'ES256', use: 'sig' };
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    jwk,
    url: `http://127.0.0.1:${server.address().port}/jwks`,
    // sign signs claims with any protected header; ES256 signature by WebCrypto.
    async sign(claims, header = {}) {
      const h = { alg: 'ES256', kid: 'local-key', typ: 'at+jwt', ...header };
      for (const [k, v] of Object.entries(h)) if (v === undefined) delete h[k];
      const input = `${enc(h)}.${enc(claims)}`;
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, new TextEncoder().encode(input));
      return `${input}.${base64url.encode(new Uint8Array(sig))}`;
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

function randomID() {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(12)));
}

// claimsFor are claims like those deputy puts in web-app's token for api1.
function claimsFor(issuer, nowMs = Date.now()) {
  const now = Math.floor(nowMs / 1000);
  return { iss: issuer, sub: 'web-app', aud: api1, client_id: 'web-app', scope: 'payments:read',
    jti: randomID(), iat: now, nbf: now, exp: now + 300 };
}

function closedURL() {
  return new Promise((ok) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const u = `http://127.0.0.1:${s.address().port}`;
      s.close(() => ok(u));
    });
  });
}


let d;
let local;
let cc; // web-app's client-credentials token for api1
before(async () => {
  d = await startDeputy(chainConfig());
  local = await localKeys();
  cc = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read fraud:check' })).access_token;
});
after(async () => {
  await d?.stop();
  await local?.close();
});

test('verify accepts deputy tokens and says who acts for whom', async (t) => {
  const hop1 = await exchange(d, 'api1', cc, api2, 'ledger:read fraud:check');
  const hop2 = await exchange(d, 'api2', hop1, api3, 'fraud:check');
  const cases = [
    { name: 'ok/client-credentials', token: cc, audience: api1, client: 'web-app',
      scopes: ['payments:read', 'ledger:read', 'fraud:check'], actors: [] },
    { name: 'ok/exchange-one-hop', token: hop1, audience: api2, client: 'api1',
      scopes: ['ledger:read', 'fraud:check'], actors: ['api1'] },
    { name: 'ok/exchange-two-hops', token: hop2, audience: api3, client: 'api2',
      scopes: ['fraud:check'], actors: ['api2', 'api1'] },
    { name: 'ok/expired-within-leeway', token: cc, audience: api1, client: 'web-app', leeway: 60,
      advance: (5 * 60 + 50) * 1000, scopes: ['payments:read', 'ledger:read', 'fraud:check'], actors: [] },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const clk = clock();
      const v = createVerifier({ issuer: d.issuer, audience: c.audience, leeway: c.leeway, now: clk.now });
      clk.add(c.advance ?? 0);
      const p = await v.verify(c.token, { scopes: c.scopes.slice(0, 1) });
      assert.equal(p.subject, 'web-app');
      assert.equal(p.issuer, d.issuer);
      assert.equal(p.clientId, c.client);
      assert.ok(p.audience.includes(c.audience));
      assert.deepEqual([...p.scopes].sort(), [...c.scopes].sort());
      assert.deepEqual(p.actors, c.actors);
      assert.equal(p.act?.sub, c.actors[0]);
      assert.equal(p.act?.act?.sub, c.actors[1]);
      assert.equal(p.jti, p.claims.jti);
      assert.ok(p.jti);
      assert.equal(p.expiresAt.getTime(), p.claims.exp * 1000);
      assert.equal(p.token, c.token);
      assert.equal(p.cnf, undefined);
      assert.ok(hasScope(p, c.scopes[0]) && !hasScope(p, 'payments:admin') && !hasScope(undefined, c.scopes[0]));
    });
  }
});

test('verify accepts tokens of every algorithm deputy signs with', async (t) => {
  for (const alg of ['EdDSA', 'RS256', 'PS256']) {
    await t.test(`ok/${alg}`, async () => {
      const other = await startDeputy(chainConfig(alg));
      try {
        const raw = (await clientCredentials(other, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
        assert.equal(segments(raw).header.alg, alg);
        const p = await createVerifier({ issuer: other.issuer, audience: api1 }).verify(raw);
        assert.equal(p.subject, 'web-app');
        // A token of this deputy is not one of the other's.
        await rejects(createVerifier({ issuer: d.issuer, audience: api1 }).verify(raw), 'invalid_token', 401, '');
      } finally {
        await other.stop();
      }
    });
  }
});

test('verify accepts the typ and aud forms RFC 9068 allows', async (t) => {
  const good = () => claimsFor(d.issuer);
  for (const c of [
    { name: 'ok/typ-media-type', token: () => local.sign(good(), { typ: 'application/at+jwt' }) },
    { name: 'ok/typ-upper-case', token: () => local.sign(good(), { typ: 'AT+JWT' }) },
    { name: 'ok/aud-array', audience: api2, token: () => local.sign({ ...good(), aud: [api1, api2] }) },
  ]) {
    await t.test(c.name, async () => {
      const v = createVerifier({ issuer: d.issuer, audience: c.audience ?? api1, jwksUri: local.url });
      const p = await v.verify(await c.token());
      assert.equal(p.subject, 'web-app');
    });
  }
});

test('verify refuses each bad token with invalid_token', async (t) => {
  const { header: hdr, payload } = segments(cc);
  const kid = hdr.kid;
  const payloadSegment = cc.split('.')[1];
  const good = () => claimsFor(d.issuer);
  const jwks = await (await fetch(`${d.issuer}/jwks`)).json();
  const deputyJWK = jwks.keys.find((k) => k.kid === kid);
  assert.ok(deputyJWK, 'deputy publishes the key of its token');
  const der = Buffer.from((await exportSPKI(await importJWK(deputyJWK, 'ES256', { extractable: true })))
    .replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const deputyKeys = { issuer: d.issuer }; // the real discovery and JWKS
  const localSigned = { issuer: d.issuer, jwksUri: local.url };
  const exchangedJWT = await exchange(d, 'api1', cc, api2, 'ledger:read', JWT_TYPE);
  assert.equal(segments(exchangedJWT).header.typ, 'JWT');

  const cases = [
    { name: 'fail/empty', want: 'empty', token: async () => '' },
    { name: 'fail/not-compact', want: 'not a compact JWS', token: async () => 'a.b.c.d.e' },
    { name: 'fail/json-serialization', want: 'not a compact JWS', token: async () => '{"payload":"e30","signatures":[]}' },
    { name: 'fail/oversized', want: 'too large', token: () => local.sign({ ...good(), pad: 'x'.repeat(16 << 10) }) },
    { name: 'fail/wrong-audience', audience: api2, want: 'not for this audience', token: async () => cc },
    { name: 'fail/expired', advance: (5 * 60 + 31) * 1000, want: 'expired', token: async () => cc },
    { name: 'fail/tampered-payload', want: 'signature is invalid', token: async () => {
      const parts = cc.split('.');
      parts[1] = enc({ ...payload, scope: 'payments:read payments:write' });
      return parts.join('.');
    } },
    { name: 'fail/bad-signature', want: 'signature is invalid', token: async () => {
      const parts = cc.split('.');
      const sig = Buffer.from(parts[2], 'base64url');
      sig[10] ^= 1;
      return `${parts[0]}.${parts[1]}.${sig.toString('base64url')}`;
    } },
    { name: 'fail/typ-jwt-exchange-output', audience: api2, want: 'typ must be at+jwt', token: async () => exchangedJWT },
    { name: 'fail/typ-missing', keys: localSigned, want: 'typ must be at+jwt', token: () => local.sign(good(), { typ: undefined }) },
    { name: 'fail/typ-jwt', keys: localSigned, want: 'typ must be at+jwt', token: () => local.sign(good(), { typ: 'JWT' }) },
    { name: 'fail/alg-none', want: 'algorithm is not allowed',
      token: async () => `${enc({ alg: 'none', kid, typ: 'at+jwt' })}.${payloadSegment}.` },
    { name: 'fail/hs256-with-public-key', want: 'algorithm is not allowed',
      token: () => new CompactSign(Buffer.from(payloadSegment, 'base64url'))
        .setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' }).sign(new Uint8Array(der)) },
    { name: 'fail/alg-does-not-match-key', want: 'does not match its key',
      token: async () => compact({ alg: 'ES384', kid, typ: 'at+jwt' }, payloadSegment, new Uint8Array(96)) },
    { name: 'fail/another-key-unknown-kid', want: 'key deputy does not publish',
      token: () => local.sign(good(), { kid: 'not-deputys-key' }) },
    { name: 'fail/another-key-deputy-kid', want: 'signature is invalid', token: () => local.sign(good(), { kid }) },
    { name: 'fail/no-kid', want: 'names no key', token: () => local.sign(good(), { kid: undefined }) },
    { name: 'fail/wrong-issuer', keys: localSigned, want: 'another issuer',
      token: () => local.sign({ ...good(), iss: 'https://evil.example' }) },
    { name: 'fail/issuer-trailing-slash', keys: localSigned, want: 'another issuer',
      token: () => local.sign({ ...good(), iss: d.issuer + '/' }) },
    { name: 'fail/jku-header', keys: localSigned, want: 'carries jku', token: () => local.sign(good(), { jku: `${d.issuer}/jwks` }) },
    { name: 'fail/x5u-header', keys: localSigned, want: 'carries x5u', token: () => local.sign(good(), { x5u: 'https://evil.example/cert' }) },
    { name: 'fail/jwk-header', keys: localSigned, want: 'carries jwk', token: () => local.sign(good(), { jwk: local.jwk }) },
    { name: 'fail/x5c-header', keys: localSigned, want: 'carries x5c', token: () => local.sign(good(), { x5c: ['MIIB'] }) },
    { name: 'fail/crit-header', keys: localSigned, want: 'carries crit', token: () => local.sign(good(), { crit: ['exp'], exp: 1 }) },
    { name: 'fail/b64-header', keys: localSigned, want: 'carries b64', token: () => local.sign(good(), { b64: true }) },
    { name: 'fail/header-not-json', want: 'header is malformed', token: async () => `bm90LWpzb24.${payloadSegment}.AAAA` },
    { name: 'fail/kid-not-a-string', want: 'header is malformed', token: () => local.sign(good(), { kid: 42 }) },
    { name: 'fail/missing-sub', keys: localSigned, want: 'no subject', token: () => { const c = good(); delete c.sub; return local.sign(c); } },
    { name: 'fail/missing-exp', keys: localSigned, want: 'no expiry', token: () => { const c = good(); delete c.exp; return local.sign(c); } },
    { name: 'fail/nbf-in-future', keys: localSigned, want: 'not valid yet',
      token: () => local.sign({ ...good(), nbf: Math.floor(Date.now() / 1000) + 120 }) },
    { name: 'fail/iat-in-future', keys: localSigned, want: 'issued in the future',
      token: () => local.sign({ ...good(), iat: Math.floor(Date.now() / 1000) + 120 }) },
    { name: 'fail/aud-wrong-type', keys: localSigned, want: 'claims are malformed', token: () => local.sign({ ...good(), aud: 42 }) },
    { name: 'fail/payload-not-object', keys: localSigned, want: 'claims are malformed', token: () => local.sign([1, 2]) },
    { name: 'fail/claim-name-case', keys: localSigned, want: 'another issuer',
      token: () => { const c = good(); delete c.iss; return local.sign({ ...c, ISS: d.issuer }); } },
    { name: 'fail/actor-without-sub', keys: localSigned, want: 'act claim is malformed',
      token: () => local.sign({ ...good(), act: { sub: 'api1', act: {} } }) },
    { name: 'fail/cnf-unknown-key', keys: localSigned, want: 'claims are malformed',
      token: () => local.sign({ ...good(), cnf: { jwk: { kty: 'EC' } } }) },
    { name: 'fail/cnf-two-keys', keys: localSigned, want: 'claims are malformed',
      token: () => local.sign({ ...good(), cnf: { jkt: 'a', 'x5t#S256': 'b' } }) },
    { name: 'fail/cnf-empty', keys: localSigned, want: 'claims are malformed', token: () => local.sign({ ...good(), cnf: {} }) },
    { name: 'fail/certificate-bound', keys: localSigned, want: 'certificate-bound',
      token: () => local.sign({ ...good(), cnf: { 'x5t#S256': 'abc' } }) },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const clk = clock();
      const v = createVerifier({ ...(c.keys ?? deputyKeys), audience: c.audience ?? api1, now: clk.now });
      clk.add(c.advance ?? 0);
      const raw = await c.token();
      const err = await rejects(v.verify(raw), 'invalid_token', 401, c.want);
      assert.equal(err.wwwAuthenticate(), `Bearer error="invalid_token", error_description="${err.description}"`);
      for (const seg of raw.split('.').slice(1)) {
        if (seg.length > 16) assert.ok(!err.message.includes(seg) && !err.description.includes(seg), 'the error echoes the token');
      }
    });
  }
});

test('verify refuses a token without a required scope: 403 insufficient_scope', async (t) => {
  const hop = await exchange(d, 'api1', cc, api2, 'ledger:read');
  const v = createVerifier({ issuer: d.issuer, audience: api2 });
  for (const c of [
    { name: 'ok/held-scope', scopes: ['ledger:read'] },
    { name: 'fail/missing-scope', scopes: ['ledger:write'] },
    { name: 'fail/one-of-two-missing', scopes: ['ledger:read', 'ledger:write'] },
    { name: 'fail/scope-of-another-audience', scopes: ['payments:read'] },
  ]) {
    await t.test(c.name, async () => {
      if (c.name.startsWith('ok/')) {
        assert.deepEqual((await v.verify(hop, { scopes: c.scopes })).actors, ['api1']);
        return;
      }
      const err = await rejects(v.verify(hop, { scopes: c.scopes }), 'insufficient_scope', 403, 'lacks a required scope');
      assert.equal(err.wwwAuthenticate(), `Bearer error="insufficient_scope", scope="${c.scopes.join(' ')}"`);
    });
  }
});

test('keys: fetched once while fresh, however many tokens are verified', async () => {
  const f = counting();
  const v = createVerifier({ issuer: d.issuer, audience: api1, fetch: f.fetch });
  await Promise.all(Array.from({ length: 100 }, () => v.verify(cc)));
  assert.equal(f.count('/jwks'), 1);
  assert.equal(f.count(METADATA), 1);
});

test('keys: an unknown kid refetches the set, at most once per 30 s', async () => {
  const f = counting();
  const clk = clock();
  const v = createVerifier({ issuer: d.issuer, audience: api1, fetch: f.fetch, now: clk.now });
  await v.verify(cc);
  for (let i = 0; i < 50; i++) {
    await rejects(v.verify(await local.sign(claimsFor(d.issuer, clk.now()), { kid: randomID() })),
      'invalid_token', 401, 'key deputy does not publish');
    clk.add(1000); // 50 tokens over 50 seconds
  }
  assert.equal(f.count('/jwks'), 2);
});

test('keys: after deputy rotates its key, the new kid is fetched after 30 s; the old one keeps verifying', async () => {
  const rd = await startDeputy(chainConfig());
  try {
    const old = (await clientCredentials(rd, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
    const f = counting();
    const clk = clock();
    const v = createVerifier({ issuer: rd.issuer, audience: api1, fetch: f.fetch, now: clk.now });
    await v.verify(old);
    // What an operator does: `deputy keys rotate`, on the running deputy's database.
    execFileSync(deputyBinary(), ['keys', 'rotate', '--config', join(rd.dir, 'deputy.json.yaml'), '--publish-for', '0s'], {
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_'))), stdio: 'pipe',
    });
    let rotated;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) { // deputy reloads its keys every 5 s
      rotated = (await clientCredentials(rd, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
      if (segments(rotated).header.kid !== segments(old).header.kid) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.notEqual(segments(rotated).header.kid, segments(old).header.kid, 'deputy did not sign with a new key');
    const steps = [
      ['fail/unknown-kid-just-after-fetch', 0, rotated, false, 1],
      ['fail/unknown-kid-again-within-30s', 29_000, rotated, false, 1],
      ['ok/old-kid-still-cached', 0, old, true, 1],
      ['ok/unknown-kid-refetches-after-30s', 1000, rotated, true, 2],
      ['ok/new-kid-now-cached', 0, rotated, true, 2],
      ['ok/old-kid-still-published', 0, old, true, 2],
    ];
    for (const [name, advance, token, ok, fetches] of steps) {
      clk.add(advance);
      if (ok) await v.verify(token);
      else await rejects(v.verify(token), 'invalid_token', 401, 'key deputy does not publish');
      assert.equal(f.count('/jwks'), fetches, name);
    }
    assert.equal(f.count(METADATA), 1);
  } finally {
    await rd.stop();
  }
});

test('keys: kept for deputy max-age (60 s), then fetched again; past it with deputy down, 503', async () => {
  let down = false;
  const f = counting(() => down);
  const clk = clock();
  const v = createVerifier({ issuer: d.issuer, audience: api1, fetch: f.fetch, now: clk.now });
  await v.verify(cc);
  clk.add(59_000);
  await v.verify(cc);
  assert.equal(f.count('/jwks'), 1, 'refetched within max-age');
  clk.add(2000);
  await v.verify(cc);
  assert.equal(f.count('/jwks'), 2, 'not refetched past max-age');
  down = true;
  clk.add(30_000);
  await v.verify(cc); // the cached set still serves while fresh, however deputy is
  clk.add(31_000);
  await rejects(v.verify(cc), 'temporarily_unavailable', 503, 'signing keys cannot be fetched');
  down = false;
  await rejects(v.verify(cc), 'temporarily_unavailable', 503, 'signing keys cannot be fetched'); // not within 30 s
  clk.add(30_000);
  await v.verify(cc);
});

test('keys: deputy unreachable is 503 temporarily_unavailable, never 401', async (t) => {
  const closed = await closedURL();
  for (const c of [
    { name: 'fail/jwks-unreachable', opts: { issuer: d.issuer, jwksUri: `${closed}/jwks` } },
    { name: 'fail/issuer-unreachable', opts: { issuer: closed } },
  ]) {
    await t.test(c.name, async () => {
      const v = createVerifier({ ...c.opts, audience: api1 });
      const err = await rejects(v.verify(cc), 'temporarily_unavailable', 503, 'signing keys cannot be fetched');
      assert.equal(err.wwwAuthenticate(), '');
      assert.deepEqual(err.toJSON(), { error: 'temporarily_unavailable', error_description: "deputy's signing keys cannot be fetched" });
      assert.ok(!err.description.includes('127.0.0.1'), 'the description shows the cause');
    });
  }
});

test('keys: a key set with private key material is refused whole (503)', async () => {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const priv = { ...(await exportJWK(privateKey)), kid: 'local-key' };
  const server = http.createServer((req, res) => res.end(JSON.stringify({ keys: [local.jwk, priv] })));
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const v = createVerifier({ issuer: d.issuer, audience: api1, jwksUri: `http://127.0.0.1:${server.address().port}/jwks` });
    await rejects(v.verify(await local.sign(claimsFor(d.issuer))), 'temporarily_unavailable', 503, 'cannot be fetched');
  } finally {
    await new Promise((ok) => server.close(ok));
  }
});

test('keys: a key set that is not 200, too large or not JSON is not used (503)', async (t) => {
  for (const [name, status, body] of [
    ['fail/http-500', 500, JSON.stringify({ keys: [] })],
    ['fail/larger-than-1MiB', 200, JSON.stringify({ keys: [], pad: 'x'.repeat(1 << 20) })],
    ['fail/not-json', 200, 'keys'],
    ['fail/no-usable-key', 200, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', use: 'enc', x: 'a', y: 'b' }] })],
  ]) {
    await t.test(name, async () => {
      const server = http.createServer((req, res) => { res.statusCode = status; res.end(body); });
      await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
      try {
        const v = createVerifier({ issuer: d.issuer, audience: api1, jwksUri: `http://127.0.0.1:${server.address().port}/jwks` });
        await rejects(v.verify(await local.sign(claimsFor(d.issuer))), 'temporarily_unavailable', 503, 'cannot be fetched');
      } finally {
        server.closeAllConnections();
        await new Promise((ok) => server.close(ok));
      }
    });
  }
});

test('keysMaxAge clamps Cache-Control max-age to [1m, 24h], 5m without one', () => {
  for (const [cc, want] of [
    ['public, max-age=60', 60_000],
    ['public, max-age=3600', 3600_000],
    ['max-age=5', 60_000],
    ['max-age=604800', 24 * 3600_000],
    ['no-store', 60_000],
    ['', 300_000],
    ['max-age=abc', 300_000],
  ]) assert.equal(keysMaxAge(cc), want, cc);
});

test('createVerifier refuses options it cannot work with, naming them, and fetches nothing', async (t) => {
  for (const [name, edit, want] of [
    ['ok/minimal', {}, ''],
    ['ok/jwks-uri', { jwksUri: 'https://keys.example/jwks' }, ''],
    ['fail/no-issuer', { issuer: '' }, 'issuer is required'],
    ['fail/relative-issuer', { issuer: 'deputy.example' }, 'issuer must be an absolute'],
    ['fail/issuer-scheme', { issuer: 'ftp://deputy.example' }, 'issuer must be an absolute'],
    ['fail/no-audience', { audience: '' }, 'audience is required'],
    ['fail/jwks-uri', { jwksUri: '/jwks' }, 'jwksUri must be'],
    ['fail/negative-leeway', { leeway: -1 }, 'leeway must not be negative'],
    ['fail/huge-leeway', { leeway: 3600 }, 'leeway must be at most'],
    ['fail/huge-dpop-max-age', { dpopMaxAge: 3600 }, 'dpopMaxAge must be at most'],
  ]) {
    await t.test(name, () => {
      const f = counting();
      const make = () => createVerifier({ issuer: 'https://deputy.example', audience: api1, fetch: f.fetch, ...edit });
      if (want === '') assert.ok(make());
      else assert.throws(make, (e) => e instanceof TypeError && e.message.includes(want));
      assert.equal(f.count('/jwks') + f.count(METADATA), 0);
    });
  }
});
