// The demo bank's fraud-check in Node (examples/bank/node/fraud-check.mjs), run as
// a process against a real deputy: it accepts a DPoP-bound token with its proof,
// refuses the same token as Bearer, decides the verdict as the Go service does, and
// with a trust domain demands the transaction's token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDeputy, clientCredentials } from './deputy.mjs';
import { createProof, dpopHeaders, generateDPoPKey } from '../dist/index.js';

const example = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'bank', 'node', 'fraud-check.mjs');
const fraudAudience = 'https://fraud.bank.example';

let d;
let key;
let token;
const services = [];

// startFraudCheck runs the example with env and resolves once it listens; lines
// collects what it prints afterwards (one JSON object per accepted request).
async function startFraudCheck(env) {
  const child = spawn(process.execPath, [example], {
    env: { PATH: process.env.PATH, DEPUTY_ISSUER: d.issuer, CLIENT_ID: 'fraud-check', CLIENT_SECRET: 'fraud-check-secret', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b) => { stderr += b; });
  const lines = [];
  const rl = createInterface({ input: child.stdout });
  const listening = new Promise((ok, fail) => {
    rl.on('line', (l) => {
      const v = JSON.parse(l);
      if (v.listening) ok(v.listening);
      else lines.push(v);
    });
    child.once('exit', (code) => fail(new Error(`fraud-check exited (${code}): ${stderr}`)));
  });
  const s = { child, url: await listening, lines };
  services.push(s);
  return s;
}

// waitLines waits until s has printed n lines (Node writes to a pipe
// asynchronously: a line may come after its answer) and returns them.
async function waitLines(s, n) {
  for (let i = 0; i < 250 && s.lines.length < n; i++) await new Promise((ok) => setTimeout(ok, 20));
  return s.lines;
}

// marker sends one more accepted check and waits for its line: the lines before it
// are all the service will print for the requests before it. It returns them.
async function settled(s) {
  const url = `${s.url}/checks`;
  const n = s.lines.length;
  const r = await postCheck(s, { account: 'marker', amount: '0' }, await dpopHeaders({ key, method: 'POST', url, accessToken: token }));
  assert.equal(r.status, 200);
  const lines = await waitLines(s, n + 1);
  assert.equal(lines.at(-1).principal.jti !== undefined, true);
  return lines.slice(0, -1);
}

before(async () => {
  d = await startDeputy({
    audiences: [{ id: fraudAudience, scopes: ['fraud:check'], client: 'fraud-check' }],
    clients: [
      { id: 'auditor', secret: 'auditor-secret', grant_types: ['client_credentials'], scopes: ['deputy:audit'] },
      { id: 'ledger', secret: 'ledger-secret', grant_types: ['client_credentials'], scopes: ['fraud:check'], audiences: [fraudAudience] },
      { id: 'fraud-check', secret: 'fraud-check-secret', audiences: [fraudAudience] },
    ],
  });
  key = await generateDPoPKey();
  const proof = await createProof({ key, method: 'POST', url: d.tokenEndpoint });
  const t = await clientCredentials(d, 'ledger', 'ledger-secret', { scope: 'fraud:check' }, { DPoP: proof });
  assert.equal(t.token_type, 'DPoP');
  token = t.access_token;
});

after(async () => {
  for (const s of services) {
    if (s.child.exitCode === null) {
      s.child.kill('SIGTERM');
      await once(s.child, 'exit');
    }
  }
  await d?.stop();
});

async function postCheck(s, body, headers) {
  const r = await fetch(`${s.url}/checks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, challenge: r.headers.get('www-authenticate'), body: await r.json() };
}

test('a DPoP-bound token with its proof gets a verdict, as the Go fraud-check gives it', async () => {
  const s = await startFraudCheck({});
  const url = `${s.url}/checks`;
  let r = await postCheck(s, { account: 'alice', amount: '250.00' }, await dpopHeaders({ key, method: 'POST', url, accessToken: token }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { account: 'alice', amount: '250.00', verdict: 'ok' });
  r = await postCheck(s, { account: 'alice', amount: '20000' }, await dpopHeaders({ key, method: 'POST', url, accessToken: token }));
  assert.equal(r.body.verdict, 'review');
  r = await postCheck(s, { account: 'alice', amount: 'lots' }, await dpopHeaders({ key, method: 'POST', url, accessToken: token }));
  assert.equal(r.body.verdict, 'review');
  const lines = await settled(s);
  assert.equal(lines.length, 3);
  const { service, principal, txn } = lines[0];
  assert.equal(service, 'fraud-check');
  assert.equal(principal.subject, 'ledger');
  assert.equal(principal.clientId, 'ledger');
  assert.deepEqual(principal.audience, [fraudAudience]);
  assert.deepEqual(principal.scopes, ['fraud:check']);
  assert.match(principal.cnf.jkt, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(principal.token, token);
  assert.equal(principal.claims, undefined, 'the line carries the principal, not every claim twice');
  assert.equal(txn, undefined);
});

test('the token copied and replayed as Bearer, or with a replayed proof, is refused', async () => {
  const s = await startFraudCheck({});
  const url = `${s.url}/checks`;
  let r = await postCheck(s, { account: 'alice', amount: '1' }, { authorization: `Bearer ${token}` });
  assert.equal(r.status, 401);
  assert.match(r.challenge, /^DPoP error="invalid_token"/);
  const h = await dpopHeaders({ key, method: 'POST', url, accessToken: token });
  assert.equal((await postCheck(s, { account: 'alice', amount: '1' }, h)).status, 200);
  r = await postCheck(s, { account: 'alice', amount: '1' }, h); // the same proof again
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'invalid_dpop_proof');
  r = await postCheck(s, { account: 'alice', amount: '1' }, {});
  assert.equal(r.status, 401);
  assert.equal((await settled(s)).length, 1, 'only the accepted request is observed');
});

test('with a trust domain, a request without the transaction token is refused', async () => {
  const s = await startFraudCheck({ TRUST_DOMAIN: 'bank.example' });
  const url = `${s.url}/checks`;
  const r = await postCheck(s, { account: 'alice', amount: '1' }, await dpopHeaders({ key, method: 'POST', url, accessToken: token }));
  assert.equal(r.status, 401);
  assert.equal(r.challenge, 'Txn-Token realm="bank.example"');
  await new Promise((ok) => setTimeout(ok, 200)); // no accepted request to mark the end with: no Txn-Token here
  assert.equal(s.lines.length, 0);
});

test('the trace of the request travels into the observation and the call report', async () => {
  const s = await startFraudCheck({});
  const url = `${s.url}/checks`;
  const traceId = '5a3d0c7e9b1f4e2a8c6d4b2a0f1e3d5c';
  const traceparent = `00-${traceId}-1f2e3d4c5b6a7988-01`;
  const r = await postCheck(s, { account: 'carol', amount: '12500.00' },
    { traceparent, ...(await dpopHeaders({ key, method: 'POST', url, accessToken: token })) });
  assert.equal(r.body.verdict, 'review');
  assert.equal((await waitLines(s, 1))[0].traceparent, traceparent);
  // The reporter sends within 100 ms; deputy's trail has the call under the trace.
  let calls = [];
  for (let i = 0; i < 100 && calls.length === 0; i++) {
    const res = await fetch(`${d.issuer}/audit/events?${new URLSearchParams({ type: 'call.reported', trace_id: traceId })}`, {
      headers: { authorization: 'Basic ' + Buffer.from('auditor:auditor-secret').toString('base64') },
    });
    assert.equal(res.status, 200);
    calls = (await res.text()).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)); // NDJSON
    if (calls.length === 0) await new Promise((ok) => setTimeout(ok, 50));
  }
  assert.equal(calls.length, 1, 'the call is on record under the request\'s trace id');
  assert.equal(calls[0].client_id, 'fraud-check');
  assert.equal(calls[0].parent_jti, s.lines[0].principal.jti);
});

test('with STOP_AT_STDIN_EOF=1 the service stops when its parent closes its standard input', async () => {
  const child = spawn(process.execPath, [example], {
    env: { PATH: process.env.PATH, DEPUTY_ISSUER: d.issuer, STOP_AT_STDIN_EOF: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const rl = createInterface({ input: child.stdout });
  const [line] = await once(rl, 'line');
  assert.match(JSON.parse(line).listening, /^http:\/\/127\.0\.0\.1:\d+$/);
  const exited = once(child, 'exit');
  child.stdin.end(); // as when the parent dies
  const [code] = await Promise.race([exited, new Promise((_, fail) => setTimeout(() => fail(new Error('still running 5 s after its stdin closed')), 5000))]);
  assert.equal(code, 0);
});
