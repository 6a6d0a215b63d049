// Introspection mode against a real deputy (the twin of sdk/verify's
// TestRevocation and TestIntrospectionFailures): a revoked token still passes the
// offline checks, but not introspection; a token the verifier could not show to
// deputy is never passed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startDeputy, clientCredentials } from './deputy.mjs';
import { createVerifier, VerifyError } from '../dist/index.js';

const API1 = 'https://api1.example';
let d;

before(async () => {
  d = await startDeputy({
    audiences: [
      { id: API1, client: 'api1', scopes: ['payments:read'] },
      { id: 'https://api3.example', client: 'api3', scopes: ['fraud:check'] },
    ],
    clients: [
      { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'], scopes: ['payments:read'], audiences: [API1] },
      { id: 'api1', secret: 'api1-secret', audiences: [API1] },
      { id: 'api3', secret: 'api3-secret', audiences: ['https://api3.example'] },
    ],
  });
});
after(async () => { await d?.stop(); });

// counting wraps fetch and counts the requests to deputy's introspection endpoint.
function counting() {
  const c = { introspect: 0 };
  c.fetch = (input, init) => {
    if (new URL(String(input)).pathname === '/introspect') c.introspect++;
    return fetch(input, init);
  };
  return c;
}

async function token() {
  return (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
}

async function closedURL() {
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return `http://127.0.0.1:${port}`;
}

// answering is an introspection endpoint that answers body to every request (closed after the tests).
const servers = [];
after(() => { for (const s of servers) s.close(); });
async function answering(body) {
  const s = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end(body); });
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  servers.push(s);
  return `http://127.0.0.1:${s.address().port}/introspect`;
}

test('ok/revocation: the offline checks pass a revoked token, introspection mode refuses it', async () => {
  const raw = await token();
  const c = counting();
  const offline = createVerifier({ issuer: d.issuer, audience: API1 });
  const online = createVerifier({ issuer: d.issuer, audience: API1, introspect: true, clientId: 'api1', clientSecret: 'api1-secret', fetch: c.fetch });
  for (const v of [offline, online]) assert.equal((await v.verify(raw, { scopes: ['payments:read'] })).subject, 'web-app');
  assert.equal(c.introspect, 1);

  const r = await fetch(`${d.issuer}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from('web-app:web-app-secret').toString('base64') },
    body: new URLSearchParams({ token: raw }),
  });
  assert.equal(r.status, 200);

  assert.equal((await offline.verify(raw)).subject, 'web-app', 'offline, the token is good until its exp');
  const err = await online.verify(raw).then(() => undefined, (e) => e);
  assert.ok(err instanceof VerifyError, String(err));
  assert.equal(err.code, 'invalid_token');
  assert.equal(err.description, 'token is revoked or inactive');
  assert.equal(c.introspect, 2);
});

test('fail/introspection: never a pass without deputy\'s answer', async (t) => {
  const raw = await token();
  const tampered = raw.slice(0, -4) + (raw.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const cases = [
    { name: 'fail/endpoint-unreachable', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used',
      edit: async (o) => ({ ...o, introspectionUri: `${await closedURL()}/unreachable` }) },
    { name: 'fail/wrong-client-secret', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used', introspect: 1,
      edit: (o) => ({ ...o, clientSecret: 'wrong' }) },
    { name: 'fail/client-not-audience', token: raw, code: 'invalid_token', status: 401, desc: 'revoked or inactive', introspect: 1,
      edit: (o) => ({ ...o, clientId: 'api3', clientSecret: 'api3-secret' }) },
    { name: 'fail/offline-checks-first', token: tampered, code: 'invalid_token', status: 401, desc: 'signature is invalid' },
    { name: 'fail/answer-without-active', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used', introspect: 1,
      edit: async (o) => ({ ...o, introspectionUri: await answering('{}') }) },
    { name: 'fail/active-null', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used', introspect: 1,
      edit: async (o) => ({ ...o, introspectionUri: await answering('{"active":null}') }) },
    { name: 'fail/active-not-boolean', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used', introspect: 1,
      edit: async (o) => ({ ...o, introspectionUri: await answering('{"active":"true"}') }) },
    { name: 'fail/not-an-introspection-endpoint', token: raw, code: 'temporarily_unavailable', status: 503, desc: 'cannot be used',
      edit: (o) => ({ ...o, introspectionUri: `${d.issuer}/.well-known/openid-configuration/x` }) },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const count = counting();
      let o = { issuer: d.issuer, audience: API1, introspect: true, clientId: 'api1', clientSecret: 'api1-secret', fetch: count.fetch };
      if (c.edit) o = await c.edit(o);
      const err = await createVerifier(o).verify(c.token).then(() => undefined, (e) => e);
      assert.ok(err instanceof VerifyError, String(err));
      assert.equal(err.code, c.code);
      assert.equal(err.status, c.status);
      assert.match(err.description, new RegExp(c.desc));
      assert.equal(count.introspect, c.introspect ?? 0);
    });
  }
});

test('fail/options: introspection needs the service\'s client', () => {
  assert.throws(() => createVerifier({ issuer: d.issuer, audience: API1, introspect: true }), /clientId is required with introspect[\s\S]*clientSecret is required/);
  assert.throws(() => createVerifier({ issuer: d.issuer, audience: API1, introspect: true, clientId: 'a', clientSecret: 'b', introspectionUri: 'ftp://x' }),
    /introspectionUri must be an absolute http\(s\) URL/);
});
