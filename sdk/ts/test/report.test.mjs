// createReporter against a real deputy: api1 reports what it did with the tokens
// web-app sent it; deputy's audit trail (GET /audit/events) shows the calls.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { startDeputy, clientCredentials } from './deputy.mjs';
import {
  createReporter, DropError, DeliveryError, RejectedError, unsafeJti, traceIdOf,
  DROP_QUEUE_FULL, DROP_NO_JTI, DROP_INVALID_CALL,
} from '../dist/report.js';

const config = {
  audiences: [
    { id: 'https://api1.example', client: 'api1', scopes: ['payments:read'] },
    { id: 'https://api2.example', client: 'api2', scopes: ['ledger:read'] },
  ],
  clients: [
    { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
      scopes: ['payments:read', 'ledger:read'], audiences: ['https://api1.example'] },
    { id: 'batch-job', secret: 'batch-job-secret', grant_types: ['client_credentials'],
      scopes: ['ledger:read'], audiences: ['https://api2.example'] },
    { id: 'api1', secret: 'api1 secret:+%', audiences: ['https://api1.example'] },
    { id: 'api2', secret: 'api2-secret', audiences: ['https://api2.example'] },
    { id: 'auditor', secret: 'auditor-secret', grant_types: ['client_credentials'], scopes: ['deputy:audit'] },
  ],
};
const API1 = { clientId: 'api1', clientSecret: 'api1 secret:+%' };

// counting wraps fetch and keeps the bodies of the reports (POST …/calls) it sends.
function counting() {
  const c = { reports: [], all: 0 };
  c.fetch = async (input, init) => {
    c.all++;
    if ((init?.method ?? 'GET') === 'POST') c.reports.push(JSON.parse(init.body));
    return fetch(input, init);
  };
  return c;
}

// auditEvents reads deputy's trail as the auditor client (README "HTTP endpoints": /audit/events).
async function auditEvents(d, query) {
  const r = await fetch(`${d.issuer}/audit/events?${new URLSearchParams(query)}`, {
    headers: { authorization: 'Basic ' + Buffer.from('auditor:auditor-secret').toString('base64') },
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.text()).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

function collect() {
  const told = [];
  return { told, onError: (e) => told.push(e) };
}

async function tokenForApi1(d) {
  return (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'payments:read' })).access_token;
}

