// createExchanger against a real deputy: web-app's token for api1 is exchanged by
// api1 for api2 (RFC 8693), cached, shared, refused, and DPoP-bound.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { decodeJwt, exportJWK, calculateJwkThumbprint, generateKeyPair } from 'jose';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startDeputy, clientCredentials, deputyBinary } from './deputy.mjs';
import { createExchanger, ExchangeError, normalizeScope, formEncode } from '../dist/exchange.js';
import { traceHeaders } from '../dist/trace.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
// A secret with characters client_secret_basic must form-encode (RFC 6749 §2.3.1):
// sent raw, the colon would split it and the space and plus would be misread.
const API1_SECRET = 'api1 secret:+%&/é';

function chainConfig(extra = {}) {
  return {
    audiences: [
      { id: 'https://api1.example', client: 'api1', scopes: ['payments:read', 'ledger:read', 'ledger:write'] },
      { id: 'https://api2.example', client: 'api2', scopes: ['ledger:read', 'ledger:write'] },
      { id: 'https://api3.example', scopes: ['fraud:check'] },
    ],
    clients: [
      { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
        scopes: ['payments:read', 'ledger:read', 'ledger:write'], audiences: ['https://api1.example'] },
      { id: 'api1', secret: API1_SECRET, grant_types: [TE], audiences: ['https://api1.example'] },
      { id: 'api2', secret: 'api2-secret', grant_types: [TE], audiences: ['https://api2.example'] },
    ],
    exchange: {
      policies: [
        { name: 'api1-to-api2', client: 'api1', audiences: ['https://api2.example'], scopes: ['ledger:read', 'ledger:write'] },
        { name: 'api2-to-api3', client: 'api2', audiences: ['https://api3.example'], scopes: ['fraud:check'] },
      ],
    },
    ...extra,
  };
}

// counting wraps fetch and counts the token requests (POST …/token) it sends.
function counting() {
  const c = { token: 0, all: 0 };
  c.fetch = async (input, init) => {
    c.all++;
    if ((init?.method ?? 'GET') === 'POST' && String(input).endsWith('/token')) c.token++;
    return fetch(input, init);
  };
  return c;
}

