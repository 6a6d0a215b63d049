import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDeputy, clientCredentials } from './deputy.mjs';

// The harness itself: a real deputy answers discovery and issues a token.
test('a real deputy starts and issues a token', async () => {
  const d = await startDeputy({
    audiences: [{ id: 'https://api1.example', scopes: ['payments:read'] }],
    clients: [{ id: 'web-app', secret: 'web-app-secret', grant_types: ['client_credentials'],
      scopes: ['payments:read'], audiences: ['https://api1.example'] }],
  });
  try {
    const disco = await (await fetch(`${d.issuer}/.well-known/openid-configuration`)).json();
    assert.equal(disco.issuer, d.issuer);
    const t = await clientCredentials(d, 'web-app', 'web-app-secret');
    assert.equal(t.token_type, 'Bearer');
    assert.match(t.access_token, /^ey/);
  } finally {
    await d.stop();
  }
});
