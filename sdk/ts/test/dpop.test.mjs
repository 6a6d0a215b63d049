// DPoP proofs (RFC 9449) made by src/dpop.ts: their shape, checked with jose, and
// accepted by a real deputy; and a service calling the next one with a bound token
// (exchanger.fetch), answering its nonce challenge once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { compactVerify, EmbeddedJWK, decodeJwt, exportJWK, calculateJwkThumbprint, generateKeyPair } from 'jose';
import { startDeputy, clientCredentials } from './deputy.mjs';
import { createProof, dpopHeaders, dpopKey, generateDPoPKey, ath, htu, isNonceChallenge } from '../dist/dpop.js';
import { createExchanger, ExchangeError } from '../dist/exchange.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';

async function verifyProof(proof) {
  const { payload, protectedHeader } = await compactVerify(proof, EmbeddedJWK, { algorithms: ['ES256', 'EdDSA', 'PS256', 'RS256'] });
  return { header: protectedHeader, claims: JSON.parse(new TextDecoder().decode(payload)) };
}

describe('createProof', () => {
  test('ok/shape: typ, public jwk, htm, htu without query and fragment, iat, fresh jti', async () => {
    const pair = await generateKeyPair('ES256');
    const before = Math.floor(Date.now() / 1000);
    const p1 = await createProof({ key: pair, method: 'post', url: 'https://API.example:443/a/b?x=1#frag' });
    const p2 = await createProof({ key: pair, method: 'POST', url: 'https://api.example/a/b' });
    const { header, claims } = await verifyProof(p1);
    assert.equal(header.typ, 'dpop+jwt');
    assert.equal(header.alg, 'ES256');
    assert.deepEqual(Object.keys(header.jwk).sort(), ['crv', 'kty', 'x', 'y']);
    assert.equal(claims.htm, 'POST');
    assert.equal(claims.htu, 'https://api.example/a/b');
    assert.ok(claims.iat >= before && claims.iat <= before + 2);
    assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(claims.ath, undefined);
    assert.equal(claims.nonce, undefined);
    assert.notEqual((await verifyProof(p2)).claims.jti, claims.jti);
  });

  test('ok/ath and nonce', async () => {
    const key = await generateDPoPKey();
    const p = await createProof({ key, method: 'GET', url: 'http://127.0.0.1:8080/x', accessToken: 'tok', nonce: 'n-1' });
    const { claims } = await verifyProof(p);
    assert.equal(claims.ath, createHash('sha256').update('tok').digest('base64url'));
    assert.equal(claims.ath, ath('tok'));
    assert.equal(claims.nonce, 'n-1');
    assert.equal(claims.htu, 'http://127.0.0.1:8080/x');
  });

  test('ok/dpopHeaders: Authorization DPoP and a proof with ath', async () => {
    const key = await generateDPoPKey();
    const h = await dpopHeaders({ key, method: 'PUT', url: 'https://api.example/r?q', accessToken: 'abc' });
    assert.equal(h.Authorization, 'DPoP abc');
    const { claims } = await verifyProof(h.DPoP);
    assert.equal(claims.htm, 'PUT');
    assert.equal(claims.ath, ath('abc'));
    await assert.rejects(dpopHeaders({ key, method: 'GET', url: 'https://api.example/' }), /accessToken is required/);
  });

  const keys = [
    { name: 'ok/key: jose ES256', make: () => generateKeyPair('ES256'), alg: 'ES256' },
    { name: 'ok/key: jose Ed25519', make: () => generateKeyPair('EdDSA', { crv: 'Ed25519' }), alg: 'EdDSA' },
    { name: 'ok/key: jose PS256', make: () => generateKeyPair('PS256'), alg: 'PS256' },
    { name: 'ok/key: jose RS256 (WebCrypto RSASSA-PKCS1-v1_5)', make: () => generateKeyPair('RS256'), alg: 'RS256' },
    { name: 'ok/key: node:crypto EC P-256 KeyObjects', make: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), alg: 'ES256' },
    { name: 'ok/key: node:crypto RSA 2048 KeyObjects', make: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), alg: 'PS256' },
    { name: 'fail/key: EC P-384', make: () => generateKeyPair('ES384'), err: /not EC P-256, Ed25519 or RSA/ },
    { name: 'fail/key: RSA 1024', make: () => generateKeyPairSync('rsa', { modulusLength: 1024 }), err: /at least 2048 bits/ },
    { name: 'fail/key: alg that does not fit', make: async () => ({ ...(await generateKeyPair('ES256')), alg: 'PS256' }), err: /alg PS256 does not fit a EC key/ },
    { name: 'fail/key: RS256 CryptoKey asked to sign PS256', make: async () => ({ ...(await generateKeyPair('RS256')), alg: 'PS256' }), err: /alg PS256 does not fit a RSA key/ },
    { name: 'fail/key: no key pair', make: async () => ({ privateKey: undefined }), err: /a key pair \{ privateKey, publicKey \} is required/ },
  ];
  for (const k of keys) {
    test(k.name, async () => {
      const pair = await k.make();
      if (k.err) {
        await assert.rejects(createProof({ key: pair, method: 'GET', url: 'https://a.example/' }), (e) => e instanceof TypeError && k.err.test(e.message));
        return;
      }
      const key = await dpopKey(pair);
      assert.equal(key.alg, k.alg);
      assert.equal(key.jkt, await calculateJwkThumbprint(await exportJWK(pair.publicKey), 'sha256'));
      assert.equal(key.jwk.d, undefined);
      const { header } = await verifyProof(await createProof({ key: pair, method: 'GET', url: 'https://a.example/' }));
      assert.equal(header.alg, k.alg);
    });
  }

  test('fail/url: only absolute http(s) URLs', async () => {
    const key = await generateDPoPKey();
    await assert.rejects(createProof({ key, method: 'GET', url: 'ftp://a.example/' }), /ftp: is not http or https/);
    await assert.rejects(createProof({ key, method: 'GET', url: '/relative' }), TypeError);
    await assert.rejects(createProof({ key, method: '', url: 'https://a.example/' }), /method is required/);
    assert.equal(htu('HTTP://A.example:80/%7Ex?y#z'), 'http://a.example/%7Ex'); // deputy normalises percent-encodings itself (RFC 9449 §4.3)
  });

  test('ok/isNonceChallenge', () => {
    const r = (status, h) => ({ status, headers: new Headers(h ? { 'www-authenticate': h } : {}) });
    assert.equal(isNonceChallenge(r(401, 'DPoP error="use_dpop_nonce", error_description="nonce"')), true);
    assert.equal(isNonceChallenge(r(401, 'Bearer realm="x", DPoP algs="ES256", error="use_dpop_nonce"')), true);
    assert.equal(isNonceChallenge(r(401, 'DPoP error="invalid_token"')), false);
    assert.equal(isNonceChallenge(r(401, 'Bearer error="use_dpop_nonce"')), false);
    assert.equal(isNonceChallenge(r(400, 'DPoP error="use_dpop_nonce"')), false);
    assert.equal(isNonceChallenge(r(401)), false);
  });
});