async function userToken(d) {
  return (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read ledger:write' })).access_token;
}

function audOf(claims) {
  return Array.isArray(claims.aud) ? claims.aud : [claims.aud];
}

describe('exchange against deputy', () => {
  let d;
  before(async () => { d = await startDeputy(chainConfig()); });
  after(async () => { await d?.stop(); });

  test('ok/exchange: a token for api2 acting for web-app, by discovery', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const before = Date.now();
    const tok = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(tok.tokenType, 'Bearer');
    assert.equal(tok.issuedTokenType, 'urn:ietf:params:oauth:token-type:access_token');
    assert.deepEqual(tok.scopes, ['ledger:read']);
    assert.ok(tok.expiresAt instanceof Date);
    const left = tok.expiresAt.getTime() - before;
    assert.ok(left > 290_000 && left <= 301_000, `expiresAt ${left} ms ahead, want about 5 min`);
    const claims = decodeJwt(tok.accessToken);
    assert.deepEqual(audOf(claims), ['https://api2.example']);
    assert.equal(claims.sub, 'web-app');
    assert.deepEqual(claims.act, { sub: 'api1' });
    assert.equal(claims.scope, 'ledger:read');
    assert.equal(claims.cnf, undefined);
    assert.equal(c.token, 1);
    assert.equal(c.all, 2, 'discovery, then the token request');
  });

  test('ok/cache-hit: a second exchange sends nothing; the caller gets its own copy', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, tokenEndpoint: d.tokenEndpoint, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const a = await x.exchange(t0, 'https://api2.example', 'ledger:read');
    a.scopes.push('changed');
    a.expiresAt.setTime(0);
    const b = await x.exchange(t0, 'https://api2.example', ['ledger:read', 'ledger:read']);
    assert.equal(c.token, 1);
    assert.equal(c.all, 1, 'tokenEndpoint set: no discovery');
    assert.equal(b.accessToken, a.accessToken);
    assert.deepEqual(b.scopes, ['ledger:read']);
    assert.ok(b.expiresAt.getTime() > Date.now());
  });

  test('ok/single-flight: 10 concurrent exchanges share one request', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const all = await Promise.all(Array.from({ length: 10 }, () => x.exchange(t0, 'https://api2.example', ['ledger:write', 'ledger:read'])));
    assert.equal(c.token, 1);
    assert.equal(new Set(all.map((t) => t.accessToken)).size, 1);
    assert.deepEqual(all[0].scopes, ['ledger:read', 'ledger:write']);
  });

  test('ok/keys: scopes, order aside, audience and subject token each make their own entry', async () => {
    const t0 = await userToken(d);
    const t0b = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const read = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    const write = await x.exchange(t0, 'https://api2.example', ['ledger:write']);
    const both = await x.exchange(t0, 'https://api2.example', ['ledger:write', 'ledger:read']);
    const bothAgain = await x.exchange(t0, 'https://api2.example', 'ledger:read ledger:write');
    const none = await x.exchange(t0, 'https://api2.example');
    const other = await x.exchange(t0b, 'https://api2.example', ['ledger:read']);
    assert.equal(c.token, 5);
    assert.deepEqual(decodeJwt(read.accessToken).scope, 'ledger:read');
    assert.deepEqual(decodeJwt(write.accessToken).scope, 'ledger:write');
    assert.equal(bothAgain.accessToken, both.accessToken);
    // no scope asked: deputy grants all the policy, api2 and the subject token allow
    assert.deepEqual(none.scopes, ['ledger:read', 'ledger:write']);
    assert.notEqual(other.accessToken, read.accessToken);
    assert.equal(new Set([read, write, both, none, other].map((t) => t.accessToken)).size, 5);
  });

  const refusals = [
    { name: 'fail/invalid_target: an audience no policy of api1 allows', audience: 'https://api3.example', scopes: ['fraud:check'],
      error: 'invalid_target', status: 400 },
    { name: 'fail/invalid_target: an unknown audience', audience: 'https://nowhere.example', scopes: undefined,
      error: 'invalid_target', status: 400 },
    { name: 'fail/invalid_scope: a scope api2 does not accept', audience: 'https://api2.example', scopes: ['payments:read'],
      error: 'invalid_scope', status: 400 },
    { name: 'fail/invalid_client: a wrong secret', audience: 'https://api2.example', scopes: ['ledger:read'], secret: 'wrong',
      error: 'invalid_client', status: 401 },
    { name: 'fail/invalid_client: the secret sent without form-encoding', audience: 'https://api2.example', scopes: ['ledger:read'],
      rawBasic: true, error: 'invalid_client', status: 401 },
    { name: 'fail/unauthorized_client: a client without the grant', audience: 'https://api2.example', scopes: ['ledger:read'],
      client: 'web-app', secret: 'web-app-secret', error: 'unauthorized_client', status: 400 },
    { name: 'fail/invalid_request: a subject token that is no token', audience: 'https://api2.example', scopes: ['ledger:read'],
      subject: 'not-a-token', error: 'invalid_request', status: 400 },
  ];
  for (const r of refusals) {
    test(r.name + ' (not cached)', async () => {
      const t0 = r.subject ?? await userToken(d);
      const c = counting();
      let f = c.fetch;
      if (r.rawBasic) {
        // client_secret_basic without RFC 6749 §2.3.1's encoding: deputy must refuse it,
        // which shows that the exchanger's encoding is what makes the secret work.
        f = (input, init) => c.fetch(input, { ...init, headers: { ...init.headers,
          authorization: 'Basic ' + Buffer.from(`api1:${API1_SECRET}`).toString('base64') } });
      }
      const x = createExchanger({ issuer: d.issuer, clientId: r.client ?? 'api1', clientSecret: r.secret ?? API1_SECRET, fetch: f });
      for (let i = 1; i <= 2; i++) {
        const err = await x.exchange(t0, r.audience, r.scopes).then(() => assert.fail('exchange succeeded'), (e) => e);
        assert.ok(err instanceof ExchangeError, `got ${err}`);
        assert.equal(err.error, r.error, err.message);
        assert.equal(err.status, r.status);
        assert.equal(err.retryable, false);
        assert.equal(typeof err.errorDescription, 'string');
        assert.equal(c.token, i, 'errors are not cached');
      }
    });
  }

  test('fail/refused exchanges shared by concurrent callers reach each of them', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const errs = await Promise.all(Array.from({ length: 5 }, () => x.exchange(t0, 'https://api2.example', ['payments:read']).catch((e) => e)));
    assert.equal(c.token, 1);
    for (const e of errs) assert.equal(e.error, 'invalid_scope');
    assert.equal(new Set(errs).size, 5, 'each caller its own error');
  });

  test('fail/abort: a caller that aborts stops waiting; the shared exchange goes on for the cache', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    const ac = new AbortController();
    const waiting = x.exchange(t0, 'https://api2.example', ['ledger:read'], { signal: ac.signal });
    const other = x.exchange(t0, 'https://api2.example', ['ledger:read']);
    ac.abort(new Error('gone'));
    await assert.rejects(waiting, /gone/);
    const tok = await other;
    assert.equal((await x.exchange(t0, 'https://api2.example', ['ledger:read'])).accessToken, tok.accessToken);
    assert.equal(c.token, 1);
  });

  test('fail/empty subject token: refused without a request', async () => {
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    await assert.rejects(x.exchange('', 'https://api2.example'), (e) => e instanceof ExchangeError && /empty subject token/.test(e.message));
    assert.equal(c.all, 0);
  });

  test('fail/discovery: an issuer that is not the one configured', async () => {
    const x = createExchanger({ issuer: d.issuer + '/', clientId: 'api1', clientSecret: API1_SECRET });
    await assert.rejects(x.exchange('t', 'https://api2.example'), (e) => e instanceof ExchangeError && /names issuer/.test(e.message) && !e.retryable);
  });

  test('ok/dpop: a bound exchange (token_type DPoP, cnf.jkt the key\'s thumbprint)', async () => {
    const t0 = await userToken(d);
    const pair = await generateKeyPair('ES256');
    const jkt = await calculateJwkThumbprint(await exportJWK(pair.publicKey), 'sha256');
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpopKey: pair, fetch: c.fetch });
    const tok = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(tok.tokenType, 'DPoP');
    const claims = decodeJwt(tok.accessToken);
    assert.deepEqual(claims.cnf, { jkt });
    assert.deepEqual(claims.act, { sub: 'api1' });
    assert.equal((await x.dpopKey()).jkt, jkt);
    // cached like a bearer token
    assert.equal((await x.exchange(t0, 'https://api2.example', ['ledger:read'])).accessToken, tok.accessToken);
    assert.equal(c.token, 1);
  });

  test('ok/dpop: true generates an ES256 key; bearer and bound tokens of one subject are apart', async () => {
    const t0 = await userToken(d);
    const bound = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpop: true });
    const key = await bound.dpopKey();
    assert.equal(key.alg, 'ES256');
    const tok = await bound.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(tok.tokenType, 'DPoP');
    assert.equal(decodeJwt(tok.accessToken).cnf.jkt, key.jkt);
    const bearer = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET });
    assert.equal(await bearer.dpopKey(), undefined);
    const b = await bearer.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(b.tokenType, 'Bearer');
  });

  test('fail/dpop: a bound subject token exchanged without a proof', async () => {
    // api1 got a bound token for api2; api2 exchanging it as a bearer request is
    // refused (binding survives every hop): invalid_request.
    const t0 = await userToken(d);
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpop: true });
    const bound = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    const api2 = createExchanger({ issuer: d.issuer, clientId: 'api2', clientSecret: 'api2-secret' });
    const err = await api2.exchange(bound.accessToken, 'https://api3.example').catch((e) => e);
    assert.ok(err instanceof ExchangeError);
    assert.equal(err.error, 'invalid_request');
    assert.match(err.errorDescription, /sender-constrained/);
    assert.equal(err.status, 400);
  });

  test('fail/dpop: a key that cannot sign proofs is refused before any request', async () => {
    const c = counting();
    const pair = await generateKeyPair('ES384');
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpopKey: pair, fetch: c.fetch });
    await assert.rejects(x.exchange('t', 'https://api2.example'), (e) => e instanceof ExchangeError && /dpopKey: .*not EC P-256, Ed25519 or RSA/.test(e.message));
    assert.equal(c.all, 0);
  });
});

