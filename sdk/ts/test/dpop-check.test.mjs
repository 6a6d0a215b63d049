// DPoP-bound tokens (RFC 9449 §7) against a real deputy: deputy binds a token to
// the key of the proof sent to its token endpoint, and the verifier accepts that
// token only as Authorization: DPoP with a proof of that key for this request.
// Each bad input of the Go SDK's TestVerifyRequestBinding has its twin here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { generateKeyPairSync, sign } from 'node:crypto';
import { generateKeyPair, exportJWK, calculateJwkThumbprint, CompactSign, base64url } from 'jose';
import { startDeputy, clientCredentials, rejects } from './deputy.mjs';
import { createVerifier } from '../dist/verify.js';
import { accessTokenHash, normalizeURL, ReplayCache, checkProof, ProofError } from '../dist/dpop-check.js';

const api1 = 'https://api1.example';
const ledgerURL = 'https://api1.example/ledger';
const ALGS = 'algs="ES256 EdDSA RS256 PS256"';

const enc = (v) => base64url.encode(JSON.stringify(v));
const randomID = () => base64url.encode(crypto.getRandomValues(new Uint8Array(12)));
const nowS = () => Math.floor(Date.now() / 1000);

// proofKey is a client's DPoP key; proof signs a proof with it (jose), any header
// member overridable.
async function proofKey(alg = 'ES256') {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256'),
    proof(claims, header = {}, signWith = privateKey) {
      return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk, ...header }).sign(signWith);
    },
  };
}

// boundToken gets web-app a token from deputy bound to key (RFC 9449 §5).
async function boundToken(d, key) {
  const proof = await key.proof({ jti: randomID(), htm: 'POST', htu: d.tokenEndpoint, iat: nowS() });
  const t = await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' }, { DPoP: proof });
  assert.equal(t.token_type, 'DPoP');
  const claims = JSON.parse(Buffer.from(t.access_token.split('.')[1], 'base64url'));
  assert.equal(claims.cnf?.jkt, key.jkt, 'deputy bound the token to the proof key');
  return t.access_token;
}


let d;
let key, other, ed;
let token, edToken, otherToken, bearer;
before(async () => {
  d = await startDeputy({
    audiences: [{ id: api1, scopes: ['payments:read'] }],
    clients: [{ id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
      scopes: ['payments:read'], audiences: [api1] }],
  });
  [key, other, ed] = await Promise.all([proofKey(), proofKey(), proofKey('EdDSA')]);
  token = await boundToken(d, key);
  otherToken = await boundToken(d, key); // another token bound to the same key
  edToken = await boundToken(d, ed);
  bearer = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
});
after(async () => { await d?.stop(); });