describe('proofs at deputy', () => {
  let d;
  before(async () => {
    d = await startDeputy({
      audiences: [
        { id: 'https://api1.example', client: 'api1', scopes: ['payments:read'] },
        { id: 'https://api2.example', scopes: ['ledger:read'] },
      ],
      clients: [
        { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'], scopes: ['payments:read', 'ledger:read'], audiences: ['https://api1.example'] },
        { id: 'api1', secret: 'api1-secret', grant_types: [TE], audiences: ['https://api1.example'] },
      ],
      exchange: { policies: [{ client: 'api1', audiences: ['https://api2.example'], scopes: ['ledger:read'] }] },
    });
  });
  after(async () => { await d?.stop(); });

  for (const [name, make] of [
    ['ES256', () => generateKeyPair('ES256')],
    ['EdDSA', () => generateKeyPair('EdDSA', { crv: 'Ed25519' })],
    ['PS256', () => generateKeyPair('PS256')],
    ['RS256', () => generateKeyPair('RS256')],
  ]) {
    test(`ok/deputy binds a token to a ${name} proof's key`, async () => {
      const key = await dpopKey(await make());
      const proof = await createProof({ key, method: 'POST', url: d.tokenEndpoint });
      const t = await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' }, { DPoP: proof });
      assert.equal(t.token_type, 'DPoP');
      assert.deepEqual(decodeJwt(t.access_token).cnf, { jkt: key.jkt });
    });
  }

  for (const [name, opts] of [
    ['fail/htu of another URL', { method: 'POST', url: 'http://127.0.0.1:1/token' }],
    ['fail/htm GET', { method: 'GET' }],
  ]) {
    test(`${name}: deputy refuses the proof (invalid_dpop_proof)`, async () => {
      const key = await generateDPoPKey();
      const proof = await createProof({ key, url: d.tokenEndpoint, ...opts });
      await assert.rejects(clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' }, { DPoP: proof }), /400 .*invalid_dpop_proof/);
    });
  }

  test('fail/replay: deputy refuses a proof used twice', async () => {
    const key = await generateDPoPKey();
    const proof = await createProof({ key, method: 'POST', url: d.tokenEndpoint });
    await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' }, { DPoP: proof });
    await assert.rejects(clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' }, { DPoP: proof }), /400 .*invalid_dpop_proof/);
  });

  // A next service: it wants a nonce first (RFC 9449 §9), then checks the proof of
  // the DPoP-bound token it receives (htm, htu, ath, nonce, the token's cnf.jkt).
  async function nextService({ nonce = true, bearer = false } = {}) {
    const seen = [];
    const server = http.createServer(async (req, res) => {
      let body = '';
      for await (const b of req) body += b;
      const url = `http://127.0.0.1:${server.address().port}${req.url}`;
      const auth = req.headers.authorization ?? '';
      const proof = req.headers.dpop;
      const s = { method: req.method, auth, proof, body };
      seen.push(s);
      if (bearer) {
        res.writeHead(auth.startsWith('Bearer ') ? 200 : 401).end();
        return;
      }
      const [scheme, token] = auth.split(' ');
      if (scheme !== 'DPoP' || !proof) return res.writeHead(401, { 'www-authenticate': 'DPoP error="invalid_token"' }).end();
      const { claims, header } = await verifyProof(proof);
      s.claims = claims;
      if (nonce && claims.nonce !== 'svc-nonce-1') {
        return res.writeHead(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="nonce required"', 'dpop-nonce': 'svc-nonce-1' }).end();
      }
      const ok = claims.htm === req.method && claims.htu === url.split('?')[0] && claims.ath === ath(token) &&
        decodeJwt(token).cnf?.jkt === await calculateJwkThumbprint(header.jwk, 'sha256');
      res.writeHead(ok ? 200 : 401).end(ok ? 'ok' : 'bad proof');
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((ok) => server.close(ok)) };
  }

  test('ok/exchanger.fetch: a bound token with a fresh proof, once more with the service\'s nonce', async () => {
    const svc = await nextService();
    try {
      const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read' })).access_token;
      const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret', dpop: true });
      const res = await x.fetch(t0, 'https://api2.example', 'ledger:read', `${svc.url}/checks?id=7`, { method: 'POST', body: '{"amount":5}' });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await res.text(), 'ok');
      assert.equal(svc.seen.length, 2);
      assert.equal(svc.seen[0].claims.nonce, undefined);
      assert.equal(svc.seen[1].claims.nonce, 'svc-nonce-1');
      assert.equal(svc.seen[1].body, '{"amount":5}');
      assert.notEqual(svc.seen[0].claims.jti, svc.seen[1].claims.jti);
      // the nonce is remembered for the service's origin: the next call needs no retry
      const again = await x.fetch(t0, 'https://api2.example', 'ledger:read', `${svc.url}/checks`, { method: 'GET' });
      assert.equal(again.status, 200);
      assert.equal(svc.seen.length, 3);
    } finally {
      await svc.close();
    }
  });

  test('fail/exchanger.fetch: a body that cannot be sent twice gets the 401', async () => {
    const svc = await nextService();
    try {
      const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read' })).access_token;
      const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret', dpop: true });
      const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('once')); c.close(); } });
      const res = await x.fetch(t0, 'https://api2.example', 'ledger:read', `${svc.url}/checks`, { method: 'POST', body: stream, duplex: 'half' });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate'), /use_dpop_nonce/);
      assert.equal(svc.seen.length, 1);
    } finally {
      await svc.close();
    }
  });

  test('ok/exchanger.fetch: a bearer token as Authorization: Bearer; a refused exchange sends nothing', async () => {
    const svc = await nextService({ bearer: true });
    try {
      const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read ledger:read' })).access_token;
      const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret' });
      const res = await x.fetch(t0, 'https://api2.example', ['ledger:read'], `${svc.url}/x`, { headers: { authorization: 'Bearer caller-set' } });
      assert.equal(res.status, 200);
      const [scheme, token] = svc.seen[0].auth.split(' ');
      assert.equal(scheme, 'Bearer');
      assert.deepEqual(decodeJwt(token).act, { sub: 'api1' });
      assert.equal(svc.seen[0].proof, undefined);
      await assert.rejects(x.fetch(t0, 'https://api2.example', ['payments:read'], `${svc.url}/x`),
        (e) => e instanceof ExchangeError && e.error === 'invalid_scope');
      assert.equal(svc.seen.length, 1);
    } finally {
      await svc.close();
    }
  });
});