describe('exchange: expiry margin', () => {
  let d;
  before(async () => { d = await startDeputy(chainConfig({ tokens: { access_token_ttl: '6s' } })); });
  after(async () => { await d?.stop(); });

  test('ok/refresh-before: reused until refreshBefore ahead of expiry, then exchanged again', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch, refreshBefore: 2_500 });
    const a = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    const left = a.expiresAt.getTime() - Date.now();
    // never outliving its subject token, it may lose a second to rounding: 3 s at least
    assert.ok(left > 2_600 && left <= 6_000, `expires in ${left} ms`);
    const b = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(b.accessToken, a.accessToken);
    assert.equal(c.token, 1);
    await new Promise((r) => setTimeout(r, a.expiresAt.getTime() - 2_500 - Date.now() + 50));
    const fresh = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(c.token, 2);
    assert.notEqual(fresh.accessToken, a.accessToken);
  });

  test('ok/no-cache: a token due for refresh when it arrives is not cached (default 30 s margin)', async () => {
    const t0 = await userToken(d);
    const c = counting();
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: c.fetch });
    await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(c.token, 2);
  });
});

describe('exchange: DPoP nonce', () => {
  let d;
  before(async () => { d = await startDeputy(chainConfig({ dpop: { require_nonce: true } })); });
  after(async () => { await d?.stop(); });

  test('ok/use_dpop_nonce: asked once more with deputy\'s nonce, which is remembered', async () => {
    const t0 = await userToken(d);
    const seen = [];
    const c = counting();
    const f = async (input, init) => {
      const proof = init?.headers?.DPoP;
      const res = await c.fetch(input, init);
      if (proof) seen.push({ nonce: decodeJwt(proof).nonce, status: res.status, nonceHeader: res.headers.get('dpop-nonce') });
      return res;
    };
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpop: true, fetch: f });
    const tok = await x.exchange(t0, 'https://api2.example', ['ledger:read']);
    assert.equal(tok.tokenType, 'DPoP');
    assert.equal(decodeJwt(tok.accessToken).cnf.jkt, (await x.dpopKey()).jkt);
    assert.equal(c.token, 2);
    assert.equal(seen[0].nonce, undefined);
    assert.equal(seen[0].status, 400);
    assert.ok(seen[0].nonceHeader);
    assert.equal(seen[1].nonce, seen[0].nonceHeader);
    assert.equal(seen[1].status, 200);
    // the next exchange (another key of the cache) starts with the remembered nonce
    await x.exchange(t0, 'https://api2.example', ['ledger:write']);
    assert.equal(c.token, 3);
    assert.ok(seen[2].nonce);
    assert.equal(seen[2].status, 200);
  });

  test('fail/use_dpop_nonce: a nonce deputy keeps refusing is asked for once more, not forever', async () => {
    const t0 = await userToken(d);
    const c = counting();
    // Every proof goes out with a forged nonce: deputy answers use_dpop_nonce each time.
    const f = async (input, init) => {
      const res = await c.fetch(input, init);
      return res.status === 400
        ? new Response(await res.text(), { status: 400, headers: { 'content-type': 'application/json', 'dpop-nonce': 'forged-' + c.token } })
        : res;
    };
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, dpop: true, fetch: f });
    const err = await x.exchange(t0, 'https://api2.example', ['ledger:read']).catch((e) => e);
    assert.ok(err instanceof ExchangeError);
    assert.equal(err.error, 'use_dpop_nonce');
    assert.equal(c.token, 2);
  });
});

