// Transaction tokens against a real deputy (txn_tokens and a policy issuing
// txn_token): obtainTxnToken, createTxnVerifier with the bad inputs of Go's
// sdk/verify/txn_test.go, the express and fastify adapters, and forwardTxn.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { startDeputy, clientCredentials, deputyBinary } from './deputy.mjs';
import {
  createTxnVerifier, obtainTxnToken, authenticateTxn, expressTxn, fastifyTxn, forwardTxn, txnErrorResponse,
  TxnError, TOKEN_TYPE_TXN_TOKEN,
} from '../dist/txn.js';
import { ExchangeError } from '../dist/exchange.js';
import { createProof } from '../dist/dpop.js';
import { createVerifier } from '../dist/verify.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TRUST_DOMAIN = 'spiffe://bank.example';

function txnConfig() {
  return {
    audiences: [
      { id: 'https://api1.example', client: 'api1', scopes: ['payments:read', 'payments:write'] },
    ],
    clients: [
      { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
        scopes: ['payments:read', 'payments:write'], audiences: ['https://api1.example'] },
      { id: 'api1', secret: 'api1-secret', grant_types: [TE], audiences: ['https://api1.example'] },
      { id: 'api2', secret: 'api2-secret', grant_types: [TE] },
      { id: 'api3', secret: 'api3-secret', grant_types: [TE] },
    ],
    txn_tokens: { trust_domain: TRUST_DOMAIN, ttl: '60s' },
    exchange: {
      policies: [
        { name: 'payments-txn', client: 'api1', requested_token_types: ['txn_token'], scopes: ['payments:read', 'payments:write'] },
        // api2 may exchange, but no policy of its lists txn_token.
        { name: 'api2-to-api1', client: 'api2', audiences: ['https://api1.example'], scopes: ['payments:read'] },
      ],
    },
  };
}

// counting wraps fetch and counts the GETs of deputy's JWKS and metadata; down()
// true makes every request fail as if deputy were unreachable.
function counting(down = () => false) {
  const c = { jwks: 0, metadata: 0 };
  return {
    counts: () => ({ ...c }),
    fetch: async (input, init) => {
      const u = String(input);
      if (u.endsWith('/jwks')) c.jwks++;
      if (u.endsWith('/.well-known/oauth-authorization-server')) c.metadata++;
      if (down()) throw new TypeError('fetch failed (deputy is down)');
      return fetch(input, init);
    },
  };
}

// clock is a settable clock for the verifiers' now, starting at the real time.
function clock() {
  let t = Date.now();
  return { now: () => t, add: (ms) => { t += ms; } };
}

// auditByTrace reads d's audit events of one trace id with `deputy audit query`.
function auditByTrace(d, traceId) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_')));
  const out = execFileSync(deputyBinary(), ['audit', 'query', '--config', join(d.dir, 'deputy.json.yaml'), '--trace-id', traceId, '--json'], { env }).toString();
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

