// Server nonces for DPoP proofs at a service (RFC 9449 §9): createNonces makes
// the Go SDK's stateless nonces (the same bytes for the same key and time), and a
// verifier with dpopNonces refuses a proof without a fresh one (use_dpop_nonce,
// with a nonce in DPoP-Nonce), which the exchanger's fetch answers once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import express from 'express';
import { startDeputy, clientCredentials } from './deputy.mjs';
import {
  createNonces, createVerifier, createExchanger, createProof, generateDPoPKey, expressMiddleware, VerifyError,
  DEFAULT_NONCE_LIFETIME,
} from '../dist/index.js';

const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const T = 1765000000123; // ms
// Go's verify.NewNonces(key, 0) at time.UnixMilli(T): the same nonce, byte for byte.
const GO_NONCE = 'AAABmvIysnvhnplHcQFggxYfUT3R2384BhP2w7G5fAgFC939NXtysg';

describe('createNonces', () => {
  test('ok/go: the nonce Go\'s verify.Nonces makes for the same key and time', () => {
    assert.equal(createNonces(key, { now: () => T }).nonce(), GO_NONCE);
  });

  const cases = [
    { name: 'ok/fresh', nonce: GO_NONCE, at: T },
    { name: 'ok/at-the-end-of-its-lifetime', nonce: GO_NONCE, at: T + DEFAULT_NONCE_LIFETIME },
    { name: 'ok/made-within-the-skew-ahead', nonce: GO_NONCE, at: T - 5000 },
    { name: 'fail/stale', nonce: GO_NONCE, at: T + DEFAULT_NONCE_LIFETIME + 1, want: 'stale nonce' },
    { name: 'fail/from-the-future', nonce: GO_NONCE, at: T - 5001, want: 'stale nonce' },
    { name: 'fail/another-key', nonce: createNonces(new Uint8Array(32).fill(7), { now: () => T }).nonce(), at: T, want: 'not a nonce of this service' },
    { name: 'fail/none', nonce: '', at: T, want: 'not a nonce of this service' },
    { name: 'fail/tampered-time', nonce: 'AAABmvIysnzhnplHcQFggxYfUT3R2384BhP2w7G5fAgFC939NXtysg', at: T, want: 'not a nonce of this service' },
    { name: 'fail/truncated', nonce: GO_NONCE.slice(0, -2), at: T, want: 'not a nonce of this service' },
    { name: 'fail/padded', nonce: `${GO_NONCE}==`, at: T, want: 'not a nonce of this service' },
    { name: 'fail/not-base64url', nonce: GO_NONCE.replace('A', '+'), at: T, want: 'not a nonce of this service' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const n = createNonces(key, { now: () => c.at });
      if (c.want) assert.throws(() => n.check(c.nonce), { message: c.want });
      else n.check(c.nonce);
    });
  }

  test('ok/lifetime', () => {
    const n = createNonces(key, { lifetime: 1000, now: () => T + 1001 });
    assert.throws(() => n.check(GO_NONCE), { message: 'stale nonce' });
  });

  test('fail/options: a short key, a negative lifetime', () => {
    assert.throws(() => createNonces(new Uint8Array(31)), /at least 32 bytes/);
    assert.throws(() => createNonces('x'.repeat(40)), /at least 32 bytes/);
    assert.throws(() => createNonces(key, { lifetime: -1 }), /must not be negative/);
  });
});