describe('report against deputy', () => {
  let d;
  before(async () => { d = await startDeputy(config); });
  after(async () => { await d?.stop(); });

  test('ok/batches: seven calls in reports of three, in deputy\'s trail with the token\'s subject', async () => {
    const t = await tokenForApi1(d);
    const jti = decodeJwt(t).jti;
    const c = counting();
    const { told, onError } = collect();
    const r = createReporter({ issuer: d.issuer, ...API1, fetch: c.fetch, batchSize: 3, flushInterval: 60_000, onError });
    for (let i = 0; i < 7; i++) {
      assert.equal(r.report({ tokenJti: jti, action: 'read', resource: `account/${i}`, outcome: 'ok', time: new Date(Date.now() - 1000) }), undefined);
    }
    await r.flush();
    assert.deepEqual(c.reports.map((b) => b.calls.length), [3, 3, 1]);
    assert.equal(c.all, 4, 'discovery once, then three reports');
    assert.deepEqual(r.stats(), { sent: 7, rejected: 0, dropped: 0, failed: 0 });
    assert.deepEqual(told, []);
    const calls = (await auditEvents(d, { type: 'call.reported', client: 'api1' })).filter((e) => e.parent_jti === jti);
    assert.deepEqual(calls.map((e) => e.reason), Array.from({ length: 7 }, (_, i) => `read account/${i}: ok`));
    for (const e of calls) {
      assert.equal(e.subject, 'web-app');
      assert.equal(e.decision, 'allow');
      assert.deepEqual(e.audiences, ['https://api1.example']);
    }
    await r.close();
  });

  test('ok/wire: the JSON shape of sdk/report, with time in microseconds and the trace id kept', async () => {
    const t = await tokenForApi1(d);
    const jti = decodeJwt(t).jti;
    const c = counting();
    const r = createReporter({ issuer: d.issuer, ...API1, fetch: c.fetch });
    const time = new Date(Date.now() - 5_000);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    r.report({ tokenJti: jti, action: 'book', resource: 'entry 42', outcome: 'booked', detail: '3 lines', time, traceId });
    r.report({ tokenJti: jti, action: 'list' });
    await r.close();
    assert.equal(c.reports.length, 1);
    const [full, bare] = c.reports[0].calls;
    assert.deepEqual(full, { token_jti: jti, action: 'book', resource: 'entry 42', outcome: 'booked',
      time: time.toISOString().replace('Z', '000Z'), detail: '3 lines', trace_id: traceId });
    assert.deepEqual(Object.keys(bare), ['token_jti', 'action', 'time'], 'empty fields are left out; time is when reported');
    const [e] = await auditEvents(d, { type: 'call.reported', trace_id: traceId });
    assert.equal(e.reason, 'book entry 42: booked');
    assert.equal(e.parent_jti, jti);
    assert.equal(e.detail.detail, '3 lines');
    assert.equal(e.detail.resource, 'entry 42');
  });

  test('ok/few requests: twenty calls, one report, sent after flushInterval without flush', async () => {
    const t = await tokenForApi1(d);
    const c = counting();
    const r = createReporter({ issuer: d.issuer, ...API1, fetch: c.fetch, flushInterval: 100 });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    for (let i = 0; i < 20; i++) r.reportRequest(t, 'read', `statement/${i}`, 'ok', { traceparent });
    const deadline = Date.now() + 5_000;
    while (r.stats().sent < 20 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
    assert.equal(r.stats().sent, 20);
    assert.equal(c.reports.length, 1);
    assert.equal(c.reports[0].calls[0].token_jti, decodeJwt(t).jti);
    assert.equal(c.reports[0].calls[19].trace_id, '0af7651916cd43dd8448eb211c80319c');
    await r.close();
    const events = await auditEvents(d, { type: 'call.reported', trace_id: '0af7651916cd43dd8448eb211c80319c' });
    assert.equal(events.length, 20);
  });

  test('fail/rejected: a call on a token neither issued to nor addressed to the reporter, and an unknown jti', async () => {
    const t = await tokenForApi1(d);
    const jti = decodeJwt(t).jti;
    const { told, onError } = collect();
    // api2 reports on api1's token: refused one by one; the good call goes in.
    const t2 = (await clientCredentials(d, 'batch-job', 'batch-job-secret', { scope: 'ledger:read' })).access_token;
    const r = createReporter({ issuer: d.issuer, clientId: 'api2', clientSecret: 'api2-secret', onError });
    r.report({ tokenJti: jti, action: 'read' });
    r.report({ tokenJti: decodeJwt(t2).jti, action: 'read', outcome: 'ok' });
    r.report({ tokenJti: 'no-such-jti', action: 'read' });
    await r.close();
    assert.deepEqual(r.stats(), { sent: 1, rejected: 2, dropped: 0, failed: 0 });
    assert.equal(told.length, 1);
    assert.ok(told[0] instanceof RejectedError);
    assert.deepEqual(told[0].rejections.map((x) => x.call.tokenJti), [jti, 'no-such-jti']);
    assert.match(told[0].rejections[0].reason, /neither issued to nor addressed to the reporting client/);
    const denied = (await auditEvents(d, { type: 'request.denied', client: 'api2' })).filter((e) => e.parent_jti === jti);
    assert.equal(denied.length, 1);
    assert.match(denied[0].reason, /^call report refused: /);
  });

  test('fail/invalid_client: a wrong secret loses the report, not retried', async () => {
    const t = await tokenForApi1(d);
    const c = counting();
    const { told, onError } = collect();
    const r = createReporter({ issuer: d.issuer, clientId: 'api1', clientSecret: 'wrong', fetch: c.fetch, onError });
    r.report({ tokenJti: decodeJwt(t).jti, action: 'read' });
    r.report({ tokenJti: decodeJwt(t).jti, action: 'write' });
    await r.close();
    assert.deepEqual(r.stats(), { sent: 0, rejected: 0, dropped: 0, failed: 2 });
    assert.equal(c.reports.length, 1);
    assert.equal(told.length, 1);
    const e = told[0];
    assert.ok(e instanceof DeliveryError);
    assert.equal(e.status, 401);
    assert.equal(e.error, 'invalid_client');
    assert.equal(e.attempts, 1);
    assert.deepEqual(e.calls.map((x) => x.action), ['read', 'write']);
  });

  test('fail/drops: invalid calls, tokens without a jti and a full queue are dropped, counted and told', async () => {
    const t = await tokenForApi1(d);
    const jti = decodeJwt(t).jti;
    const { told, onError } = collect();
    const r = createReporter({ issuer: d.issuer, ...API1, queueSize: 2, flushInterval: 60_000, onError });
    r.report({ tokenJti: jti, action: '' });
    r.report({ action: 'read' });
    r.report(undefined);
    r.reportRequest('not-a-jwt', 'read');
    r.reportRequest('a.' + Buffer.from('{"sub":"x"}').toString('base64url') + '.c', 'read');
    for (let i = 0; i < 5; i++) r.report({ tokenJti: jti, action: 'read', resource: `n/${i}` });
    await r.flush();
    assert.deepEqual(r.stats(), { sent: 2, rejected: 0, dropped: 8, failed: 0 });
    const drops = Object.fromEntries(told.filter((e) => e instanceof DropError).map((e) => [e.reason, e.count]));
    assert.deepEqual(drops, { [DROP_INVALID_CALL]: 3, [DROP_NO_JTI]: 2, [DROP_QUEUE_FULL]: 3 });
    assert.equal(told.length, 3);
    await r.close();
    r.report({ tokenJti: jti, action: 'late' });
    assert.equal(r.stats().dropped, 9, 'after close: dropped');
    await r.flush();
  });
});

describe('report: deputy down', () => {
  test('fail/unreachable: report never throws; the calls fail after the retries and close resolves', async () => {
    const d = await startDeputy(config);
    const endpoint = `${d.issuer}/calls`;
    await d.stop();
    const { told, onError } = collect();
    const r = createReporter({ endpoint, ...API1, maxRetries: 2, batchSize: 5, onError });
    for (let i = 0; i < 12; i++) assert.doesNotThrow(() => r.report({ tokenJti: 'j', action: 'read' }));
    const started = Date.now();
    await r.close();
    assert.ok(Date.now() - started < 5_000);
    assert.deepEqual(r.stats(), { sent: 0, rejected: 0, dropped: 0, failed: 12 });
    assert.deepEqual(told.map((e) => [e.constructor.name, e.calls.length, e.attempts, e.status]),
      [['DeliveryError', 5, 3, undefined], ['DeliveryError', 5, 3, undefined], ['DeliveryError', 2, 3, undefined]]);
  });

  test('fail/unreachable by discovery: the same, and a throwing onError changes nothing', async () => {
    const d = await startDeputy(config);
    const issuer = d.issuer;
    await d.stop();
    const r = createReporter({ issuer, ...API1, maxRetries: 0, onError: () => { throw new Error('boom'); } });
    r.report({ tokenJti: 'j', action: 'read' });
    await r.close();
    assert.deepEqual(r.stats(), { sent: 0, rejected: 0, dropped: 0, failed: 1 });
  });

  test('fail/5xx: retried with backoff, then given up; close with an aborted signal gives up at once', async () => {
    let posts = 0;
    const { told, onError } = collect();
    const r = createReporter({ endpoint: 'http://127.0.0.1:9/calls', ...API1, maxRetries: 2, onError,
      fetch: async () => { posts++; return Response.json({ error: 'server_error' }, { status: 503 }); } });
    r.report({ tokenJti: 'j', action: 'read' });
    await r.flush();
    assert.equal(posts, 3);
    assert.equal(told[0].status, 503);
    assert.equal(told[0].error, 'server_error');

    const slow = createReporter({ endpoint: 'http://127.0.0.1:9/calls', ...API1, maxRetries: 50, onError,
      fetch: async () => Response.json({ error: 'temporarily_unavailable' }, { status: 503 }) });
    slow.report({ tokenJti: 'j', action: 'read' });
    slow.report({ tokenJti: 'k', action: 'read' });
    const started = Date.now();
    await slow.close({ signal: AbortSignal.timeout(300) });
    assert.ok(Date.now() - started < 2_000, `close took ${Date.now() - started} ms`);
    assert.deepEqual(slow.stats(), { sent: 0, rejected: 0, dropped: 0, failed: 2 });
    assert.match(told.at(-1).message, /reporter was closed before the report was delivered/);
  });
});

describe('report: config and helpers', () => {
  const bad = [
    [{ clientSecret: 's', issuer: 'http://x' }, /clientId is required/],
    [{ clientId: 'c', issuer: 'http://x' }, /clientSecret is required/],
    [{ clientId: 'c', clientSecret: 's' }, /issuer or endpoint is required/],
    [{ clientId: 'c', clientSecret: 's', endpoint: 'x' }, /endpoint must be an absolute http or https URL/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'http://x', batchSize: 501 }, /batchSize must be 1 to 500/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'http://x', queueSize: 0 }, /queueSize must be at least 1/],
    [{ clientId: 'c', clientSecret: 's', issuer: 'http://x', maxRetries: -1 }, /maxRetries must not be negative/],
  ];
  for (const [cfg, want] of bad) {
    test(`fail/config: ${want.source}`, () => {
      assert.throws(() => createReporter(cfg), (e) => e instanceof TypeError && want.test(e.message));
    });
  }

  test('ok/unsafeJti: reads the payload, refuses what is no JWS', () => {
    const p = (o) => 'h.' + Buffer.from(JSON.stringify(o)).toString('base64url') + '.s';
    assert.equal(unsafeJti(p({ jti: 'abc' })), 'abc');
    assert.equal(unsafeJti(p({ jti: '' })), undefined);
    assert.equal(unsafeJti(p({ jti: 7 })), undefined);
    assert.equal(unsafeJti('a.b'), undefined);
    assert.equal(unsafeJti('a.%%%.c'), undefined);
    assert.equal(unsafeJti('h.' + Buffer.from('null').toString('base64url') + '.s'), undefined);
    assert.equal(unsafeJti(p({ jti: 'x', pad: 'y'.repeat(70_000) })), undefined);
  });

  test('ok/traceIdOf: the trace id of a valid traceparent only', () => {
    assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(traceIdOf('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later'), '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x'), undefined);
    assert.equal(traceIdOf('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), undefined);
    assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'), undefined);
    assert.equal(traceIdOf('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), undefined);
    assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04'), undefined, 'a flag version 00 does not define');
    assert.equal(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03'), '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(traceIdOf('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'), undefined);
    assert.equal(traceIdOf(undefined), undefined);
    assert.equal(traceIdOf(null), undefined);
  });

  test('ok/split: a call of more than 1 MiB is rejected without being sent', async () => {
    const { told, onError } = collect();
    let posts = 0;
    const r = createReporter({ endpoint: 'http://127.0.0.1:9/calls', ...API1, onError,
      fetch: async (_i, init) => { posts++; return Response.json({ accepted: JSON.parse(init.body).calls.length, rejected: [] }); } });
    r.report({ tokenJti: 'j', action: 'big', detail: 'x'.repeat(1 << 20) });
    r.report({ tokenJti: 'j', action: 'small' });
    await r.close();
    assert.equal(posts, 1);
    assert.deepEqual(r.stats(), { sent: 1, rejected: 1, dropped: 0, failed: 0 });
    assert.ok(told[0] instanceof RejectedError);
    assert.match(told[0].rejections[0].reason, /too large/);
  });
});