test('DPoP: a bound token is accepted only with a proof of its key for this request', async (t) => {
  const claims = (edit = {}, tok = token) => ({ jti: randomID(), htm: 'GET', htu: ledgerURL, iat: nowS(), ath: accessTokenHash(tok), ...edit });
  const good = () => key.proof(claims());
  const replayed = await good();
  const es384 = await proofKey('ES384');
  const { privateKey: otherPriv } = other;
  const privJWK = await exportJWK(key.privateKey);
  const hmac = new Uint8Array(32).fill(7);

  const cases = [
    { name: 'ok/dpop', dpop: () => good() },
    { name: 'ok/dpop-eddsa', tok: () => edToken, dpop: () => ed.proof(claims({}, edToken)), jkt: () => ed.jkt },
    { name: 'ok/htu-query-and-fragment-ignored', url: `${ledgerURL}?account=42`,
      dpop: () => key.proof(claims({ htu: `${ledgerURL}?x=1#f` })) },
    { name: 'ok/htu-normalised', dpop: () => key.proof(claims({ htu: 'HTTPS://API1.example:443/%6Cedger' })) },
    { name: 'ok/bearer', tok: () => bearer, scheme: 'Bearer', jkt: () => undefined },

    { name: 'fail/bound-token-as-bearer', scheme: 'Bearer', code: 'invalid_token', challenge: 'DPoP error="invalid_token"',
      want: 'must be sent with Authorization: DPoP' },
    { name: 'fail/missing-proof', dpop: async () => undefined, code: 'invalid_token', challenge: 'DPoP error="invalid_token"',
      want: 'without a DPoP proof' },
    { name: 'fail/two-dpop-headers', dpop: async () => [await good(), await good()], code: 'invalid_dpop_proof', want: 'more than one DPoP header' },
    { name: 'fail/typ-jwt', dpop: () => key.proof(claims(), { typ: 'JWT' }), code: 'invalid_dpop_proof', want: 'typ' },
    { name: 'fail/alg-none', code: 'invalid_dpop_proof', want: 'alg "none" is not allowed',
      dpop: async () => `${enc({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk })}.${enc(claims())}.` },
    { name: 'fail/alg-hs256', code: 'invalid_dpop_proof', want: 'alg "HS256" is not allowed',
      dpop: () => new CompactSign(new TextEncoder().encode(JSON.stringify(claims())))
        .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: key.jwk }).sign(hmac) },
    { name: 'fail/alg-not-listed-es384', code: 'invalid_dpop_proof', want: 'alg "ES384" is not allowed',
      dpop: () => es384.proof(claims()) },
    { name: 'fail/no-jwk', code: 'invalid_dpop_proof', want: 'no jwk', dpop: () => key.proof(claims(), { jwk: undefined }) },
    { name: 'fail/private-key-in-jwk', code: 'invalid_dpop_proof', want: 'not a valid public key',
      dpop: () => key.proof(claims(), { jwk: privJWK }) },
    { name: 'fail/jwk-does-not-fit-alg', code: 'invalid_dpop_proof', want: 'does not fit',
      dpop: () => key.proof(claims(), { jwk: ed.jwk }) },
    { name: 'fail/signed-by-another-key', code: 'invalid_dpop_proof', want: 'signature does not verify',
      dpop: () => key.proof(claims(), {}, otherPriv) },
    { name: 'fail/proof-of-another-key', code: 'invalid_dpop_proof', want: 'another key', dpop: () => other.proof(claims()) },
    { name: 'fail/htm-of-another-request', code: 'invalid_dpop_proof', want: 'htm is not GET',
      dpop: () => key.proof(claims({ htm: 'POST' })) },
    { name: 'fail/htm-lower-case', code: 'invalid_dpop_proof', want: 'htm is not GET', dpop: () => key.proof(claims({ htm: 'get' })) },
    { name: 'fail/htu-of-another-request', code: 'invalid_dpop_proof', want: 'htu is not',
      dpop: () => key.proof(claims({ htu: 'https://api1.example/payments' })) },
    { name: 'fail/htu-of-another-host', code: 'invalid_dpop_proof', want: 'htu is not',
      dpop: () => key.proof(claims({ htu: 'https://api2.example/ledger' })) },
    { name: 'fail/htu-http-for-https', url: 'http://api1.example/ledger', code: 'invalid_dpop_proof', want: 'htu is not',
      dpop: () => good() },
    { name: 'fail/no-htu', code: 'invalid_dpop_proof', want: 'no htu', dpop: () => key.proof(claims({ htu: undefined })) },
    { name: 'fail/no-jti', code: 'invalid_dpop_proof', want: 'no jti', dpop: () => key.proof(claims({ jti: undefined })) },
    { name: 'fail/iat-too-old', code: 'invalid_dpop_proof', want: 'iat is older',
      dpop: () => key.proof(claims({ iat: nowS() - 120 })) },
    { name: 'fail/iat-in-future', code: 'invalid_dpop_proof', want: 'iat is in the future',
      dpop: () => key.proof(claims({ iat: nowS() + 60 })) },
    { name: 'fail/no-iat', code: 'invalid_dpop_proof', want: 'no iat', dpop: () => key.proof(claims({ iat: undefined })) },
    { name: 'fail/replayed-jti', twice: true, code: 'invalid_dpop_proof', want: 'used before', dpop: async () => replayed },
    { name: 'fail/ath-of-another-token', tok: () => otherToken, code: 'invalid_dpop_proof', want: 'ath does not match',
      dpop: () => good() },
    { name: 'fail/no-ath', code: 'invalid_dpop_proof', want: 'ath does not match', dpop: () => key.proof(claims({ ath: undefined })) },
    { name: 'fail/dpop-scheme-unbound-token', tok: () => bearer, code: 'invalid_token', challenge: 'DPoP error="invalid_token"',
      want: 'not DPoP-bound', dpop: () => key.proof(claims({}, bearer)) },
    { name: 'fail/dpop-scheme-invalid-token', tok: () => token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA'),
      code: 'invalid_token', challenge: 'DPoP error="invalid_token"', want: 'signature is invalid', dpop: () => good() },
    { name: 'fail/not-a-jws', code: 'invalid_dpop_proof', want: 'not a compact JWS', dpop: async () => 'a.b' },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const v = createVerifier({ issuer: d.issuer, audience: api1 });
      const tok = c.tok ? c.tok() : token;
      const present = async () => {
        if (c.scheme === 'Bearer') return v.verify(tok);
        const proof = c.dpop ? await c.dpop() : await good();
        return v.verify(tok, { dpop: { proof, method: 'GET', url: c.url ?? ledgerURL } });
      };
      if (c.twice) await present();
      if (!c.code) {
        const p = await present();
        const jkt = c.jkt ? c.jkt() : key.jkt;
        assert.equal(p.cnf?.jkt, jkt);
        assert.equal(p.subject, 'web-app');
        return;
      }
      const err = await rejects(present(), c.code, 401, c.want);
      const challenge = err.wwwAuthenticate();
      assert.ok(challenge.startsWith(c.challenge ?? `DPoP error="${c.code}"`), challenge);
      assert.ok(challenge.endsWith(ALGS), challenge);
      assert.ok(!challenge.includes(tok.split('.')[2]), 'the challenge echoes the token');
    });
  }
});

