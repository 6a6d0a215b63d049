package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// idTokenAlgClients sign in like the portal; rp-es256 asks for ES256 ID tokens,
// and api1 for EdDSA ones from token exchange.
const idTokenAlgClients = signinClients + `
  - id: rp-es256
    secret: rp-es256-secret
    grant_types: [authorization_code]
    redirect_uris: ["https://rp.example/cb"]
    scopes: [openid, email]
    id_token_signed_response_alg: ES256
`

// authlibPython is a python3 that has Debian's python3-authlib: the test fails
// without it (.ci/run installs it), it never skips.
func authlibPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import authlib.jose, authlib.oidc.core").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with authlib: install it with `apt-get install -y python3-authlib` (.ci/run does)")
	return ""
}

// TestStrictRelyingPartyAuthlib: authlib, a strict OpenID Connect client, accepts
// deputy's discovery document (RS256 among id_token_signing_alg_values_supported,
// OpenID Connect Discovery 1.0 §3), redeems a code and validates the RS256 ID token
// against the JWKS, while access tokens stay ES256. A client that asks for ES256
// (id_token_signed_response_alg) gets ES256 ID tokens; token exchange issues ID
// tokens with the requesting client's algorithm, and deputy takes both back as
// subject tokens.
func TestStrictRelyingPartyAuthlib(t *testing.T) {
	py := authlibPython(t)
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+idTokenAlgClients, 1)
	cfg = strings.Replace(cfg, "  - {id: api1, secret: api1-secret,", "  - {id: api1, id_token_signed_response_alg: EdDSA, secret: api1-secret,", 1)
	cfg = strings.Replace(cfg, "      scopes: [ledger:read, ledger:write]\n", "      scopes: [ledger:read, ledger:write]\n      requested_token_types: [access_token, id_token]\n", 1)
	cfg = strings.Replace(cfg, "    - {name: api2-from-batch,", "    - {name: api2-takes-id-tokens, client: api2, subject_token_types: [id_token], audiences: [\"https://api3.example\"]}\n    - {name: api2-from-batch,", 1)
	s := start(t, cfg)
	ctx := context.Background()

	meta := s.getJSON("/.well-known/openid-configuration")
	if got := actJSON(t, meta["id_token_signing_alg_values_supported"]); got != `["RS256","ES256","EdDSA"]` {
		t.Errorf("id_token_signing_alg_values_supported %s, want RS256 (the default), then what clients chose", got)
	}
	if got := actJSON(t, meta["access_token_signing_alg_values_supported"]); got != `["ES256"]` {
		t.Errorf("access_token_signing_alg_values_supported %s, want [ES256]", got)
	}
	algs := map[string]bool{}
	for _, k := range s.jwksKeys() {
		algs[k["alg"].(string)] = true
	}
	if len(algs) != 3 || !algs["ES256"] || !algs["RS256"] || !algs["EdDSA"] {
		t.Errorf("JWKS algorithms %v, want a key for each of ES256, RS256, EdDSA", algs)
	}

	t.Run("ok/authlib-code-flow", func(t *testing.T) {
		verifier, nonce := oauth2.GenerateVerifier(), randomString()
		conf := &oauth2.Config{ClientID: "portal", Endpoint: oauth2.Endpoint{AuthURL: s.endpointOIDC("authorization_endpoint")},
			RedirectURL: "https://portal.example/cb", Scopes: []string{"openid", "email", "payments:read"}}
		b := newBrowser(t, "https://portal.example/cb")
		q := b.signIn(s, conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "alice-password")
		script, err := filepath.Abs("testdata/authlib_rp.py")
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, py, script, s.issuer, "portal", "portal-secret", "https://portal.example/cb",
			q.Get("code"), verifier, nonce, "RS256")
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("authlib relying party failed: %v\n%s", err, out)
		}
		var res struct {
			Header map[string]any `json:"header"`
			Claims map[string]any `json:"claims"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("authlib output %q: %v", out, err)
		}
		if res.Header["alg"] != "RS256" || res.Claims["sub"] != "alice" || res.Claims["nonce"] != nonce || res.Claims["at_hash"] == nil {
			t.Errorf("ID token as authlib read it: %+v", res)
		}
	})

	t.Run("ok/client-chooses-es256", func(t *testing.T) {
		provider, err := oidc.NewProvider(ctx, s.issuer)
		if err != nil {
			t.Fatal(err)
		}
		conf := &oauth2.Config{ClientID: "rp-es256", ClientSecret: "rp-es256-secret", Endpoint: provider.Endpoint(),
			RedirectURL: "https://rp.example/cb", Scopes: []string{"openid", "email"}}
		verifier, nonce := oauth2.GenerateVerifier(), randomString()
		b := newBrowser(t, "https://rp.example/cb")
		q := b.signIn(s, conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "alice-password")
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		if h := header(t, rawID); h["alg"] != "ES256" {
			t.Fatalf("rp-es256's ID token header %v, want alg ES256", h)
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: "rp-es256", SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("go-oidc: %v", err)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}
		// go-oidc's default verifier (RS256 only, as most relying parties) refuses it:
		// the algorithm really is the client's choice.
		def := oidc.NewVerifier(s.issuer, oidc.NewRemoteKeySet(ctx, s.endpoint("jwks_uri")), &oidc.Config{ClientID: "rp-es256"})
		if _, err := def.Verify(ctx, rawID); err == nil {
			t.Error("an RS256-only verifier accepted the ES256 ID token")
		}
	})

	t.Run("ok/exchange-issues-id-token-with-clients-algorithm", func(t *testing.T) {
		t0 := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		r := s.token("api1", "api1-secret", exchangeForm(t0, "audience", "https://api2.example", "requested_token_type", typeIDToken))
		idt := r.str("access_token")
		if h := header(t, idt); h["alg"] != "EdDSA" {
			t.Fatalf("exchanged ID token header %v, want api1's EdDSA", h)
		}
		// deputy takes its own EdDSA ID token back as a subject token.
		x := s.token("api2", "api2-secret", url.Values{"grant_type": {tokenExchange}, "subject_token": {idt},
			"subject_token_type": {typeIDToken}, "audience": {"https://api3.example"}})
		if c := claims(t, x.str("access_token")); c["sub"] != "web-app" || header(t, x.str("access_token"))["alg"] != "ES256" {
			t.Errorf("exchanged from the ID token: %v", c)
		}
	})
}

func (s *server) jwksKeys() []map[string]any {
	s.t.Helper()
	resp, err := httpClient.Get(s.endpoint("jwks_uri"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		s.t.Fatal(err)
	}
	return set.Keys
}