describe('exchange: deputy down', () => {
  test('fail/unreachable: a retryable ExchangeError with no status', async () => {
    const d = await startDeputy(chainConfig());
    const t0 = await userToken(d);
    const { issuer, tokenEndpoint } = d;
    await d.stop();
    const x = createExchanger({ issuer, tokenEndpoint, clientId: 'api1', clientSecret: API1_SECRET, timeout: 2_000 });
    const err = await x.exchange(t0, 'https://api2.example').catch((e) => e);
    assert.ok(err instanceof ExchangeError, String(err));
    assert.equal(err.retryable, true);
    assert.equal(err.status, undefined);
    assert.equal(err.error, undefined);
    const byDiscovery = createExchanger({ issuer, clientId: 'api1', clientSecret: API1_SECRET });
    const err2 = await byDiscovery.exchange(t0, 'https://api2.example').catch((e) => e);
    assert.ok(err2 instanceof ExchangeError && err2.retryable && /discovery/.test(err2.message), String(err2));
  });

  test('fail/5xx: retryable, with the status', async () => {
    const x = createExchanger({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'api1', clientSecret: 's',
      fetch: async () => new Response('{"error":"server_error","error_description":"database down"}', { status: 503 }) });
    const err = await x.exchange('t', 'https://api2.example').catch((e) => e);
    assert.equal(err.status, 503);
    assert.equal(err.error, 'server_error');
    assert.equal(err.errorDescription, 'database down');
    assert.equal(err.retryable, true);
  });

  test('fail/not JSON: an answer that is not OAuth JSON', async () => {
    const x = createExchanger({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'api1', clientSecret: 's',
      fetch: async () => new Response('<html>bad gateway</html>', { status: 502 }) });
    const err = await x.exchange('t', 'https://api2.example').catch((e) => e);
    assert.ok(err instanceof ExchangeError);
    assert.equal(err.status, 502);
    assert.equal(err.error, undefined);
    assert.equal(err.retryable, true);
    assert.match(err.message, /not a JSON object/);
  });
});

