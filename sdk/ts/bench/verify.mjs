// How fast the SDK checks what a service receives, against a real deputy:
// `npm run bench` (after `npm run build`; DEPUTY_BIN or deputy on PATH, as the
// tests find it). It prints operations per second and the time per operation for
// an access token (ES256), a DPoP-bound token with its proof, a transaction token,
// and an exchange answered from the cache. Each is run for BENCH_MS (default 3000).
import { startDeputy, clientCredentials } from '../test/deputy.mjs';
import {
  createVerifier, createExchanger, createProof, generateDPoPKey, obtainTxnToken,
} from '../dist/index.js';

const ms = Number(process.env.BENCH_MS ?? 3000);
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const d = await startDeputy({
  txn_tokens: { trust_domain: 'bank.example' },
  audiences: [
    { id: 'https://api1.example', client: 'api1', scopes: ['read'] },
    { id: 'https://api2.example', client: 'api2', scopes: ['read'] },
  ],
  clients: [
    { id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'], scopes: ['read'], audiences: ['https://api1.example'] },
    { id: 'api1', secret: 'api1-secret', grant_types: [TE], audiences: ['https://api1.example'] },
    { id: 'api2', secret: 'api2-secret', audiences: ['https://api2.example'] },
  ],
  exchange: {
    policies: [
      { name: 'api1-to-api2', client: 'api1', audiences: ['https://api2.example'], scopes: ['read'] },
      { name: 'api1-txn', client: 'api1', requested_token_types: ['txn_token'], scopes: ['read'] },
    ],
  },
});

async function run(name, op) {
  await op(); // warm: keys fetched, caches filled
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) await op();
    n += 100;
    now = process.hrtime.bigint();
  }
  const s = Number(now - start) / 1e9;
  console.log(`${name.padEnd(44)} ${Math.round(n / s).toString().padStart(8)} /s  ${(s * 1e6 / n).toFixed(1).padStart(8)} µs/op`);
}

try {
  console.log(`node ${process.version}, one thread, ${ms} ms each`);
  const t0 = (await clientCredentials(d, 'web-app', 'web-app-secret', { scope: 'read' })).access_token;
  const api1 = createVerifier({ issuer: d.issuer, audience: 'https://api1.example' });
  await run('verify: bearer access token (ES256)', () => api1.verify(t0, { scopes: ['read'] }));

  const key = await generateDPoPKey();
  const x = createExchanger({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret', dpopKey: key });
  const bound = (await x.exchange(t0, 'https://api2.example', ['read'])).accessToken;
  const api2 = createVerifier({ issuer: d.issuer, audience: 'https://api2.example', requireBinding: true });
  const url = 'https://api2.example/entries';
  await run('verify: DPoP-bound token + proof (ES256)', async () => {
    const proof = await createProof({ key, method: 'POST', url, accessToken: bound });
    await api2.verify(bound, { dpop: { proof, method: 'POST', url } });
  });
  await run('  of which: making the proof (ES256)', () => createProof({ key, method: 'POST', url, accessToken: bound }));

  const txn = await obtainTxnToken({ issuer: d.issuer, clientId: 'api1', clientSecret: 'api1-secret' }, t0, { scopes: ['read'] });
  const tv = api1.txn({ trustDomain: 'bank.example' });
  await run('verify: transaction token (ES256)', () => tv.verify(txn.token));

  await run('exchange: answered from the cache', () => x.exchange(t0, 'https://api2.example', ['read']));
} finally {
  await d.stop();
}