async function userToken(d, headers = {}) {
  return (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read payments:write' }, headers)).access_token;
}

function closedPort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

// deputyKey reads deputy's newest ES256 signing key from its SQLite database, as
// Go's tests sign with their test deputy's key: tokens with bad claims but a good
// signature by a key deputy publishes.
function deputyKey(d) {
  const out = execFileSync('sqlite3', ['-json', join(d.dir, 'deputy.db'),
    "SELECT id, CAST(private_jwk AS TEXT) AS jwk FROM signing_keys WHERE algorithm = 'ES256' AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1"]).toString();
  const [row] = JSON.parse(out);
  return { kid: row.id, key: createPrivateKey({ key: JSON.parse(row.jwk), format: 'jwk' }) };
}

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

// compact signs payload with header as a compact JWS (ES256; alg none: no signature).
function compact(header, payload, key) {
  const input = `${b64(header)}.${b64(payload)}`;
  if (!key) return input + '.';
  return input + '.' + cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

function assertTxnError(e, status, code, description) {
  assert.ok(e instanceof TxnError, `want a TxnError, got ${e}`);
  assert.equal(e.status, status);
  assert.equal(e.error, code);
  assert.match(e.description, description);
  assert.equal(e.message, e.description);
  return true;
}

describe('transaction tokens against deputy', () => {
  let d;
  let verifier;
  const api1 = () => ({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret' });
  before(async () => {
    d = await startDeputy(txnConfig());
    verifier = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN });
  });
  after(async () => { await d?.stop(); });

  // A context whose bytes JSON encoders disagree on (<, >, &, non-ASCII, a float):
  // deputy signs it as sent, compacted.
  const context = { action: 'payment', payment_id: 'pay_7', amount: '42.00 EUR', memo: '<a> & b — é ✓', rate: 12.5, nested: { ok: true, list: [1, 'x'] } };

  test('ok/obtain-and-verify: txn, sub, scopes, tctx byte for byte, rctx', async () => {
    const t0 = await userToken(d);
    const before = Date.now();
    const tok = await obtainTxnToken(api1(), t0, { scopes: ['payments:write'], context });
    assert.equal(tok.tokenType, 'N_A');
    assert.equal(tok.issuedTokenType, TOKEN_TYPE_TXN_TOKEN);
    assert.deepEqual(tok.scopes, ['payments:write']);
    const left = tok.expiresAt.getTime() - before;
    assert.ok(left > 55_000 && left <= 61_000, `expiresAt ${left} ms ahead, want about 60 s`);
    const payload = Buffer.from(tok.token.split('.')[1], 'base64url').toString('utf8');
    assert.ok(payload.includes(`"tctx":${JSON.stringify(context)}`), `tctx not signed as sent: ${payload}`);
    assert.equal(decodeProtectedHeader(tok.token).typ, 'txntoken+jwt');

    const p = await verifier.verify(tok.token);
    assert.match(p.txn, /^[A-Za-z0-9_-]{10,}$/);
    assert.equal(p.subject, 'web-app');
    assert.equal(p.issuer, d.issuer);
    assert.deepEqual(p.scopes, ['payments:write']);
    assert.ok(p.hasScope('payments:write'));
    assert.ok(!p.hasScope('payments'));
    assert.deepEqual(p.context, context);
    assert.deepEqual(p.requestContext, { req_ip: '127.0.0.1', req_wl: 'api1' });
    assert.equal(p.token, tok.token);
    assert.equal(p.claims.aud, TRUST_DOMAIN);
    assert.equal(p.claims.cnf, undefined);
    assert.equal(p.claims.act, undefined);
    assert.equal(p.jti, p.claims.jti);
    assert.equal(p.expiresAt.getTime(), p.claims.exp * 1000);
    assert.equal(p.issuedAt.getTime(), p.claims.iat * 1000);
  });

  test('ok/stand-alone: its own key cache, the SDK\'s one behaviour: 100 concurrent verifies, one JWKS fetch', async () => {
    const f = counting();
    const v = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, fetch: f.fetch });
    const tok = await obtainTxnToken(api1(), await userToken(d), { scopes: 'payments:read' });
    const all = await Promise.all(Array.from({ length: 100 }, () => v.verify(tok.token)));
    assert.deepEqual(all[99].scopes, ['payments:read']);
    assert.deepEqual(f.counts(), { jwks: 1, metadata: 1 });
    const [h, p, sig] = tok.token.split('.');
    const other = b64({ ...JSON.parse(Buffer.from(h, 'base64url')), kid: 'elsewhere' });
    await assert.rejects(v.verify(`${other}.${p}.${sig}`), (e) => assertTxnError(e, 401, 'invalid_token', /key deputy does not publish/));
    assert.deepEqual(f.counts(), { jwks: 1, metadata: 1 }, 'an unknown kid within 30 s of the last fetch is not fetched');
  });

  test('ok/obtain: never cached (a new txn each time); no context, the trust domain as audience, tokenEndpoint without discovery', async () => {
    const t0 = await userToken(d);
    let requests = 0;
    const f = async (input, init) => { requests++; return fetch(input, init); };
    const cfg = { tokenEndpoint: d.tokenEndpoint, clientId: 'api1', clientSecret: 'api1-secret', fetch: f };
    const a = await obtainTxnToken(cfg, t0, { trustDomain: TRUST_DOMAIN });
    const b = await obtainTxnToken(cfg, t0, { trustDomain: TRUST_DOMAIN });
    assert.equal(requests, 2);
    const pa = await verifier.verify(a.token);
    const pb = await verifier.verify(b.token);
    assert.notEqual(pa.txn, pb.txn);
    assert.equal(pa.context, undefined);
    assert.deepEqual(pa.scopes, ['payments:read', 'payments:write']); // none asked: every scope the policy allows
  });

  test('ok/obtain-traceparent: deputy\'s audit event of the transaction token records the trace id; an invalid one is not sent', async () => {
    const sent = [];
    const f = async (input, init) => {
      if (String(input).endsWith('/token')) sent.push(new Headers(init.headers));
      return fetch(input, init);
    };
    const traceId = randomBytes(16).toString('hex');
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const tok = await obtainTxnToken({ ...api1(), fetch: f }, await userToken(d), { traceparent, tracestate: 'congo=t61rcWkgMzE' });
    assert.equal(sent[0].get('traceparent'), traceparent);
    assert.equal(sent[0].get('tracestate'), 'congo=t61rcWkgMzE');
    const events = auditByTrace(d, traceId);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0].type, 'token.exchanged');
    assert.equal(events[0].client_id, 'api1');
    assert.equal(events[0].token_jti, decodeJwt(tok.token).jti);

    const other = randomBytes(16).toString('hex');
    // version 00 with a flag it does not define: deputy's propagator would refuse it too
    await obtainTxnToken({ ...api1(), fetch: f }, await userToken(d), { traceparent: `00-${other}-${randomBytes(8).toString('hex')}-04`, tracestate: 'congo=t61rcWkgMzE' });
    assert.equal(sent[1].get('traceparent'), null);
    assert.equal(sent[1].get('tracestate'), null);
    assert.deepEqual(auditByTrace(d, other), []);
  });

  test('fail/obtain: another audience than the trust domain is invalid_target', async () => {
    const t0 = await userToken(d);
    const e = await obtainTxnToken(api1(), t0, { trustDomain: 'spiffe://other.example' }).catch((x) => x);
    assert.ok(e instanceof ExchangeError);
    assert.equal(e.error, 'invalid_target');
    assert.equal(e.status, 400);
  });

  test('fail/obtain: a client none of whose policies lists txn_token is invalid_request; one with no policy unauthorized_client', async () => {
    const t0 = await userToken(d);
    const e = await obtainTxnToken({ issuer: d.issuer, clientId: 'api2', clientSecret: 'api2-secret' }, t0, {}).catch((x) => x);
    assert.ok(e instanceof ExchangeError, String(e));
    assert.equal(e.error, 'invalid_request');
    assert.equal(e.status, 400);
    const n = await obtainTxnToken({ issuer: d.issuer, clientId: 'api3', clientSecret: 'api3-secret' }, t0, {}).catch((x) => x);
    assert.ok(n instanceof ExchangeError, String(n));
    assert.equal(n.error, 'unauthorized_client');
  });

  test('fail/obtain: a context that is not an object is refused before any request', async () => {
    let requests = 0;
    const f = async (input, init) => { requests++; return fetch(input, init); };
    await assert.rejects(obtainTxnToken({ ...api1(), fetch: f }, 't', { context: ['x'] }), (e) => e instanceof ExchangeError && /not a JSON object/.test(e.message));
    assert.equal(requests, 0);
  });

  test('ok/obtain-dpop: a bound subject token; the request proves the key, the txn token is not bound', async () => {
    const pair = await generateKeyPair('ES256');
    const proof = await createProof({ key: pair, method: 'POST', url: d.tokenEndpoint });
    const bound = await userToken(d, { DPoP: proof });
    assert.ok(decodeJwt(bound).cnf?.jkt, 'subject token is bound');
    const bearer = await obtainTxnToken(api1(), bound, {}).catch((x) => x);
    assert.ok(bearer instanceof ExchangeError && bearer.error === 'invalid_request', String(bearer));
    const tok = await obtainTxnToken({ ...api1(), dpopKey: pair }, bound, { scopes: 'payments:read' });
    assert.equal(tok.tokenType, 'N_A');
    const p = await verifier.verify(tok.token);
    assert.equal(p.claims.cnf, undefined);
    assert.deepEqual(p.scopes, ['payments:read']);
  });

  // The TypeScript twin of Go's TestTxnVerifyRejects.
  describe('verify refuses', () => {
    let key;
    let good;
    before(() => {
      key = deputyKey(d);
      const now = Math.floor(Date.now() / 1000);
      good = () => ({
        iss: d.issuer, sub: 'alice', aud: TRUST_DOMAIN, txn: 'txn-1', scope: 'payments:write', jti: 'j1',
        iat: now, exp: now + 60, tctx: { payment: 'p-42' }, rctx: { req_ip: '192.0.2.7', req_wl: 'payments' },
      });
    });
    const hdr = (extra = {}) => ({ alg: 'ES256', kid: key.kid, typ: 'txntoken+jwt', ...extra });
    const signed = (claims, extra) => compact(hdr(extra), claims, key.key);

    test('ok/forged-with-deputy-key: the helper signs tokens deputy\'s JWKS verifies', async () => {
      const p = await verifier.verify(signed(good()));
      assert.equal(p.subject, 'alice');
      assert.deepEqual(p.requestContext, { req_ip: '192.0.2.7', req_wl: 'payments' });
    });

    for (const typ of ['application/txntoken+jwt', 'TXNTOKEN+JWT']) {
      test(`ok/typ-${typ}: the media type and any case are accepted`, async () => {
        const claims = { ...good() };
        delete claims.tctx;
        const p = await verifier.verify(signed(claims, { typ }));
        assert.equal(p.context, undefined);
      });
    }

    const cases = [
      ['fail/empty', () => '', /token is empty/],
      ['fail/malformed-not-compact', () => 'a.b.c.d', /not a compact JWS/],
      ['fail/malformed-header', () => '!!.e30.e30', /header is malformed/],
      ['fail/malformed-payload', () => signed('not json'), /claims are malformed/],
      ['fail/payload-not-object', () => signed('[1]'), /claims are malformed/],
      ['fail/no-kid', () => compact(hdr({ kid: undefined }), good(), key.key), /names no key \(kid\)/],
      ['fail/alg-not-the-keys', () => compact(hdr({ alg: 'PS256' }), good(), key.key), /algorithm does not match its key/],
      ['fail/too-large', () => signed({ ...good(), pad: 'x'.repeat(17_000) }), /too large/],
      ['fail/typ-jwt', () => signed(good(), { typ: 'JWT' }), /typ must be txntoken\+jwt/],
      ['fail/typ-missing', () => signed(good(), { typ: undefined }), /typ must be txntoken\+jwt/],
      ['fail/other-issuer', () => signed({ ...good(), iss: 'https://evil.example' }), /another issuer/],
      ['fail/aud-array', () => signed({ ...good(), aud: [TRUST_DOMAIN] }), /aud is not a single string/],
      ['fail/aud-array-with-another', () => signed({ ...good(), aud: [TRUST_DOMAIN, 'https://api1.example'] }), /aud is not a single string/],
      ['fail/aud-missing', () => signed({ ...good(), aud: undefined }), /another trust domain/],
      ['fail/service-audience', () => signed({ ...good(), aud: 'https://api1.example' }), /another trust domain/],
      ['fail/expired', () => signed({ ...good(), exp: Math.floor(Date.now() / 1000) - 6 }), /expired/],
      ['fail/missing-exp', () => signed({ ...good(), exp: undefined }), /no expiry/],
      ['fail/missing-iat', () => signed({ ...good(), iat: undefined }), /no issue time/],
      ['fail/iat-in-future', () => signed({ ...good(), iat: Math.floor(Date.now() / 1000) + 60 }), /issued in the future/],
      ['fail/nbf-in-future', () => signed({ ...good(), nbf: Math.floor(Date.now() / 1000) + 60 }), /not valid yet/],
      ['fail/missing-txn', () => signed({ ...good(), txn: undefined }), /no transaction id/],
      ['fail/empty-txn', () => signed({ ...good(), txn: '' }), /no transaction id/],
      ['fail/missing-sub', () => signed({ ...good(), sub: undefined }), /no subject/],
      ['fail/tctx-not-object', () => signed({ ...good(), tctx: 'x' }), /claims are malformed/],
      ['fail/tctx-null', () => signed({ ...good(), tctx: null }), /claims are malformed/],
      ['fail/rctx-not-object', () => signed({ ...good(), rctx: ['192.0.2.7'] }), /claims are malformed/],
      ['fail/rctx-field-type', () => signed({ ...good(), rctx: { req_ip: 7 } }), /claims are malformed/],
      ['fail/unknown-kid', () => compact(hdr({ kid: 'not-deputys' }), good(), key.key), /key deputy does not publish/],
      ['fail/another-key-deputy-kid', () => compact(hdr(), good(), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), /signature is invalid/],
      ['fail/alg-none', () => compact(hdr({ alg: 'none' }), good()), /algorithm is not allowed/],
      ['fail/alg-hs256', () => compact(hdr({ alg: 'HS256' }), good(), key.key), /algorithm is not allowed/],
      ['fail/jku-header', () => signed(good(), { jku: 'https://evil.example/jwks' }), /carries jku/],
      ['fail/x5u-header', () => signed(good(), { x5u: 'https://evil.example/cert' }), /carries x5u/],
      ['fail/jwk-header', () => signed(good(), { jwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } }), /carries jwk/],
      ['fail/crit-header', () => signed(good(), { crit: ['txn'], txn: 'x' }), /carries crit/],
      ['fail/x5c-header', () => signed(good(), { x5c: ['MIIB'] }), /carries x5c/],
    ];
    for (const [name, token, want] of cases) {
      test(name, async () => {
        await assert.rejects(verifier.verify(token()), (e) => assertTxnError(e, 401, 'invalid_token', want));
      });
    }

    test('fail/typ-access-token-deputy-issued: an access token presented as a transaction token', async () => {
      const at = await userToken(d);
      assert.equal(decodeProtectedHeader(at).typ, 'at+jwt');
      await assert.rejects(verifier.verify(at), (e) => assertTxnError(e, 401, 'invalid_token', /^token is not a transaction token \(typ must be txntoken\+jwt\)$/));
    });

    test('fail/other-trust-domain: a deputy-issued token checked for another trust domain', async () => {
      const tok = await obtainTxnToken(api1(), await userToken(d), {});
      const other = createTxnVerifier({ issuer: d.issuer, trustDomain: 'spiffe://other.example' });
      await assert.rejects(other.verify(tok.token), (e) => assertTxnError(e, 401, 'invalid_token', /another trust domain/));
    });

    test('fail/expired-deputy-issued: past exp plus the 5 s tolerance; within it still accepted', async () => {
      const tok = await obtainTxnToken(api1(), await userToken(d), {});
      const exp = decodeJwt(tok.token).exp * 1000;
      const within = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, now: () => exp + 4_000 });
      assert.equal((await within.verify(tok.token)).token, tok.token);
      const late = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, now: () => exp + 5_000 });
      await assert.rejects(late.verify(tok.token), (e) => assertTxnError(e, 401, 'invalid_token', /token is expired/));
    });

    test('fail/deputy-unreachable: 503 temporarily_unavailable, by discovery and by jwksUri', async () => {
      const tok = await obtainTxnToken(api1(), await userToken(d), {});
      const port = await closedPort();
      const noJWKS = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, jwksUri: `http://127.0.0.1:${port}/jwks` });
      await assert.rejects(noJWKS.verify(tok.token), (e) => assertTxnError(e, 503, 'temporarily_unavailable', /signing keys cannot be fetched/));
      const noDeputy = createTxnVerifier({ issuer: `http://127.0.0.1:${port}`, trustDomain: TRUST_DOMAIN });
      // As Go's: one description for both; the cause says which document failed.
      await assert.rejects(noDeputy.verify(tok.token), (e) => assertTxnError(e, 503, 'temporarily_unavailable', /signing keys cannot be fetched/) &&
        /oauth-authorization-server/.test(String(e.cause?.message ?? e.cause)));
    });

    test('ok/config: bad configurations are refused', () => {
      assert.throws(() => createTxnVerifier({ issuer: d.issuer }), /trustDomain is required/);
      assert.throws(() => createTxnVerifier({ issuer: 'nope', trustDomain: TRUST_DOMAIN }), /issuer must be an absolute/);
      assert.throws(() => createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, clockTolerance: -1 }), /must not be negative/);
      assert.throws(() => createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, clockTolerance: 3_600_000 }), /at most 5 min/);
      assert.throws(() => createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, timeout: 0 }), /timeout must be positive/);
      assert.throws(() => createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, jwksUri: 'file:///etc/jwks' }), /jwksUri must be an absolute/);
    });
  });

  // The express and fastify adapters, and authenticateTxn they share.
  describe('middleware', () => {
    let servers = [];
    let good;
    let access;
    let down;
    const principalOf = (p) => (p ? { txn: p.txn, sub: p.subject, scopes: p.scopes, context: p.context, rctx: p.requestContext } : null);

    async function listen(app, kind) {
      if (kind === 'fastify') {
        await app.listen({ port: 0, host: '127.0.0.1' });
        servers.push(() => app.close());
        return `http://127.0.0.1:${app.server.address().port}`;
      }
      const s = await new Promise((ok) => { const srv = app.listen(0, '127.0.0.1', () => ok(srv)); });
      servers.push(() => new Promise((ok) => s.close(ok)));
      return `http://127.0.0.1:${s.address().port}`;
    }

    function expressApp(v) {
      const app = express();
      app.get('/pay', expressTxn(v), (req, res) => res.json(principalOf(req.txn)));
      return app;
    }

    function fastifyApp(v) {
      const app = Fastify();
      app.get('/pay', { preHandler: fastifyTxn(v) }, async (request) => principalOf(request.txn));
      return app;
    }

    before(async () => {
      const t0 = await userToken(d);
      good = (await obtainTxnToken(api1(), t0, { scopes: ['payments:write'], context: { payment_id: 'pay_7' } })).token;
      access = t0;
      down = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, jwksUri: `http://127.0.0.1:${await closedPort()}/jwks` });
    });
    after(async () => { for (const s of servers) await s(); });

    for (const [kind, make] of [['express', expressApp], ['fastify', fastifyApp]]) {
      test(`ok/${kind}: 200 with the principal`, async () => {
        const base = await listen(make(verifier), kind);
        const r = await fetch(`${base}/pay`, { headers: { 'Txn-Token': good } });
        assert.equal(r.status, 200);
        const body = await r.json();
        assert.equal(body.sub, 'web-app');
        assert.deepEqual(body.scopes, ['payments:write']);
        assert.deepEqual(body.context, { payment_id: 'pay_7' });
        assert.deepEqual(body.rctx, { req_ip: '127.0.0.1', req_wl: 'api1' });
        assert.equal(body.txn, decodeJwt(good).txn);
      });

      test(`fail/${kind}: no header is 401 invalid_request with the realm challenge`, async () => {
        const base = await listen(make(verifier), kind);
        const r = await fetch(`${base}/pay`);
        assert.equal(r.status, 401);
        assert.equal(r.headers.get('www-authenticate'), `Txn-Token realm="${TRUST_DOMAIN}"`);
        assert.equal(r.headers.get('cache-control'), 'no-store');
        assert.match(r.headers.get('content-type'), /^application\/json/);
        assert.deepEqual(await r.json(), { error: 'invalid_request', error_description: 'request has no Txn-Token header' });
      });

      test(`fail/${kind}: two headers are 401 invalid_request`, async () => {
        const base = await listen(make(verifier), kind);
        const h = new Headers();
        h.append('Txn-Token', good);
        h.append('Txn-Token', good);
        const r = await fetch(`${base}/pay`, { headers: h });
        assert.equal(r.status, 401);
        assert.equal(r.headers.get('www-authenticate'), `Txn-Token realm="${TRUST_DOMAIN}"`);
        assert.deepEqual(await r.json(), { error: 'invalid_request', error_description: 'request has more than one Txn-Token header' });
      });

      test(`fail/${kind}: an access token is 401 invalid_token with its description`, async () => {
        const base = await listen(make(verifier), kind);
        const r = await fetch(`${base}/pay`, { headers: { 'Txn-Token': access } });
        assert.equal(r.status, 401);
        const desc = 'token is not a transaction token (typ must be txntoken+jwt)';
        assert.equal(r.headers.get('www-authenticate'), `Txn-Token error="invalid_token", error_description="${desc}"`);
        assert.deepEqual(await r.json(), { error: 'invalid_token', error_description: desc });
      });

      test(`fail/${kind}: deputy unreachable is 503 temporarily_unavailable, no challenge`, async () => {
        const base = await listen(make(down), kind);
        const r = await fetch(`${base}/pay`, { headers: { 'Txn-Token': good } });
        assert.equal(r.status, 503);
        assert.equal(r.headers.get('www-authenticate'), null);
        assert.equal((await r.json()).error, 'temporarily_unavailable');
      });

      test(`ok/${kind}: optional passes a request without the header, but checks one that is there`, async () => {
        const base = await listen(make(createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, optional: true })), kind);
        const r = await fetch(`${base}/pay`);
        assert.equal(r.status, 200);
        assert.equal(await r.json(), null);
        const bad = await fetch(`${base}/pay`, { headers: { 'Txn-Token': 'a.b.c' } });
        assert.equal(bad.status, 401);
        assert.equal((await bad.json()).error, 'invalid_token');
      });
    }

    test('ok/authenticateTxn: fetch Headers and Node header objects', async () => {
      assert.equal((await authenticateTxn(verifier, new Headers({ 'txn-token': good }))).token, good);
      assert.equal((await authenticateTxn(verifier, { 'txn-token': ` ${good} ` })).token, good);
      await assert.rejects(authenticateTxn(verifier, { 'txn-token': [good, good] }), (e) => assertTxnError(e, 401, 'invalid_request', /more than one/));
      await assert.rejects(authenticateTxn(verifier, {}), (e) => assertTxnError(e, 401, 'invalid_request', /has no Txn-Token header/));
      await assert.rejects(authenticateTxn(verifier, { 'txn-token': '' }), (e) => assertTxnError(e, 401, 'invalid_token', /token is empty/));
      const r = txnErrorResponse(verifier, new Error('boom'));
      assert.equal(r.status, 500);
      assert.equal(JSON.parse(r.body).error, 'server_error');
    });
  });
});