describe('exchange: answers that never end', () => {
  test('fail/endless body: only the first MiB is read', { timeout: 10_000 }, async () => {
    let pulled = 0;
    const chunk = new Uint8Array(64 << 10).fill(0x20);
    const x = createExchanger({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: 's',
      fetch: async () => new Response(new ReadableStream({ pull(c) { pulled++; c.enqueue(chunk); } }), { status: 200 }) });
    const err = await x.exchange('t', 'https://api2.example').catch((e) => e);
    assert.ok(err instanceof ExchangeError, String(err));
    assert.match(err.message, /not a JSON object/);
    assert.ok(pulled <= 20, `read ${pulled} chunks of 64 KiB`);
  });

  test('fail/timeout: a token endpoint that never answers is a retryable error after timeout', async () => {
    const sockets = [];
    const server = net.createServer((s) => sockets.push(s));
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const x = createExchanger({ tokenEndpoint: `http://127.0.0.1:${server.address().port}/token`, clientId: 'c', clientSecret: 's', timeout: 300 });
      const started = Date.now();
      const err = await x.exchange('t', 'https://api2.example').catch((e) => e);
      assert.ok(err instanceof ExchangeError, String(err));
      assert.equal(err.retryable, true);
      assert.equal(err.status, undefined);
      assert.ok(Date.now() - started < 3_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe('exchange: config and helpers', () => {
  const bad = [
    [{ clientSecret: 's', issuer: 'http://x' }, /clientId is required/],
    [{ clientId: 'c', issuer: 'http://x' }, /clientSecret is required/],
    [{ clientId: 'c', clientSecret: 's' }, /issuer or tokenEndpoint is required/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'ftp://x' }, /issuer must be an absolute http or https URL/],
    [{ clientId: 'c', clientSecret: 's', tokenEndpoint: 'http://x/#f' }, /tokenEndpoint must be an absolute http or https URL/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'http://x', refreshBefore: -1 }, /refreshBefore must not be negative/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'http://x', maxEntries: 0 }, /maxEntries must be at least 1/],
  ];
  for (const [cfg, want] of bad) {
    test(`fail/config: ${want.source}`, () => {
      assert.throws(() => createExchanger(cfg), (e) => e instanceof TypeError && want.test(e.message));
    });
  }

  test('ok/normalizeScope and formEncode', () => {
    assert.equal(normalizeScope(['b a', 'a', ' c ']), 'a b c');
    assert.equal(normalizeScope(undefined), '');
    assert.equal(formEncode('a b:+%&/é*~'), 'a+b%3A%2B%25%26%2F%C3%A9%2A~');
  });

  test('ok/bounded cache: the entry due soonest goes first', async () => {
    let n = 0;
    const x = createExchanger({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: 's', maxEntries: 2,
      fetch: async (_input, init) => {
        n++;
        const form = new URLSearchParams(init.body);
        // the later the audience in the alphabet, the longer its token lives
        const expiresIn = { a: 100, b: 200, c: 300 }[form.get('audience')];
        return Response.json({ access_token: `tok-${n}`, token_type: 'Bearer', expires_in: expiresIn,
          issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
      } });
    await x.exchange('t', 'a');
    await x.exchange('t', 'b');
    await x.exchange('t', 'c'); // evicts a, due soonest
    assert.equal(n, 3);
    await x.exchange('t', 'b');
    await x.exchange('t', 'c');
    assert.equal(n, 3);
    await x.exchange('t', 'a');
    assert.equal(n, 4);
  });
});

// A fresh W3C trace: its id and a version-00 traceparent naming it.
function newTrace() {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

// auditByTrace reads d's audit events of one trace id with `deputy audit query
// --trace-id … --json` on d's configuration, as an operator does.
function auditByTrace(d, traceId) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_')));
  const out = execFileSync(deputyBinary(), ['audit', 'query', '--config', join(d.dir, 'deputy.json.yaml'), '--trace-id', traceId, '--json'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

// recording wraps fetch and keeps the headers of each token request it sends.
function recording() {
  const r = { token: [] };
  r.fetch = async (input, init) => {
    if ((init?.method ?? 'GET') === 'POST' && String(input).endsWith('/token')) r.token.push(new Headers(init.headers));
    return fetch(input, init);
  };
  return r;
}

// The traceparents that are not sent, as OpenTelemetry's Go propagator (deputy's)
// refuses them: not W3C's form, upper-case hex, all-zero ids, version 00 with more
// after the flags or a flag it does not define, version ff.
function invalidTraceparents() {
  const t = randomBytes(16).toString('hex');
  const s = randomBytes(8).toString('hex');
  return [
    ['fail/garbage', 'not-a-traceparent', undefined],
    ['fail/version-00-unknown-flag', `00-${t}-${s}-04`, t],
    ['fail/version-00-flags-ff', `00-${t}-${s}-ff`, t],
    ['fail/upper-case', `00-${t.toUpperCase()}-${s}-01`, t],
    ['fail/zero-trace-id', `00-${'0'.repeat(32)}-${s}-01`, undefined],
    ['fail/zero-parent-id', `00-${t}-${'0'.repeat(16)}-01`, t],
    ['fail/version-00-with-more', `00-${t}-${s}-01-more`, t],
    ['fail/version-ff', `ff-${t}-${s}-01`, t],
    ['fail/short-trace-id', `00-${t.slice(2)}-${s}-01`, undefined],
  ];
}

test('traceHeaders: a valid version-00 traceparent and its tracestate only', () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.deepEqual(traceHeaders(tp), { traceparent: tp });
  assert.deepEqual(traceHeaders(` ${tp} `, ' congo=t61rcWkgMzE '), { traceparent: tp, tracestate: 'congo=t61rcWkgMzE' });
  assert.deepEqual(traceHeaders(tp, 'x'.repeat(513)), { traceparent: tp }, 'a tracestate over 512 characters is dropped');
  assert.deepEqual(traceHeaders(tp, 'a=b\r\nx: y'), { traceparent: tp }, 'a tracestate that is not printable ASCII is dropped');
  assert.deepEqual(traceHeaders(tp, ''), { traceparent: tp });
  for (const [name, bad] of invalidTraceparents()) assert.deepEqual(traceHeaders(bad, 'congo=t61rcWkgMzE'), {}, name);
  // Both defined flags are kept; a later version is sent as the version-00 header it
  // starts with, with the flags version 00 defines (W3C §3.2.4, as OpenTelemetry does).
  const both = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03';
  assert.deepEqual(traceHeaders(both), { traceparent: both });
  assert.deepEqual(traceHeaders('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'), { traceparent: tp });
  assert.deepEqual(traceHeaders('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff'), { traceparent: both });
  assert.deepEqual(traceHeaders(undefined, 'congo=t61rcWkgMzE'), {});
  assert.deepEqual(traceHeaders(null), {});
});

describe('trace context: the caller\'s traceparent to deputy and the next service', () => {
  let d;
  let server;
  let seen;
  let nextHop;
  before(async () => {
    d = await startDeputy(chainConfig());
    server = http.createServer((req, res) => {
      seen.push({ traceparent: req.headers.traceparent, tracestate: req.headers.tracestate, authorization: req.headers.authorization });
      res.end('{}');
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    nextHop = `http://127.0.0.1:${server.address().port}/ledger`;
  });
  after(async () => {
    await new Promise((ok) => server?.close(ok) ?? ok());
    await d?.stop();
  });

  const api1 = (fetchFn) => createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: API1_SECRET, fetch: fetchFn });

  test('ok/exchange: the token request carries traceparent and tracestate; deputy\'s audit event records the trace id', async () => {
    const { traceId, traceparent } = newTrace();
    const r = recording();
    const x = api1(r.fetch);
    const tok = await x.exchange(await userToken(d), 'https://api2.example', ['ledger:read'], { traceparent, tracestate: 'congo=t61rcWkgMzE' });
    assert.equal(r.token.length, 1);
    assert.equal(r.token[0].get('traceparent'), traceparent);
    assert.equal(r.token[0].get('tracestate'), 'congo=t61rcWkgMzE');
    const events = auditByTrace(d, traceId);
    const exchanged = events.filter((e) => e.type === 'token.exchanged');
    assert.equal(exchanged.length, 1, JSON.stringify(events));
    assert.equal(exchanged[0].client_id, 'api1');
    assert.equal(exchanged[0].trace_id, traceId);
    assert.equal(exchanged[0].token_jti, decodeJwt(tok.accessToken).jti);

    // A cached token makes no request: the second trace reaches deputy only with a new exchange.
    const second = newTrace();
    await x.exchange(await userToken(d), 'https://api2.example', ['ledger:read'], { traceparent: second.traceparent });
    assert.equal(r.token.length, 2);
    const t0 = await userToken(d);
    await x.exchange(t0, 'https://api2.example', ['ledger:read'], { traceparent: second.traceparent });
    await x.exchange(t0, 'https://api2.example', ['ledger:read'], { traceparent: newTrace().traceparent });
    assert.equal(r.token.length, 3, 'cached');
    assert.equal(auditByTrace(d, second.traceId).filter((e) => e.type === 'token.exchanged').length, 2);
  });

  test('ok/later-version: sent as version 00, and deputy records its trace id', async () => {
    const { traceId } = newTrace();
    const r = recording();
    await api1(r.fetch).exchange(await userToken(d), 'https://api2.example', ['ledger:read'], { traceparent: `01-${traceId}-00f067aa0ba902b7-01-future` });
    assert.equal(r.token[0].get('traceparent'), `00-${traceId}-00f067aa0ba902b7-01`);
    assert.equal(auditByTrace(d, traceId).filter((e) => e.type === 'token.exchanged').length, 1);
  });

  for (const [name, bad, traceId] of invalidTraceparents()) {
    test(`${name}: an invalid traceparent is not sent, nor its tracestate; deputy records a trace of its own`, async () => {
      const r = recording();
      const tok = await api1(r.fetch).exchange(await userToken(d), 'https://api2.example', ['ledger:read'], { traceparent: bad, tracestate: 'congo=t61rcWkgMzE' });
      assert.equal(r.token.length, 1);
      assert.equal(r.token[0].get('traceparent'), null);
      assert.equal(r.token[0].get('tracestate'), null);
      if (traceId) assert.deepEqual(auditByTrace(d, traceId), []);
      // deputy gave the request a trace id of its own.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_')));
      const jti = decodeJwt(tok.accessToken).jti;
      const lines = execFileSync(deputyBinary(), ['audit', 'query', '--config', join(d.dir, 'deputy.json.yaml'), '--client', 'api1', '--json'], { env }).toString()
        .split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).filter((e) => e.token_jti === jti);
      assert.equal(lines.length, 1);
      assert.match(lines[0].trace_id, /^[0-9a-f]{32}$/);
      assert.notEqual(lines[0].trace_id, traceId);
    });
  }

  test('ok/fetch: the next service and deputy see the trace; a traceparent the caller set itself is kept', async () => {
    const { traceId, traceparent } = newTrace();
    const r = recording();
    const x = api1(r.fetch);
    const t0 = await userToken(d);
    seen = [];
    const res = await x.fetch(t0, 'https://api2.example', 'ledger:read', nextHop, { traceparent, tracestate: 'congo=t61rcWkgMzE', headers: { accept: 'application/json' } });
    assert.equal(res.status, 200);
    assert.deepEqual(seen[0].traceparent, traceparent);
    assert.deepEqual(seen[0].tracestate, 'congo=t61rcWkgMzE');
    assert.match(seen[0].authorization, /^Bearer /);
    assert.equal(r.token[0].get('traceparent'), traceparent);
    assert.equal(auditByTrace(d, traceId).filter((e) => e.type === 'token.exchanged').length, 1);

    // The caller's instrumentation wrote its own traceparent (its own span): the next hop gets that one, and no tracestate of ours.
    const own = newTrace();
    seen = [];
    await x.fetch(t0, 'https://api2.example', 'ledger:read', nextHop, { traceparent, tracestate: 'congo=t61rcWkgMzE', headers: { traceparent: own.traceparent } });
    assert.equal(seen[0].traceparent, own.traceparent);
    assert.equal(seen[0].tracestate, undefined);

    // No trace given: none sent.
    seen = [];
    await x.fetch(t0, 'https://api2.example', 'ledger:read', nextHop);
    assert.equal(seen[0].traceparent, undefined);
  });

  test('fail/fetch-invalid: an invalid traceparent goes neither to deputy nor to the next service', async () => {
    const r = recording();
    const x = api1(r.fetch);
    for (const [name, bad] of invalidTraceparents()) {
      seen = [];
      await x.fetch(await userToken(d), 'https://api2.example', 'ledger:write', nextHop, { traceparent: bad, tracestate: 'congo=t61rcWkgMzE' });
      assert.equal(seen[0].traceparent, undefined, name);
      assert.equal(seen[0].tracestate, undefined, name);
      assert.equal(r.token.at(-1).get('traceparent'), null, name);
    }
  });
});
