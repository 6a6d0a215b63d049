package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// dpopConfig is the sign-in bank with DPoP: batch must send proofs
// (dpop_bound_access_tokens), proofs carry deputy's nonces.
func dpopConfig() string {
	cfg := strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1)
	cfg = strings.Replace(cfg, "    may_act: [api1]\n  - {id: api1", "    may_act: [api1]\n    dpop_bound_access_tokens: true\n  - {id: api1", 1)
	return cfg + "dpop: {max_age: 30s, require_nonce: true}\n"
}

// dpopPost posts form to deputy's token endpoint with Basic credentials (id ""
// for none) and the DPoP header proof.
func (s *server) dpopPost(id, secret string, form url.Values, proof string) reply {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.endpoint("token_endpoint"), strings.NewReader(form.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.Header.Set("Authorization", basic(id, secret))
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return doReply(s.t, req)
}

func doReply(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// dpopClient is a client's DPoP key and the nonce deputy last gave it.
type dpopClient struct {
	t     *testing.T
	key   *ecdsa.PrivateKey
	jkt   string
	nonce string
}

func newDPoPClient(t *testing.T) *dpopClient {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{t: t, key: k, jkt: jkt}
}

func (c *dpopClient) proof(method, htu, accessToken string) string {
	c.t.Helper()
	p, err := dpop.NewProof(c.key, jose.ES256, method, htu, c.nonce, accessToken)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// token runs a token request with a fresh proof, getting a nonce first when
// deputy asks for one (RFC 9449 §8), and returns deputy's last answer and the
// proof it accepted or refused last.
func (c *dpopClient) token(s *server, id, secret string, form url.Values) (reply, string) {
	c.t.Helper()
	var r reply
	var p string
	for range 2 {
		p = c.proof("POST", s.issuer+"/token", "")
		r = s.dpopPost(id, secret, form, p)
		if n := r.Header.Get("DPoP-Nonce"); n != "" {
			c.nonce = n
		}
		if r.str("error") != "use_dpop_nonce" {
			break
		}
	}
	return r, p
}

// TestDPoPClientCredentialsAndRefresh runs the built binary: a client that must
// use DPoP (dpop_bound_access_tokens) gets a bound token only with a proof, after
// the nonce challenge; a replayed proof is refused; a public client's refresh
// token is bound to its key, and a stolen one is useless with another key.
func TestDPoPClientCredentialsAndRefresh(t *testing.T) {
	s := start(t, dpopConfig())
	if algs, _ := s.meta["dpop_signing_alg_values_supported"].([]any); len(algs) != 4 {
		t.Errorf("discovery dpop_signing_alg_values_supported = %v", s.meta["dpop_signing_alg_values_supported"])
	}
	c := newDPoPClient(t)

	t.Run("fail/no-proof", func(t *testing.T) {
		wantError(t, s.with(t).dpopPost("batch", "batch-secret", clientCredentials(""), ""), 400, "invalid_dpop_proof")
	})
	t.Run("fail/no-nonce", func(t *testing.T) {
		r := s.with(t).dpopPost("batch", "batch-secret", clientCredentials(""), c.proof("POST", s.issuer+"/token", ""))
		wantError(t, r, 400, "use_dpop_nonce")
		if r.Header.Get("DPoP-Nonce") == "" {
			t.Error("no DPoP-Nonce with use_dpop_nonce")
		}
	})
	r, used := c.token(s, "batch", "batch-secret", clientCredentials(""))
	if r.Status != 200 || r.str("token_type") != "DPoP" {
		t.Fatalf("ok/bound-token: %d %s", r.Status, r.Raw)
	}
	if cnf, _ := claims(t, r.str("access_token"))["cnf"].(map[string]any); cnf["jkt"] != c.jkt {
		t.Errorf("ok/bound-token: cnf %v, want jkt %s", cnf, c.jkt)
	}
	t.Run("fail/replayed-jti", func(t *testing.T) {
		wantError(t, s.with(t).dpopPost("batch", "batch-secret", clientCredentials(""), used), 400, "invalid_dpop_proof")
	})
	t.Run("fail/two-dpop-headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.endpoint("token_endpoint"), strings.NewReader(clientCredentials("").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", basic("batch", "batch-secret"))
		req.Header.Add("DPoP", c.proof("POST", s.issuer+"/token", ""))
		req.Header.Add("DPoP", c.proof("POST", s.issuer+"/token", ""))
		wantError(t, doReply(t, req), 400, "invalid_dpop_proof")
	})
	t.Run("ok/denials-audited", func(t *testing.T) {
		out, code := s.deputy("audit", "query", "--json")
		if code != 0 || !strings.Contains(out, "jti was used before") || !strings.Contains(out, "use_dpop_nonce") {
			t.Errorf("audit query (exit %d) does not show the DPoP denials:\n%s", code, out)
		}
	})

	// A public client's sign-in: its refresh token is bound to its key.
	conf := &oauth2.Config{ClientID: "spa", Endpoint: oauth2.Endpoint{AuthURL: s.endpointOIDC("authorization_endpoint")},
		RedirectURL: "http://127.0.0.1:9000/callback", Scopes: []string{"openid", "payments:read"}}
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, "http://127.0.0.1:9000/callback")
	q := b.signIn(s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("dpop_jkt", c.jkt)), "alice-password")
	redeem := redeemForm(q.Get("code"), verifier)
	redeem.Set("redirect_uri", "http://127.0.0.1:9000/callback")
	redeem.Set("client_id", "spa")
	r, _ = c.token(s, "", "", redeem)
	rt := r.str("refresh_token")
	if r.Status != 200 || r.str("token_type") != "DPoP" || rt == "" {
		t.Fatalf("ok/code-with-dpop-jkt: %d %s", r.Status, r.Raw)
	}
	refresh := refreshForm(rt)
	refresh.Set("client_id", "spa")
	thief := newDPoPClient(t)
	t.Run("fail/refresh-without-proof", func(t *testing.T) {
		wantError(t, s.with(t).dpopPost("", "", refresh, ""), 400, "invalid_grant")
	})
	t.Run("fail/refresh-with-another-key", func(t *testing.T) {
		thief.t = t
		r, _ := thief.token(s.with(t), "", "", refresh)
		wantError(t, r, 400, "invalid_grant")
	})
	r, _ = c.token(s, "", "", refresh)
	if r.Status != 200 || r.str("token_type") != "DPoP" || r.str("refresh_token") == "" {
		t.Fatalf("ok/refresh-with-its-key (the thief's attempts spent nothing): %d %s", r.Status, r.Raw)
	}
}

