// Certificate-bound tokens (RFC 8705 §3): a real deputy issues a token bound to
// ledger's TLS client certificate (tls_client_auth, the certificate forwarded by a
// trusted proxy, as behind nginx), and a Node HTTPS service accepts it only over a
// connection that presented that certificate — through authenticate with
// peerCertificate, and through the Express and Fastify adapters, which read the
// socket themselves. Certificates are made with the openssl command.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import Fastify from 'fastify';
import { startDeputy } from './deputy.mjs';
import {
  createVerifier, authenticate, peerCertificate, requestURL, writeRefusal, VerifyError,
  expressMiddleware, fastifyPreHandler, createProof,
} from '../dist/index.js';

const API = 'https://api.example';
let d;
let dir;
let certs;
let token; // bound to ledger's certificate
let bearer; // a bearer token of the same audience

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

// pair makes a P-256 key and a certificate for subject, signed by the CA (or
// self-signed with ca undefined).
function pair(name, subject, ca, ...ext) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.csr`, '-subj', subject);
  if (ca) {
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '1', ...ext);
  } else {
    openssl('x509', '-req', '-in', `${name}.csr`, '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '1', ...ext);
  }
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deputy-ts-mtls-'));
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > server.ext; printf "basicConstraints=critical,CA:TRUE\\n" > ca.ext'], { cwd: dir });
  certs = {
    ca: pair('ca', '/CN=Test Client CA', undefined, '-extfile', 'ca.ext'),
    server: pair('server', '/CN=127.0.0.1', undefined, '-extfile', 'server.ext'),
  };
  certs.ledger = pair('ledger', '/O=Example Bank/CN=ledger', 'ca');
  certs.other = pair('other', '/O=Example Bank/CN=ledger', 'ca'); // the same name, another key
  d = await startDeputy({
    tls: { client_ca_file: join(dir, 'ca.pem'), client_cert_header: 'X-Client-Cert', trusted_proxies: ['127.0.0.1'] },
    audiences: [{ id: API, scopes: ['read'] }],
    clients: [
      { id: 'ledger', auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=ledger,O=Example Bank',
        tls_client_certificate_bound_access_tokens: true, grant_types: ['client_credentials'], scopes: ['read'], audiences: [API] },
      { id: 'batch', secret: 'batch-secret', grant_types: ['client_credentials'], scopes: ['read'], audiences: [API] },
    ],
  });
  // deputy behind a TLS-terminating proxy: the proxy (this process, on 127.0.0.1)
  // forwards the client's certificate URL-encoded, as nginx's $ssl_client_escaped_cert.
  let r = await fetch(d.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-cert': encodeURIComponent(certs.ledger.cert.toString()) },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'ledger', scope: 'read' }),
  });
  let body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  token = body.access_token;
  r = await fetch(d.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from('batch:batch-secret').toString('base64') },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
  });
  body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  bearer = body.access_token;
});

after(async () => {
  await d?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const thumbprint = (pem) => createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');

// serve starts an HTTPS server that asks for (and does not itself verify) a
// client certificate, as deputy's own listener does.
async function serve(handler) {
  const s = https.createServer({ key: certs.server.key, cert: certs.server.cert, requestCert: true, rejectUnauthorized: false }, handler);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return { url: `https://127.0.0.1:${s.address().port}`, close: () => new Promise((ok) => s.close(ok)) };
}

// call sends GET url over HTTPS with the client certificate of pair (none when undefined).
function call(url, headers, client) {
  return new Promise((ok, fail) => {
    const req = https.request(url, {
      ca: certs.server.cert, headers, ...(client ? { cert: client.cert, key: client.key } : {}),
      agent: false,
    }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => ok({ status: res.statusCode, challenge: res.headers['www-authenticate'], body: b ? JSON.parse(b) : undefined }));
    });
    req.on('error', fail);
    req.end();
  });
}

const cases = [
  { name: 'ok/bound-token-with-its-certificate', client: () => certs.ledger, tok: () => token, status: 200 },
  { name: 'fail/bound-token-without-certificate', client: () => undefined, tok: () => token, status: 401,
    desc: 'token is certificate-bound and the request has no TLS client certificate' },
  { name: 'fail/bound-token-with-another-certificate', client: () => certs.other, tok: () => token, status: 401,
    desc: 'token is bound to another TLS client certificate' },
  { name: 'ok/bearer-token-with-a-certificate', client: () => certs.ledger, tok: () => bearer, status: 200 },
];

