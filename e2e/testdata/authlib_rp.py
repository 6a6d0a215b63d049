"""A strict OpenID Connect relying party built on authlib, run by e2e tests.

It discovers deputy and validates the metadata as authlib does (OpenID Connect
Discovery 1.0: RS256 must be among id_token_signing_alg_values_supported), redeems
an authorization code at the token endpoint (client_secret_basic, PKCE), and
validates the ID token against the JWKS with authlib's JWT and ID token claims
checks (iss, aud, exp, iat, nonce, azp, at_hash), accepting only the given
algorithms. It prints the ID token's header and claims as JSON and exits 0, or
prints the error and exits 1.

usage: authlib_rp.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI CODE VERIFIER NONCE ALG[,ALG]
"""
import base64
import json
import sys
import urllib.parse
import urllib.request

from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata


def get_json(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.load(resp)


def main():
    issuer, client_id, secret, redirect_uri, code, verifier, nonce, algs = sys.argv[1:9]
    meta = OpenIDProviderMetadata(get_json(issuer + "/.well-known/openid-configuration"))
    # Every check of meta.validate(), except that the tests' deputy is served over
    # plain HTTP on loopback where authlib wants https URLs.
    loopback = issuer.startswith("http://127.0.0.1:")
    for key in meta.REGISTRY_KEYS:
        try:
            getattr(meta, "validate_" + key)()
        except ValueError as e:
            if not (loopback and str(e).endswith('MUST use "https" scheme')):
                raise
    if meta["issuer"] != issuer:
        raise ValueError("issuer %r, want %r" % (meta["issuer"], issuer))

    basic = base64.b64encode(
        (urllib.parse.quote(client_id, safe="") + ":" + urllib.parse.quote(secret, safe="")).encode()
    ).decode()
    body = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": redirect_uri, "code_verifier": verifier,
    }).encode()
    tok = get_json(meta["token_endpoint"], body, {
        "Authorization": "Basic " + basic,
        "Content-Type": "application/x-www-form-urlencoded",
    })

    keys = JsonWebKey.import_key_set(get_json(meta["jwks_uri"]))
    jwt = JsonWebToken(algs.split(","))
    claims = jwt.decode(
        tok["id_token"], keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": tok["access_token"]},
    )
    claims.validate(leeway=30)
    print(json.dumps({"header": dict(claims.header), "claims": dict(claims)}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report any failure as the test's message
        print("%s: %s" % (type(e).__name__, e))
        sys.exit(1)