// TestClusterDPoP: two nodes on one PostgreSQL schema — a proof's jti used at one
// node is a replay at the other, and a nonce one node issued is accepted by the
// other (RFC 9449 §8, §11.1).
func TestClusterDPoP(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	nodes := startCluster(t, dpopConfig(), dsn, dsn)
	A, B := nodes[0], nodes[1]
	c := newDPoPClient(t)
	// A's nonce, then a proof with it accepted by B.
	r := A.dpopPost("batch", "batch-secret", clientCredentials(""), c.proof("POST", A.issuer+"/token", ""))
	wantError(t, r, 400, "use_dpop_nonce")
	c.nonce = r.Header.Get("DPoP-Nonce")
	p := c.proof("POST", A.issuer+"/token", "")
	if r := B.dpopPost("batch", "batch-secret", clientCredentials(""), p); r.Status != 200 || r.str("token_type") != "DPoP" {
		t.Fatalf("ok/nonce-of-the-other-node: %d %s", r.Status, r.Raw)
	}
	t.Run("fail/replayed-jti-on-the-other-node", func(t *testing.T) {
		wantError(t, A.with(t).dpopPost("batch", "batch-secret", clientCredentials(""), p), 400, "invalid_dpop_proof")
	})
	t.Run("fail/forged-nonce", func(t *testing.T) {
		c.nonce = "x" + c.nonce
		wantError(t, A.with(t).dpopPost("batch", "batch-secret", clientCredentials(""), c.proof("POST", A.issuer+"/token", "")), 400, "use_dpop_nonce")
	})
}