test('the token deputy issued is bound to ledger\'s certificate', () => {
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
  assert.deepEqual(payload.cnf, { 'x5t#S256': thumbprint(certs.ledger.cert) });
});

test('authenticate with peerCertificate, on node:https', async (t) => {
  const v = createVerifier({ issuer: d.issuer, audience: API });
  const srv = await serve(async (req, res) => {
    try {
      const p = await authenticate(v, {
        authorization: req.headers.authorization, dpop: req.headers.dpop, method: req.method,
        url: requestURL({ protocol: 'https', host: req.headers.host, path: req.url }),
        certificate: peerCertificate(req.socket),
      }, { scopes: ['read'] });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ cnf: p.cnf ?? null, clientId: p.clientId }));
    } catch (e) {
      if (e instanceof VerifyError) writeRefusal(res, e);
      else { res.statusCode = 500; res.end(); }
    }
  });
  t.after(srv.close);
  for (const c of cases) {
    await t.test(c.name, async () => {
      const r = await call(srv.url, { authorization: `Bearer ${c.tok()}` }, c.client());
      assert.equal(r.status, c.status, JSON.stringify(r.body));
      if (c.status === 200) {
        assert.deepEqual(r.body.cnf, c.tok() === token ? { 'x5t#S256': thumbprint(certs.ledger.cert) } : null);
      } else {
        assert.equal(r.body.error, 'invalid_token');
        assert.equal(r.body.error_description, c.desc);
        assert.match(r.challenge, /^Bearer error="invalid_token", error_description="token /);
      }
    });
  }
});

test('the Express and Fastify adapters read the connection\'s certificate', async (t) => {
  const v = createVerifier({ issuer: d.issuer, audience: API });
  const app = express();
  app.get('/', expressMiddleware(v, { scopes: ['read'] }), (req, res) => res.json({ cnf: req.deputy.cnf ?? null }));
  const viaExpress = await serve(app);
  t.after(viaExpress.close);

  const f = Fastify({
    serverFactory: (handler) => https.createServer({ key: certs.server.key, cert: certs.server.cert, requestCert: true, rejectUnauthorized: false }, handler),
  });
  f.decorateRequest('deputy', null);
  f.get('/', { preHandler: fastifyPreHandler(v, { scopes: ['read'] }) }, async (req) => ({ cnf: req.deputy.cnf ?? null }));
  await f.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => f.close());
  const viaFastify = `https://127.0.0.1:${f.server.address().port}`;

  for (const [name, url] of [['express', viaExpress.url], ['fastify', viaFastify]]) {
    for (const c of cases) {
      await t.test(`${name}: ${c.name}`, async () => {
        const r = await call(url, { authorization: `Bearer ${c.tok()}` }, c.client());
        assert.equal(r.status, c.status, JSON.stringify(r.body));
        if (c.desc) assert.equal(r.body.error_description, c.desc);
      });
    }
  }
});

test('verify: a certificate-bound token and the certificate as DER', async () => {
  const v = createVerifier({ issuer: d.issuer, audience: API, requireBinding: true });
  const der = new X509Certificate(certs.ledger.cert).raw;
  const p = await v.verify(token, { certificate: new Uint8Array(der) });
  assert.equal(p.cnf['x5t#S256'], thumbprint(certs.ledger.cert), 'a certificate-bound token satisfies requireBinding');
  await assert.rejects(v.verify(token, {}), (e) => e instanceof VerifyError && e.description === 'token is certificate-bound and the request has no TLS client certificate');
  await assert.rejects(v.verify(token, { certificate: new X509Certificate(certs.other.cert).raw }),
    (e) => e instanceof VerifyError && e.description === 'token is bound to another TLS client certificate');
  // Sent as a DPoP token, a certificate-bound token is refused as Go's VerifyRequest refuses it.
  const proof = await createProof({ key: await (await import('../dist/index.js')).generateDPoPKey(), method: 'GET', url: 'https://api.example/', accessToken: token });
  await assert.rejects(v.verify(token, { certificate: der, dpop: { proof, method: 'GET', url: 'https://api.example/' } }),
    (e) => e instanceof VerifyError && e.description === 'token is not DPoP-bound');
});

test('peerCertificate: undefined without TLS or without a client certificate', () => {
  assert.equal(peerCertificate(undefined), undefined);
  assert.equal(peerCertificate({}), undefined);
  assert.equal(peerCertificate({ getPeerCertificate: () => ({}) }), undefined);
  const raw = new X509Certificate(certs.ledger.cert).raw;
  assert.deepEqual(peerCertificate({ getPeerCertificate: () => ({ raw }) }), new Uint8Array(raw));
});
