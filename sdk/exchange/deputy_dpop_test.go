package exchange_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/testdeputy"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk"
	"github.com/deputy-auth/deputy/sdk/dpop"
	"github.com/deputy-auth/deputy/sdk/exchange"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// hopService is one API of the chain: guarded by sdk/verify with RequireBinding,
// it records the Principal and raw token of each request and, when next is set,
// calls it with its own exchanging client.
type hopService struct {
	*httptest.Server
	mu    sync.Mutex
	jkt   string   // the Cnf.JKT of the last accepted request
	chain []string // its actors
	token string   // its raw token
}

func newHopService(t *testing.T, d *testdeputy.Deputy, audience, scope string, next func(ctx context.Context) (int, error)) *hopService {
	t.Helper()
	v, err := verify.New(context.Background(), verify.Config{Issuer: d.URL, Audience: audience, RequireBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &hopService{}
	s.Server = httptest.NewServer(v.Require(scope)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		raw, _ := sdk.TokenFromContext(r.Context())
		s.mu.Lock()
		s.jkt, s.chain, s.token = p.Cnf.JKT, p.Actors, raw
		s.mu.Unlock()
		if next != nil {
			status, err := next(r.Context())
			if err != nil || status != http.StatusOK {
				http.Error(w, fmt.Sprintf("next hop: %d %v", status, err), http.StatusBadGateway)
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	})))
	t.Cleanup(s.Close)
	return s
}

func (s *hopService) last() (jkt string, chain []string, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jkt, s.chain, s.token
}

// TestTransportDPoPDeputy: against a real deputy, the chain web-app → api1 → api2 →
// api3 is bound at every hop: api1's and api2's exchanging clients (Config.DPoPKey)
// get tokens bound to their own keys, each next service (sdk/verify with
// RequireBinding) sees the key of its caller, and a token lifted from api3 is refused
// there as Bearer and at deputy when exchanged without a proof of its key.
func TestTransportDPoPDeputy(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*config.Config)
		// tokenRequests is what each exchanging client sends to deputy for its one
		// exchange: 2 when deputy asks for its nonce first.
		tokenRequests int
	}{
		{name: "ok/bound-every-hop", tokenRequests: 1},
		{name: "ok/deputy-requires-nonce-and-binding", tokenRequests: 2, edit: func(c *config.Config) {
			c.DPoP.RequireNonce = true
			for i := range c.Exchange.Policies {
				c.Exchange.Policies[i].RequireBinding = true
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { testBoundChain(t, tt.edit, tt.tokenRequests) })
	}
}

func testBoundChain(t *testing.T, edit func(*config.Config), tokenRequests int) {
	d := testdeputy.Start(t, edit)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt1, _ := dpop.Thumbprint(k1.Public())
	jkt2, _ := dpop.Thumbprint(k2.Public())
	x1, c1 := newExchanger(t, d, "api1", func(c *exchange.Config) { c.DPoPKey = k1 })
	x2, c2 := newExchanger(t, d, "api2", func(c *exchange.Config) { c.DPoPKey = k2 })

	call := func(ctx context.Context, client *http.Client, u string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	fraud := newHopService(t, d, api3, "fraud:check", nil)
	toFraud := x2.Client(api3, "fraud:check")
	ledger := newHopService(t, d, api2, "fraud:check", func(ctx context.Context) (int, error) {
		return call(ctx, toFraud, fraud.URL+"/checks")
	})
	toLedger := x1.Client(api2, "ledger:read fraud:check")

	incoming := d.ClientCredentials("web-app", "payments:read ledger:read fraud:check")
	status, err := call(sdk.ContextWithToken(context.Background(), incoming), toLedger, ledger.URL+"/ledger")
	if err != nil || status != http.StatusOK {
		t.Fatalf("web-app → api1 → api2 → api3: %d %v", status, err)
	}
	if n1, n2 := c1.requests("/token"), c2.requests("/token"); n1 != tokenRequests || n2 != tokenRequests {
		t.Errorf("token requests of api1 %d, of api2 %d; want %d each", n1, n2, tokenRequests)
	}
	if jkt, chain, _ := ledger.last(); jkt != jkt1 || strings.Join(chain, ",") != "api1" {
		t.Errorf("api2 saw cnf.jkt %s, actors %v; want api1's key %s, [api1]", jkt, chain, jkt1)
	}
	jkt, chain, stolen := fraud.last()
	if jkt != jkt2 || strings.Join(chain, ",") != "api2,api1" {
		t.Errorf("api3 saw cnf.jkt %s, actors %v; want api2's key %s, [api2 api1]", jkt, chain, jkt2)
	}

	// The token lifted from api3: refused there as Bearer …
	req, _ := http.NewRequest(http.MethodGet, fraud.URL+"/checks", nil)
	req.Header.Set("Authorization", "Bearer "+stolen)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP error="invalid_token"`) {
		t.Errorf("stolen token at api3: %d %q, want 401 DPoP invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// … and at deputy, exchanged by api3's own credentials without a proof of its key.
	form := url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {stolen},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)}, "audience": {api3},
	}
	treq, _ := http.NewRequest(http.MethodPost, d.URL+"/token", strings.NewReader(form.Encode()))
	treq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	treq.SetBasicAuth("api2", "api2-secret")
	tresp, err := http.DefaultClient.Do(treq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tresp.Body)
	tresp.Body.Close()
	if tresp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_request"`) {
		t.Errorf("stolen token exchanged without a proof: %d %s, want 400 invalid_request", tresp.StatusCode, body)
	}
}