test('DPoP: a proof is spent only when the token passes; the same proof for another verifier is its own', async () => {
  const proof = await key.proof({ jti: randomID(), htm: 'GET', htu: ledgerURL, iat: nowS(), ath: accessTokenHash(token) });
  const v = createVerifier({ issuer: d.issuer, audience: api1 });
  // Refused for another audience first: the jti is not spent by that refusal.
  await rejects(createVerifier({ issuer: d.issuer, audience: 'https://api2.example' })
    .verify(token, { dpop: { proof, method: 'GET', url: ledgerURL } }), 'invalid_token', 401, 'not for this audience');
  const vClock = { t: Date.now() };
  const w = createVerifier({ issuer: d.issuer, audience: api1, now: () => vClock.t });
  await w.verify(token, { dpop: { proof, method: 'GET', url: ledgerURL } });
  await rejects(w.verify(token, { dpop: { proof, method: 'GET', url: ledgerURL } }), 'invalid_dpop_proof', 401, 'used before');
  await v.verify(token, { dpop: { proof, method: 'GET', url: ledgerURL } }); // a replay cache per verifier
});

test('DPoP: requireBinding refuses a bearer token', async () => {
  const v = createVerifier({ issuer: d.issuer, audience: api1, requireBinding: true });
  const err = await rejects(v.verify(bearer), 'invalid_token', 401, 'not sender-constrained');
  assert.ok(err.wwwAuthenticate().startsWith('DPoP error="invalid_token"'));
  const p = await v.verify(token, { dpop: { proof: await key.proof({ jti: randomID(), htm: 'GET', htu: ledgerURL, iat: nowS(),
    ath: accessTokenHash(token) }), method: 'GET', url: ledgerURL } });
  assert.equal(p.cnf?.jkt, key.jkt);
});

test('DPoP: deputy unreachable is 503, as for Bearer', async () => {
  const closed = await new Promise((ok) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const u = `http://127.0.0.1:${s.address().port}`; s.close(() => ok(u)); });
  });
  const v = createVerifier({ issuer: d.issuer, audience: api1, jwksUri: `${closed}/jwks` });
  const proof = await key.proof({ jti: randomID(), htm: 'GET', htu: ledgerURL, iat: nowS(), ath: accessTokenHash(token) });
  const err = await rejects(v.verify(token, { dpop: { proof, method: 'GET', url: ledgerURL } }),
    'temporarily_unavailable', 503, 'signing keys cannot be fetched');
  assert.equal(err.wwwAuthenticate(), '');
});