describe('a service that requires nonces', () => {
  const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
  let d;
  let svc;
  let verifier;
  before(async () => {
    d = await startDeputy({
      audiences: [
        { id: 'https://api1.example', client: 'api1', scopes: ['ledger:read'] },
        { id: 'https://api2.example', client: 'api2', scopes: ['ledger:read'] },
      ],
      clients: [
        { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'], scopes: ['ledger:read'], audiences: ['https://api1.example'] },
        { id: 'api1', secret: 'api1-secret', grant_types: [TE], audiences: ['https://api1.example'] },
        { id: 'api2', secret: 'api2-secret', audiences: ['https://api2.example'] },
      ],
      exchange: { policies: [{ name: 'api1-to-api2', client: 'api1', audiences: ['https://api2.example'], scopes: ['ledger:read'] }] },
    });
    verifier = createVerifier({ issuer: d.issuer, audience: 'https://api2.example', requireBinding: true, dpopNonces: createNonces(key) });
    const app = express();
    app.post('/entries', expressMiddleware(verifier, { scopes: ['ledger:read'] }), (req, res) => res.json({ sub: req.deputy.subject }));
    svc = http.createServer(app).listen(0, '127.0.0.1');
    await once(svc, 'listening');
  });
  after(async () => {
    svc?.close();
    await d?.stop();
  });
  const url = () => `http://127.0.0.1:${svc.address().port}/entries`;

  // A DPoP-bound token for api2 (client credentials of api2 are not allowed: exchanged by api1).
  async function bound(dpopKey) {
    const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'ledger:read' })).access_token;
    const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret', dpopKey });
    return (await x.exchange(t0, 'https://api2.example', ['ledger:read'])).accessToken;
  }

  test('verify: a proof without a nonce, with a stale or foreign one, is use_dpop_nonce with a fresh nonce', async () => {
    const k = await generateDPoPKey();
    const token = await bound(k);
    const at = (nonce) => createProof({ key: k, method: 'POST', url: url(), accessToken: token, nonce });
    const stale = createNonces(key, { now: () => Date.now() - DEFAULT_NONCE_LIFETIME - 10_000 }).nonce();
    const foreign = createNonces(new Uint8Array(32).fill(9)).nonce();
    for (const nonce of [undefined, stale, foreign]) {
      const proof = await at(nonce);
      const err = await verifier.verify(token, { dpop: { proof, method: 'POST', url: url() } }).then(() => undefined, (e) => e);
      assert.ok(err instanceof VerifyError, String(err));
      assert.equal(err.code, 'use_dpop_nonce');
      assert.equal(err.status, 401);
      assert.equal(err.wwwAuthenticate(), 'DPoP error="use_dpop_nonce", error_description="DPoP proof must carry the nonce in DPoP-Nonce", algs="ES256 EdDSA RS256 PS256"');
      createNonces(key).check(err.dpopNonce); // a fresh nonce of the service's key
      assert.equal(err.headers()['DPoP-Nonce'], err.dpopNonce);
      // With the nonce, a new proof passes.
      const p = await verifier.verify(token, { dpop: { proof: await at(err.dpopNonce), method: 'POST', url: url() } });
      assert.equal(p.subject, 'web-app');
    }
  });

  test('verify: a source that answers later (a shared store) is awaited, its refusal refuses', async () => {
    const k = await generateDPoPKey();
    const token = await bound(k);
    const issued = new Set();
    let n = 0;
    const later = (v) => new Promise((ok) => setTimeout(() => ok(v), 5));
    const shared = {
      async nonce() { const v = `nonce-${++n}`; issued.add(v); return later(v); },
      async check(v) { await later(); if (!issued.has(v)) throw new Error('not a nonce of the store'); },
    };
    const v = createVerifier({ issuer: d.issuer, audience: 'https://api2.example', requireBinding: true, dpopNonces: shared });
    const at = async (nonce) => ({ proof: await createProof({ key: k, method: 'POST', url: url(), accessToken: token, nonce }), method: 'POST', url: url() });
    for (const nonce of [undefined, 'forged']) {
      const err = await v.verify(token, { dpop: await at(nonce) }).then(() => undefined, (e) => e);
      assert.ok(err instanceof VerifyError && err.code === 'use_dpop_nonce', `nonce ${nonce}: ${err}`);
      assert.ok(issued.has(err.dpopNonce), 'the nonce the store made, not a promise');
    }
    assert.equal((await v.verify(token, { dpop: await at([...issued][0]) })).subject, 'web-app');
    // A nonce that could not be a header value is not sent.
    const odd = createVerifier({ issuer: d.issuer, audience: 'https://api2.example', dpopNonces: { nonce: () => 'two\r\nlines', check: () => { throw new Error('no'); } } });
    const err = await odd.verify(token, { dpop: await at(undefined) }).then(() => undefined, (e) => e);
    assert.equal(err.code, 'use_dpop_nonce');
    assert.equal(err.dpopNonce, undefined);
    assert.deepEqual(Object.keys(err.headers()), ['WWW-Authenticate']);
  });

  test('middleware: the answer carries DPoP-Nonce; the exchanger\'s fetch asks once more with it', async () => {
    const k = await generateDPoPKey();
    const token = await bound(k);
    const r = await fetch(url(), { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: await createProof({ key: k, method: 'POST', url: url(), accessToken: token }) } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^DPoP error="use_dpop_nonce"/);
    createNonces(key).check(r.headers.get('dpop-nonce'));
    assert.equal((await r.json()).error, 'use_dpop_nonce');

    const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'ledger:read' })).access_token;
    const seen = [];
    const x = createExchanger({
      issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret', dpop: true,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (String(input) === url()) seen.push(res.status);
        return res;
      },
    });
    const res = await x.fetch(t0, 'https://api2.example', ['ledger:read'], url(), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { sub: 'web-app' });
    assert.deepEqual(seen, [401, 200], 'refused once for the nonce, then accepted');
  });
});