describe('JWKS refetch on an unknown kid', () => {
  let d;
  before(async () => { d = await startDeputy(txnConfig()); });
  after(async () => { await d?.stop(); });

  test('ok/rotated-key: a kid published after the first fetch is found by a refetch, at most once per 30 s', async () => {
    const f = counting();
    const clk = clock();
    const v = createTxnVerifier({ issuer: d.issuer, trustDomain: TRUST_DOMAIN, fetch: f.fetch, now: clk.now });
    const tok = await obtainTxnToken({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret' }, await userToken(d), {});
    await v.verify(tok.token);
    assert.equal(f.counts().jwks, 1);

    const fresh = await rotate(d);
    const now = Math.floor(Date.now() / 1000);
    const forged = compact({ alg: 'ES256', kid: fresh.kid, typ: 'txntoken+jwt' },
      { iss: d.issuer, sub: 'alice', aud: TRUST_DOMAIN, txn: 'txn-2', iat: now, exp: now + 60 }, fresh.key);

    const steps = [
      ['fail/unknown-kid-just-after-fetch', 0, forged, false, 1],
      ['fail/unknown-kid-again-within-30s', 29_000, forged, false, 1],
      ['ok/old-kid-still-cached', 0, tok.token, true, 1],
      ['ok/unknown-kid-refetches-after-30s', 1_000, forged, true, 2],
      ['ok/new-kid-now-cached', 0, forged, true, 2],
      ['ok/old-kid-still-published', 0, tok.token, true, 2],
    ];
    for (const [name, advance, token, ok, fetches] of steps) {
      clk.add(advance);
      if (ok) await v.verify(token);
      else await assert.rejects(v.verify(token), (e) => assertTxnError(e, 401, 'invalid_token', /key deputy does not publish/));
      assert.equal(f.counts().jwks, fetches, name);
    }
    assert.equal(f.counts().metadata, 1);
  });
});

// rotate runs `deputy keys rotate --publish-for publishFor` on d's database, as an
// operator does, waits until d publishes the new key and returns it (deputyKey's
// form). deputy signs with it once publishFor has passed.
async function rotate(d, publishFor = '1m') {
  const old = deputyKey(d);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_')));
  execFileSync(deputyBinary(), ['keys', 'rotate', '--config', join(d.dir, 'deputy.json.yaml'), '--publish-for', publishFor], { env, stdio: 'pipe' });
  const fresh = deputyKey(d);
  assert.notEqual(fresh.kid, old.kid);
  // deputy reads its keys from the database every 5 s: wait until it publishes the new one.
  for (const deadline = Date.now() + 15_000; ;) {
    const { keys } = await (await fetch(`${d.issuer}/jwks`)).json();
    if (keys.some((k) => k.kid === fresh.kid)) break;
    assert.ok(Date.now() < deadline, 'deputy did not publish the rotated key in 15 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return fresh;
}

// Verifier.txn: the access token verifier and the transaction token verifier share
// one key cache (Go's Verifier.Txn).
describe('one key cache for access and transaction tokens (Verifier.txn)', () => {
  const API1 = 'https://api1.example';
  let d;
  before(async () => { d = await startDeputy(txnConfig()); });
  after(async () => { await d?.stop(); });
  const api1 = () => ({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret' });

  test('ok/one-fetch-serves-both: either order, and concurrently', async () => {
    const at = await userToken(d);
    const tt = (await obtainTxnToken(api1(), at, { scopes: 'payments:read' })).token;
    for (const order of ['access-first', 'txn-first', 'concurrent']) {
      const f = counting();
      const v = createVerifier({ issuer: d.issuer, audience: API1, fetch: f.fetch });
      const t = v.txn({ trustDomain: TRUST_DOMAIN });
      if (order === 'access-first') {
        assert.equal((await v.verify(at)).subject, 'web-app');
        assert.equal((await t.verify(tt)).subject, 'web-app');
      } else if (order === 'txn-first') {
        assert.equal((await t.verify(tt)).subject, 'web-app');
        assert.equal((await v.verify(at)).subject, 'web-app');
      } else {
        await Promise.all([...Array.from({ length: 20 }, () => v.verify(at)), ...Array.from({ length: 20 }, () => t.verify(tt))]);
      }
      assert.deepEqual(f.counts(), { jwks: 1, metadata: 1 }, order);
      assert.equal(t.issuer, d.issuer);
      assert.equal(t.trustDomain, TRUST_DOMAIN);
      assert.equal(t.optional, false);
    }
  });

  test('ok/txn-config: the access verifier\'s issuer and clock; optional and clockTolerance of its own; bad config refused', async () => {
    const tt = (await obtainTxnToken(api1(), await userToken(d), {})).token;
    const exp = decodeJwt(tt).exp * 1000;
    const v = createVerifier({ issuer: d.issuer, audience: API1, now: () => exp + 1_500 });
    await v.txn({ trustDomain: TRUST_DOMAIN, clockTolerance: 2_000 }).verify(tt);
    await assert.rejects(v.txn({ trustDomain: TRUST_DOMAIN, clockTolerance: 1_000 }).verify(tt),
      (e) => assertTxnError(e, 401, 'invalid_token', /token is expired/));
    assert.equal(v.txn({ trustDomain: TRUST_DOMAIN, optional: true }).optional, true);
    assert.equal(await authenticateTxn(v.txn({ trustDomain: TRUST_DOMAIN, optional: true }), {}), undefined);
    assert.throws(() => v.txn({}), /trustDomain is required/);
    assert.throws(() => v.txn({ trustDomain: TRUST_DOMAIN, clockTolerance: 3_600_000 }), /at most 5 min/);
  });

  test('ok/rotation-seen-by-both: the kid a txn token made the cache fetch verifies the access token deputy signs with it, with no fetch', async () => {
    const f = counting();
    const clk = clock();
    const v = createVerifier({ issuer: d.issuer, audience: API1, fetch: f.fetch, now: clk.now });
    const t = v.txn({ trustDomain: TRUST_DOMAIN });
    const at0 = await userToken(d);
    await v.verify(at0);
    await t.verify((await obtainTxnToken(api1(), at0, {})).token);
    assert.equal(f.counts().jwks, 1);

    const fresh = await rotate(d, '0s');
    let at1;
    for (const deadline = Date.now() + 15_000; ;) { // deputy signs with the new key once it has reloaded it
      at1 = await userToken(d);
      if (decodeProtectedHeader(at1).kid === fresh.kid) break;
      assert.ok(Date.now() < deadline, 'deputy did not sign with the rotated key in 15 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    const tt1 = (await obtainTxnToken(api1(), at1, {})).token;
    assert.equal(decodeProtectedHeader(tt1).kid, fresh.kid);

    // Within 30 s of the fetch neither refetches; the refusal of one holds back the other too.
    await assert.rejects(t.verify(tt1), (e) => assertTxnError(e, 401, 'invalid_token', /key deputy does not publish/));
    await assert.rejects(v.verify(at1), (e) => e.code === 'invalid_token' && /key deputy does not publish/.test(e.description));
    assert.equal(f.counts().jwks, 1);
    clk.add(30_000);
    // The transaction token verifier fetches the new key; the access token verifier finds it, no fetch.
    assert.equal((await t.verify(tt1)).subject, 'web-app');
    assert.equal(f.counts().jwks, 2);
    assert.equal((await v.verify(at1)).subject, 'web-app');
    assert.equal((await v.verify(at0)).subject, 'web-app', 'the old key is still published');
    assert.deepEqual(f.counts(), { jwks: 2, metadata: 1 });
  });

  test('fail/keys-unreachable: both 503, by discovery, by jwksUri and past the max-age of a fetched set', async (t) => {
    const at = await userToken(d);
    const tt = (await obtainTxnToken(api1(), at, {})).token;
    const port = await closedPort();
    const both503 = async (v, tv) => {
      const ea = await v.verify(at).catch((e) => e);
      assert.equal(ea.code, 'temporarily_unavailable', String(ea));
      assert.equal(ea.status, 503);
      assert.equal(ea.description, "deputy's signing keys cannot be fetched");
      await assert.rejects(tv.verify(tt), (e) => assertTxnError(e, 503, 'temporarily_unavailable', /^deputy's signing keys cannot be fetched$/));
    };
    await t.test('fail/issuer-unreachable', async () => {
      const v = createVerifier({ issuer: `http://127.0.0.1:${port}`, audience: API1 });
      await both503(v, v.txn({ trustDomain: TRUST_DOMAIN }));
    });
    await t.test('fail/jwks-unreachable', async () => {
      const v = createVerifier({ issuer: d.issuer, audience: API1, jwksUri: `http://127.0.0.1:${port}/jwks` });
      await both503(v, v.txn({ trustDomain: TRUST_DOMAIN }));
    });
    await t.test('fail/expired-set-deputy-down: one fetch tried for both, then 503 for both', async () => {
      let down = false;
      const f = counting(() => down);
      const clk = clock();
      const v = createVerifier({ issuer: d.issuer, audience: API1, fetch: f.fetch, now: clk.now });
      // tt lives 60 s; the tolerance keeps it valid by the clock moved ahead 91 s.
      const tv = v.txn({ trustDomain: TRUST_DOMAIN, clockTolerance: 120_000 });
      await v.verify(at);
      await tv.verify(tt);
      down = true;
      clk.add(61_000); // deputy serves its JWKS with max-age 60
      await both503(v, tv);
      assert.equal(f.counts().jwks, 2, 'the expired set was fetched again once, for both');
      down = false;
      clk.add(30_000);
      await v.verify(at);
      await tv.verify(tt);
      assert.equal(f.counts().jwks, 3);
    });
  });
});

describe('forwardTxn', () => {
  let server;
  let port;
  before(async () => {
    server = http.createServer((req, res) => { res.end(JSON.stringify({ txn: req.headers['txn-token'] ?? null })); });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    port = server.address().port;
  });
  after(() => new Promise((ok) => server.close(ok)));

  test('ok/listed-host: the header arrives unchanged; an unlisted host gets none', async () => {
    const hosts = [`127.0.0.1:${port}`];
    const listed = `http://127.0.0.1:${port}/ledger`;
    const r1 = await fetch(listed, forwardTxn({ headers: { accept: 'application/json' } }, 'tok.en.x', listed, hosts));
    assert.deepEqual(await r1.json(), { txn: 'tok.en.x' });
    // The same server by another name is another host: not listed.
    const unlisted = `http://localhost:${port}/ledger`;
    const r2 = await fetch(unlisted, forwardTxn({ headers: { accept: 'application/json' } }, 'tok.en.x', unlisted, hosts));
    assert.deepEqual(await r2.json(), { txn: null });
  });

  // The host rule of forwardTxn's doc comment: an entry is read as the host of a URL
  // of the request's scheme (lower case, no default port), then compared exactly.
  const hostCases = [
    ['ok/same-host', 'https://ledger.example/x', ['ledger.example'], true],
    ['ok/case-insensitive', 'https://LEDGER.example/x', ['ledger.EXAMPLE'], true],
    ['ok/http-entry-with-default-port', 'http://ledger/x', ['ledger:80'], true],
    ['ok/http-url-with-default-port', 'http://ledger:80/x', ['ledger'], true],
    ['ok/http-both-with-default-port', 'http://ledger:80/x', ['LEDGER:80'], true],
    ['ok/https-entry-with-default-port', 'https://ledger/x', ['ledger:443'], true],
    ['ok/https-url-with-default-port', 'https://ledger:443/x', ['ledger'], true],
    ['ok/other-port', 'https://ledger.example:8443/x', ['ledger.example:8443'], true],
    ['ok/443-is-no-default-for-http', 'http://ledger:443/x', ['ledger:443'], true],
    ['ok/one-of-several', 'https://fraud/x', ['ledger', 'fraud:443'], true],
    ['ok/ipv6', 'http://[::1]:8080/x', ['[::1]:8080'], true],
    ['ok/ipv6-canonical-form-and-default-port', 'http://[::1]/x', ['[0:0::1]:80'], true],
    ['ok/idn-ascii-form', 'https://xn--bcher-kva.example/x', ['BÜCHER.example'], true],
    ['fail/http-default-port-is-not-https', 'https://ledger/x', ['ledger:80'], false],
    ['fail/https-default-port-is-not-http', 'http://ledger/x', ['ledger:443'], false],
    ['fail/url-port-not-listed', 'https://ledger.example:8443/x', ['ledger.example'], false],
    ['fail/listed-port-not-in-url', 'https://ledger.example/x', ['ledger.example:8443'], false],
    ['fail/suffix-of-another-host', 'https://ledger.example.evil.com/x', ['ledger.example'], false],
    ['fail/other-ipv6-port', 'http://[::1]:8081/x', ['[::1]:8080'], false],
  ];
  for (const [name, url, hosts, sent] of hostCases) {
    test(`forwardTxn host/${name}`, () => {
      assert.equal(forwardTxn(new Headers(), 't', url, hosts).get('txn-token'), sent ? 't' : null);
    });
  }

  for (const entry of ['', 'https://ledger', 'ledger/x', 'ledger?x', 'ledger#x', 'user@ledger', 'led ger', 'ledger:99999', 'ledger:x']) {
    test(`fail/forwardTxn bad entry ${JSON.stringify(entry)}: a TypeError, also when other entries match`, () => {
      assert.throws(() => forwardTxn(new Headers(), 't', 'https://ledger/x', ['ledger', entry]), (e) => e instanceof TypeError && /is not a host or host:port/.test(e.message));
    });
  }

  test('ok/never-overwrites-nor-invents; the caller\'s init is not changed', () => {
    const init = { method: 'POST', headers: { 'Txn-Token': 'theirs' } };
    const out = forwardTxn(init, 'mine', 'https://ledger.example/', ['ledger.example']);
    assert.equal(out.headers.get('txn-token'), 'theirs');
    assert.equal(out.method, 'POST');
    assert.equal(forwardTxn(undefined, undefined, 'https://ledger.example/', ['ledger.example']).headers.get('txn-token'), null);
    const mine = { headers: { a: 'b' } };
    const added = forwardTxn(mine, 'mine', 'https://ledger.example/', ['ledger.example']);
    assert.equal(added.headers.get('txn-token'), 'mine');
    assert.deepEqual(mine, { headers: { a: 'b' } });
  });

  test('fail/no-hosts: refused, nothing sent', () => {
    assert.throws(() => forwardTxn(undefined, 't', 'https://ledger.example/', []), /no hosts/);
  });
});
