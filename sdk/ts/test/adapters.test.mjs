// The Express and Fastify adapters, and the framework-neutral authenticate they
// share: an app of each kind on 127.0.0.1 guarded by a verifier of a real deputy,
// called with fetch. Refusals are answered the Go SDK's middleware way: status,
// WWW-Authenticate, JSON {error, error_description}, the token never echoed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { generateKeyPair, exportJWK, calculateJwkThumbprint, CompactSign, base64url } from 'jose';
import { startDeputy, clientCredentials } from './deputy.mjs';
import { createVerifier, authenticate, parseAuthorization, requestURL } from '../dist/verify.js';
import { VerifyError } from '../dist/errors.js';
import { expressMiddleware } from '../dist/express.js';
import { fastifyPreHandler } from '../dist/fastify.js';
import { accessTokenHash } from '../dist/dpop-check.js';

const api1 = 'https://api1.example';
const api2 = 'https://api2.example';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ALGS = 'algs="ES256 EdDSA RS256 PS256"';
const randomID = () => base64url.encode(crypto.getRandomValues(new Uint8Array(12)));
const nowS = () => Math.floor(Date.now() / 1000);

async function proofKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    jkt: await calculateJwkThumbprint(jwk, 'sha256'),
    proof: (claims) => new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(privateKey),
  };
}

let d;
let key;
let hop; // api1's token for api2, on behalf of web-app
let boundHop; // the same, DPoP-bound to key
let closed;
before(async () => {
  d = await startDeputy({
    audiences: [
      { id: api1, scopes: ['payments:read'], client: 'api1' },
      { id: api2, scopes: ['ledger:read', 'ledger:write'], client: 'api2' },
    ],
    clients: [
      { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
        scopes: ['payments:read', 'ledger:read'], audiences: [api1] },
      { id: 'api1', secret: 'api1-secret', grant_types: ['client_credentials', TOKEN_EXCHANGE], audiences: [api1] },
      { id: 'api2', secret: 'api2-secret', grant_types: ['client_credentials'], audiences: [api2] },
    ],
    exchange: { policies: [{ name: 'api1-to-api2', client: 'api1', audiences: [api2], scopes: ['ledger:read'] }] },
  });
  key = await proofKey();
  const cc = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read' })).access_token;
  const form = { grant_type: TOKEN_EXCHANGE, subject_token: cc,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: api2, scope: 'ledger:read' };
  hop = (await clientCredentials(d, 'api1', 'api1-secret', form)).access_token;
  const proof = await key.proof({ jti: randomID(), htm: 'POST', htu: d.tokenEndpoint, iat: nowS() });
  const bound = await clientCredentials(d, 'api1', 'api1-secret', form, { DPoP: proof });
  assert.equal(bound.token_type, 'DPoP');
  boundHop = bound.access_token;
  closed = await new Promise((ok) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const u = `http://127.0.0.1:${s.address().port}`; s.close(() => ok(u)); });
  });
});
after(async () => { await d?.stop(); });

// Each app serves GET /ledger (no scope required) and GET /ledger/write
// (ledger:write), answering the principal it saw.
const seen = (p) => ({ subject: p.subject, clientId: p.clientId, actors: p.actors, jkt: p.cnf?.jkt ?? null });

async function expressApp(verifier, opts = {}) {
  const app = express();
  app.get('/ledger', expressMiddleware(verifier, opts), (req, res) => res.json(seen(req.deputy)));
  app.get('/ledger/write', expressMiddleware(verifier, { ...opts, scopes: ['ledger:write'] }), (req, res) => res.json(seen(req.deputy)));
  const server = await new Promise((ok) => { const s = app.listen(0, '127.0.0.1', () => ok(s)); });
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((ok) => server.close(ok)) };
}

async function fastifyApp(verifier, opts = {}) {
  const app = Fastify();
  app.decorateRequest('deputy', null);
  app.get('/ledger', { preHandler: fastifyPreHandler(verifier, opts) }, async (req) => seen(req.deputy));
  app.get('/ledger/write', { preHandler: fastifyPreHandler(verifier, { ...opts, scopes: ['ledger:write'] }) }, async (req) => seen(req.deputy));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { base: `http://127.0.0.1:${app.server.address().port}`, close: () => app.close() };
}