test('ath is base64url(SHA-256(token)): the example of RFC 9449 §7.1', () => {
  assert.equal(accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'), 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
});

test('normalizeURL: RFC 9449 §4.3 (RFC 3986 §6.2.2, §6.2.3)', () => {
  for (const [in_, want] of [
    ['https://api1.example/ledger', 'https://api1.example/ledger'],
    ['HTTPS://API1.Example/ledger', 'https://api1.example/ledger'],
    ['https://api1.example:443/ledger', 'https://api1.example/ledger'],
    ['http://api1.example:80/ledger', 'http://api1.example/ledger'],
    ['http://api1.example:8080/ledger', 'http://api1.example:8080/ledger'],
    ['https://api1.example', 'https://api1.example/'],
    ['https://api1.example/a?b=c#d', 'https://api1.example/a'],
    ['https://api1.example/%7euser/%2f', 'https://api1.example/~user/%2F'],
  ]) assert.equal(normalizeURL(in_), want, in_);
  for (const bad of ['/ledger', 'ftp://api1.example/', 'not a url', '']) assert.throws(() => normalizeURL(bad), bad);
});

test('ReplayCache: a proof once while remembered; expired forgotten; bounded, oldest dropped', () => {
  const now = Date.now();
  const c = new ReplayCache(2);
  for (const [name, k, ttl, at, want] of [
    ['ok/first', 'a', 60_000, 0, true],
    ['fail/replay', 'a', 60_000, 1000, false],
    ['ok/second', 'b', 120_000, 1000, true],
    ['fail/replay-of-second', 'b', 120_000, 2000, false],
    ['ok/after-expiry', 'a', 180_000, 60_000, true],
    ['ok/third-drops-oldest', 'c', 180_000, 60_000, true],
  ]) {
    assert.equal(c.add(k, now + ttl, now + at), want, name);
    assert.ok(c.size <= 2, `${name}: ${c.size} entries`);
  }
});

test('checkProof: an RSA key under 2048 bits is refused', async () => {
  // jose will not make such a key nor sign with one: node:crypto does, for the test.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const input = `${enc({ alg: 'RS256', typ: 'dpop+jwt', jwk: publicKey.export({ format: 'jwk' }) })}.${enc({ jti: 'x', htm: 'GET', htu: ledgerURL, iat: nowS() })}`;
  const proof = `${input}.${base64url.encode(sign('sha256', Buffer.from(input), privateKey))}`;
  await assert.rejects(checkProof(proof, { method: 'GET', url: ledgerURL, now: Date.now() }),
    (e) => e instanceof ProofError && e.reason.includes('at least 2048'));
});

// checkProof keeps the keys of recent proofs imported: the cache must never let a
// proof pass that the same proof would fail uncached.
test('checkProof: a remembered key is this jwk\'s, and a key that fails is not remembered', async () => {
  const a = await proofKey();
  const b = await proofKey();
  const req = () => ({ method: 'POST', url: ledgerURL, now: Date.now() });
  const claims = () => ({ jti: randomID(), htm: 'POST', htu: ledgerURL, iat: nowS() });
  assert.equal((await checkProof(await a.proof(claims()), req())).jkt, a.jkt);
  assert.equal((await checkProof(await a.proof(claims()), req())).jkt, a.jkt, 'the second proof of a key, from the cache');
  // a's jwk in the header, signed by b: a's key is remembered, the signature is not a's
  await assert.rejects(checkProof(await a.proof(claims(), {}, b.privateKey), req()),
    (e) => e instanceof ProofError && e.reason === 'signature does not verify with the jwk');
  // a's jwk with a member more is another jwk: imported (and judged) on its own
  const withKid = await a.proof(claims(), { jwk: { ...a.jwk, kid: 'k1' } });
  assert.equal((await checkProof(withKid, req())).jkt, a.jkt);
  // a point off the curve fails, and fails again
  const off = { ...a.jwk, y: b.jwk.y };
  for (let i = 0; i < 2; i++) {
    await assert.rejects(checkProof(await a.proof(claims(), { jwk: off }), req()),
      (e) => e instanceof ProofError && e.reason === 'signature does not verify with the jwk', `attempt ${i + 1}`);
  }
});
