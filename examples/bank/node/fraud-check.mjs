// fraud-check, the last service of the demo bank's chain (examples/bank/fraud.go),
// written in Node on deputy's TypeScript SDK (sdk/ts; build it first with
// `cd sdk/ts && npm ci && npm run build`). It does what the Go service does:
//
//   POST /checks  {"account": "…", "amount": "…"}  →  {"account", "amount", "verdict"}
//
// Only a DPoP-bound access token for its audience with the scope fraud:check is
// accepted, with a proof of its key for this request (RFC 9449); with a trust domain,
// the request must also carry the transaction's token (Txn-Token), for the same
// user. A debit above 10,000 EUR goes to review. Each check is reported into
// deputy's audit trail, under the trace id of the request's traceparent.
//
// Each accepted request is printed on standard output as one JSON line, for whoever
// started the service (`deputy demo --fraud-check-node` prints each hop from it):
//   {"service":"fraud-check","principal":{…},"txn":{…},"traceparent":"…"}
// principal is the access token as the SDK verified it (subject, clientId, audience,
// scopes, actors, act, cnf, jti, expiresAt, token), txn the transaction token's
// (txn, subject, scopes, context, requestContext, issuedAt, expiresAt, jti, token),
// absent without a trust domain. They carry the raw tokens: what a careless log line
// would leak, and what the demo's thief replays, in vain.
//
// Configuration, from the environment:
//   DEPUTY_ISSUER   deputy's issuer URL (required)
//   LISTEN          host:port to listen on (default 127.0.0.1:0: any free port; the
//                   first line printed is {"listening": "http://host:port"})
//   CLIENT_ID, CLIENT_SECRET   fraud-check's client at deputy (for call reports)
//   AUDIENCE        fraud-check's audience id (default https://fraud.bank.example)
//   TRUST_DOMAIN    deputy's txn_tokens.trust_domain; unset: no transaction tokens
//   PUBLIC_URL      the URL clients call, when a proxy is in front (DPoP htu)
//   STOP_AT_STDIN_EOF  set to 1 by a parent that holds the service's standard input
//                   open: the service stops when it closes, so it never outlives
//                   the parent (deputy demo does this)
import http from 'node:http';
import {
  createVerifier, authenticate, requestURL, writeRefusal, VerifyError,
  authenticateTxn, txnErrorResponse,
  createReporter,
} from '../../../sdk/ts/dist/index.js';

const env = process.env;
const issuer = env.DEPUTY_ISSUER;
if (!issuer) {
  console.error('fraud-check: DEPUTY_ISSUER is required');
  process.exit(2);
}
const audience = env.AUDIENCE || 'https://fraud.bank.example';
const verifier = createVerifier({ issuer, audience, requireBinding: true });
// Transaction tokens are checked with the access tokens' issuer and key cache.
const txn = env.TRUST_DOMAIN ? verifier.txn({ trustDomain: env.TRUST_DOMAIN }) : undefined;
const reports = env.CLIENT_ID
  ? createReporter({ issuer, clientId: env.CLIENT_ID, clientSecret: env.CLIENT_SECRET ?? '', flushInterval: 100 })
  : undefined;

function send(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
}

async function readJSON(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > 64 << 10) throw new Error('body too large');
    chunks.push(c);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function check(req, res) {
  let p;
  try {
    p = await authenticate(verifier, {
      authorization: req.headers.authorization,
      dpop: req.headers.dpop,
      method: req.method,
      url: requestURL({ publicUrl: env.PUBLIC_URL, protocol: 'http', host: req.headers.host, path: req.url }),
    }, { scopes: ['fraud:check'] });
  } catch (e) {
    if (e instanceof VerifyError) return writeRefusal(res, e);
    throw e;
  }
  let t;
  if (txn) {
    try {
      t = await authenticateTxn(txn, req.headers);
    } catch (e) {
      const r = txnErrorResponse(txn, e);
      res.writeHead(r.status, r.headers);
      return res.end(r.body);
    }
    if (!t || t.subject !== p.subject) {
      return send(res, 403, { error: "the transaction is not the user's" });
    }
  }
  // Written before the answer; on a pipe Node may send it a moment after the answer,
  // so whoever reads the lines waits for them rather than assume they came first.
  const { claims: _pc, ...principal } = p;
  const { claims: _tc, ...transaction } = t ?? {};
  console.log(JSON.stringify({ service: 'fraud-check', principal, txn: t ? transaction : undefined, traceparent: req.headers.traceparent }));
  let c;
  try {
    c = await readJSON(req);
  } catch {
    return send(res, 400, { error: 'malformed check' });
  }
  const amount = Number.parseFloat(c.amount);
  const verdict = Number.isNaN(amount) || amount > 10_000 ? 'review' : 'ok';
  reports?.reportRequest(p.token, 'check', `debit of ${c.amount} EUR from ${c.account}`, verdict, { traceparent: req.headers.traceparent });
  send(res, 200, { account: c.account, amount: c.amount, verdict });
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url.split('?')[0] !== '/checks') {
    return send(res, 404, { error: 'not found' });
  }
  check(req, res).catch((e) => {
    console.error('fraud-check:', e);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
  });
});

const [host, port] = (env.LISTEN || '127.0.0.1:0').split(/:(?=[^:]*$)/);
server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(JSON.stringify({ listening: `http://${a.address}:${a.port}` }));
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeIdleConnections();
  await reports?.close();
  // Exit once what was printed is out: a write's callback runs after the writes before it.
  process.stdout.write('', () => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (env.STOP_AT_STDIN_EOF === '1') {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