const frameworks = [['express', expressApp], ['fastify', fastifyApp]];

async function call(url, headers = {}) {
  const r = await fetch(url, { headers });
  const text = await r.text();
  return { status: r.status, challenge: r.headers.get('www-authenticate'), type: r.headers.get('content-type'),
    cacheControl: r.headers.get('cache-control'), text, body: text ? JSON.parse(text) : undefined };
}

function checkRefusal(r, code, desc, token) {
  assert.match(r.type ?? '', /^application\/json/);
  assert.equal(r.cacheControl, 'no-store');
  assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_description'], 'body members');
  assert.equal(r.body.error, code);
  assert.ok(r.body.error_description.includes(desc), `description "${r.body.error_description}", want "${desc}"`);
  if (token) {
    for (const seg of token.split('.')) assert.ok(!r.text.includes(seg) && !(r.challenge ?? '').includes(seg), 'the answer echoes the token');
  }
}

for (const [name, start] of frameworks) {
  test(`${name}: a valid token reaches the handler with its principal; refusals are RFC 6750 answers`, async (t) => {
    const app = await start(createVerifier({ issuer: d.issuer, audience: api2 }));
    const tampered = hop.slice(0, -4) + (hop.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const realm = `Bearer realm="${api2}", DPoP realm="${api2}", ${ALGS}`;
    const proof = (edit = {}) => key.proof({ jti: randomID(), htm: 'GET', htu: `${app.base}/ledger`, iat: nowS(),
      ath: accessTokenHash(boundHop), ...edit });
    try {
      const cases = [
        { name: 'ok/bearer', headers: () => ({ authorization: `Bearer ${hop}` }), jkt: null },
        { name: 'ok/scheme-lower-case', headers: () => ({ authorization: `bearer ${hop}` }), jkt: null },
        { name: 'ok/dpop', headers: async () => ({ authorization: `DPoP ${boundHop}`, dpop: await proof() }), jkt: key.jkt },
        { name: 'ok/dpop-query-ignored', path: '/ledger?account=42',
          headers: async () => ({ authorization: `DPoP ${boundHop}`, dpop: await proof() }), jkt: key.jkt },
        { name: 'fail/no-header', status: 401, challenge: realm, code: 'invalid_request', desc: 'missing bearer token',
          headers: () => ({}) },
        { name: 'fail/basic-scheme', status: 401, challenge: realm, code: 'invalid_request', desc: 'does not carry a bearer or DPoP token',
          headers: () => ({ authorization: 'Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==' }) },
        { name: 'fail/bearer-two-tokens', status: 401, challenge: realm, code: 'invalid_request', desc: 'does not carry',
          headers: () => ({ authorization: `Bearer ${hop} ${hop}` }) },
        { name: 'fail/query-token-ignored', path: `/ledger?access_token=${hop}`, status: 401, challenge: realm,
          code: 'invalid_request', desc: 'missing bearer token', headers: () => ({}) },
        { name: 'fail/invalid-token', status: 401, code: 'invalid_token', desc: 'token signature is invalid',
          challenge: 'Bearer error="invalid_token", error_description="token signature is invalid"',
          headers: () => ({ authorization: `Bearer ${tampered}` }) },
        { name: 'fail/garbage-token', status: 401, code: 'invalid_token', desc: 'not a compact JWS',
          challenge: 'Bearer error="invalid_token", error_description="token is not a compact JWS"',
          headers: () => ({ authorization: 'Bearer "quoted"\\evil' }) },
        { name: 'fail/missing-scope', path: '/ledger/write', status: 403, code: 'insufficient_scope', desc: 'lacks a required scope',
          challenge: 'Bearer error="insufficient_scope", scope="ledger:write"', headers: () => ({ authorization: `Bearer ${hop}` }) },
        { name: 'fail/bound-token-as-bearer', status: 401, code: 'invalid_token', desc: 'must be sent with Authorization: DPoP',
          challenge: `DPoP error="invalid_token", error_description="token is DPoP-bound and must be sent with Authorization: DPoP and a proof", ${ALGS}`,
          headers: async () => ({ authorization: `Bearer ${boundHop}`, dpop: await proof() }) },
        { name: 'fail/dpop-without-proof', status: 401, code: 'invalid_token', desc: 'without a DPoP proof',
          challenge: `DPoP error="invalid_token", error_description="DPoP-bound token presented without a DPoP proof", ${ALGS}`,
          headers: () => ({ authorization: `DPoP ${boundHop}` }) },
        { name: 'fail/dpop-htu-of-another-path', path: '/ledger/write', status: 401, code: 'invalid_dpop_proof', desc: 'htu is not',
          headers: async () => ({ authorization: `DPoP ${boundHop}`, dpop: await proof() }) },
        { name: 'fail/dpop-htm', status: 401, code: 'invalid_dpop_proof', desc: 'htm is not GET',
          headers: async () => ({ authorization: `DPoP ${boundHop}`, dpop: await proof({ htm: 'POST' }) }) },
        { name: 'fail/dpop-ath-of-another-token', status: 401, code: 'invalid_dpop_proof', desc: 'ath does not match',
          headers: async () => ({ authorization: `DPoP ${boundHop}`, dpop: await proof({ ath: accessTokenHash(hop) }) }) },
        { name: 'fail/dpop-scheme-unbound-token', status: 401, code: 'invalid_token', desc: 'not DPoP-bound',
          headers: async () => ({ authorization: `DPoP ${hop}`, dpop: await proof({ ath: accessTokenHash(hop) }) }) },
      ];
      for (const c of cases) {
        await t.test(c.name, async () => {
          const r = await call(`${app.base}${c.path ?? '/ledger'}`, await c.headers());
          if (!c.code) {
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(r.body, { subject: 'web-app', clientId: 'api1', actors: ['api1'], jkt: c.jkt });
            return;
          }
          assert.equal(r.status, c.status, r.text);
          if (c.challenge) assert.equal(r.challenge, c.challenge);
          else assert.ok(r.challenge?.startsWith(`DPoP error="${c.code}"`) && r.challenge.endsWith(ALGS), r.challenge);
          checkRefusal(r, c.code, c.desc, hop);
          checkRefusal(r, c.code, c.desc, boundHop);
        });
      }
      await t.test('fail/replayed-proof', async () => {
        const headers = { authorization: `DPoP ${boundHop}`, dpop: await proof() };
        assert.equal((await call(`${app.base}/ledger`, headers)).status, 200);
        const r = await call(`${app.base}/ledger`, headers);
        assert.equal(r.status, 401);
        checkRefusal(r, 'invalid_dpop_proof', 'used before', boundHop);
      });
    } finally {
      await app.close();
    }
  });

  test(`${name}: publicUrl names the URL clients call through a proxy (htu)`, async () => {
    const app = await start(createVerifier({ issuer: d.issuer, audience: api2 }), { publicUrl: 'https://gateway.example/bank/' });
    try {
      const proof = (htu) => key.proof({ jti: randomID(), htm: 'GET', htu, iat: nowS(), ath: accessTokenHash(boundHop) });
      const ok = await call(`${app.base}/ledger`, { authorization: `DPoP ${boundHop}`, dpop: await proof('https://gateway.example/bank/ledger') });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.jkt, key.jkt);
      const direct = await call(`${app.base}/ledger`, { authorization: `DPoP ${boundHop}`, dpop: await proof(`${app.base}/ledger`) });
      assert.equal(direct.status, 401);
      checkRefusal(direct, 'invalid_dpop_proof', 'htu is not https://gateway.example/bank/ledger', boundHop);
    } finally {
      await app.close();
    }
  });

  test(`${name}: deputy unreachable is 503 without a challenge, never the handler`, async () => {
    const app = await start(createVerifier({ issuer: d.issuer, audience: api2, jwksUri: `${closed}/jwks` }));
    try {
      const r = await call(`${app.base}/ledger`, { authorization: `Bearer ${hop}` });
      assert.equal(r.status, 503);
      assert.equal(r.challenge, null);
      checkRefusal(r, 'temporarily_unavailable', "deputy's signing keys cannot be fetched", hop);
      assert.ok(!r.text.includes('127.0.0.1'), 'the body shows the cause');
    } finally {
      await app.close();
    }
  });

  test(`${name}: requireBinding offers only the DPoP challenge and refuses bearer tokens`, async () => {
    const app = await start(createVerifier({ issuer: d.issuer, audience: api2, requireBinding: true }));
    try {
      const none = await call(`${app.base}/ledger`);
      assert.equal(none.status, 401);
      assert.equal(none.challenge, `DPoP realm="${api2}", ${ALGS}`);
      const bearer = await call(`${app.base}/ledger`, { authorization: `Bearer ${hop}` });
      assert.equal(bearer.status, 401);
      assert.ok(bearer.challenge.startsWith('DPoP error="invalid_token"'), bearer.challenge);
      checkRefusal(bearer, 'invalid_token', 'not sender-constrained', hop);
    } finally {
      await app.close();
    }
  });
}

