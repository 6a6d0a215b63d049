// panva's openid-client and dpop, unmodified, obtain DPoP-bound tokens from deputy.
// Usage: node dpop_client.mjs <issuer> <client id> <client secret>
// Prints one JSON line: what each library got.
import * as client from 'openid-client';
import * as dpopLib from 'dpop';

const [issuer, id, secret] = process.argv.slice(2);
const out = {};

// openid-client: discovery, client_credentials with a DPoP handle (it answers
// use_dpop_nonce by retrying with the nonce).
const config = await client.discovery(new URL(issuer), id, secret, client.ClientSecretBasic(secret), {
  execute: [client.allowInsecureRequests],
});
const keyPair = await client.randomDPoPKeyPair('ES256');
const handle = client.getDPoPHandle(config, keyPair);
const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: handle });
out.openid_client = { token_type: tokens.token_type, access_token: tokens.access_token };

// dpop: a proof made by hand (PS256, an RSA key), the nonce from deputy's challenge.
const kp = await dpopLib.generateKeyPair('PS256');
const tokenURL = config.serverMetadata().token_endpoint;
const post = async (nonce) => fetch(tokenURL, {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64'),
    dpop: await dpopLib.generateProof(kp, tokenURL, 'POST', nonce),
  },
  body: 'grant_type=client_credentials',
});
let res = await post(undefined);
if (res.status === 400 && res.headers.get('dpop-nonce')) {
  res = await post(res.headers.get('dpop-nonce'));
}
const body = await res.json();
out.dpop = { status: res.status, token_type: body.token_type, access_token: body.access_token, error: body.error };
console.log(JSON.stringify(out));