test('express: two WWW-Authenticate header lines without credentials', async () => {
  const app = await expressApp(createVerifier({ issuer: d.issuer, audience: api2 }));
  try {
    const lines = await new Promise((ok, fail) => {
      http.get(`${app.base}/ledger`, (res) => {
        res.resume();
        ok(res.headersDistinct['www-authenticate']);
      }).on('error', fail);
    });
    assert.deepEqual(lines, [`Bearer realm="${api2}"`, `DPoP realm="${api2}", ${ALGS}`]);
  } finally {
    await app.close();
  }
});

test('authenticate: reads one Authorization header, Bearer or DPoP in any case', async (t) => {
  const v = createVerifier({ issuer: d.issuer, audience: api2 });
  const req = (authorization) => ({ authorization, method: 'GET', url: 'https://api2.example/ledger' });
  await t.test('ok/bearer-upper-case', async () => {
    assert.deepEqual((await authenticate(v, req(`BEARER ${hop}`), { scopes: ['ledger:read'] })).actors, ['api1']);
  });
  for (const [name, authorization, desc] of [
    ['fail/two-headers', [`Bearer ${hop}`, `Bearer ${hop}`], 'more than one Authorization header'],
    ['fail/no-header', undefined, 'missing bearer token'],
    ['fail/empty-list', [], 'missing bearer token'],
    ['fail/bearer-without-token', 'Bearer ', 'does not carry'],
    ['fail/scheme-only', 'Bearer', 'does not carry'],
  ]) {
    await t.test(name, async () => {
      await assert.rejects(authenticate(v, req(authorization)), (e) => {
        assert.ok(e instanceof VerifyError);
        assert.equal(e.code, 'invalid_request');
        assert.equal(e.status, 401);
        assert.ok(e.description.includes(desc), e.description);
        assert.equal(e.wwwAuthenticate(), `Bearer realm="${api2}", DPoP realm="${api2}", ${ALGS}`);
        return true;
      });
    });
  }
  await t.test('fail/insufficient-scope-names-the-scopes', async () => {
    await assert.rejects(authenticate(v, req(`Bearer ${hop}`), { scopes: ['ledger:read', 'ledger:write'] }), (e) =>
      e.status === 403 && e.wwwAuthenticate() === 'Bearer error="insufficient_scope", scope="ledger:read ledger:write"');
  });
  assert.deepEqual(parseAuthorization('DPoP  abc'), { token: 'abc', scheme: 'DPoP' });
});

test('requestURL: publicUrl or protocol://Host, then the path without query', () => {
  assert.equal(requestURL({ protocol: 'http', host: '127.0.0.1:8080', path: '/ledger?x=1' }), 'http://127.0.0.1:8080/ledger');
  assert.equal(requestURL({ publicUrl: 'https://gw.example/bank/', protocol: 'http', host: 'x', path: '/ledger#f' }), 'https://gw.example/bank/ledger');
  assert.equal(requestURL({ protocol: 'http', host: undefined, path: '/ledger' }), '');
});
