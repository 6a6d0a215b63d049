package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// A cluster is several deputy processes on one PostgreSQL schema, with the same
// configuration but for listen, behind a round-robin load balancer whose URL is
// their issuer. Tests reach each node directly (server.base) to choose which one
// answers.

// loadBalancer spreads requests over the nodes in turn.
type loadBalancer struct {
	srv   *httptest.Server
	mu    sync.Mutex
	nodes []*url.URL
	next  atomic.Uint64
}

func newLoadBalancer(t *testing.T) *loadBalancer {
	lb := &loadBalancer{}
	lb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		nodes := lb.nodes
		lb.mu.Unlock()
		if len(nodes) == 0 {
			http.Error(w, "no node is ready", http.StatusServiceUnavailable)
			return
		}
		target := nodes[lb.next.Add(1)%uint64(len(nodes))]
		(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		}}).ServeHTTP(w, r)
	}))
	t.Cleanup(lb.srv.Close)
	return lb
}

// startCluster starts one node per DSN (each the same PostgreSQL schema, maybe by
// different routes) of a configuration with SQLite storage, which it replaces. The
// nodes start at the same time: migrations and the first signing key race.
func startCluster(t *testing.T, configYAML string, dsns ...string) []*server {
	t.Helper()
	lb := newLoadBalancer(t)
	nodes := make([]*server, len(dsns))
	for i, dsn := range dsns {
		addr := freePort(t)
		n := &server{t: t, dir: t.TempDir(), issuer: lb.srv.URL, base: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
		n.writeConfig(withPostgresStorage(t, configYAML, dsn), addr)
		nodes[i] = n
	}
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitReady()
	}
	lb.mu.Lock()
	for _, n := range nodes {
		u, _ := url.Parse(n.base)
		lb.nodes = append(lb.nodes, u)
	}
	lb.mu.Unlock()
	if schemaTables(t, dsns[0]) == 0 {
		t.Fatalf("deputy created no table in the schema its DSN's search_path names (%s): the tests would not be apart", dsnParam(t, dsns[0], "search_path"))
	}
	return nodes
}

// with is the same process, failing t (a subtest) rather than the test that
// started it.
func (s *server) with(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// secrets of the clients of signinConfig.
var secrets = map[string]string{
	"web-app": "web-secret", "batch": "batch-secret", "api1": "api1-secret", "api2": "api2-secret",
	"api3": "api3-secret", "support": "support-secret", "helpdesk-ui": "helpdesk-secret", "portal": "portal-secret",
}

// introspect asks about an access token as the client it was issued to.
func (s *server) introspect(tok string) reply {
	s.t.Helper()
	id, _ := claims(s.t, tok)["client_id"].(string)
	return s.post("introspection_endpoint", id, secrets[id], url.Values{"token": {tok}})
}

func (s *server) active(tok string) bool {
	s.t.Helper()
	r := s.introspect(tok)
	return r.Status == 200 && r.Body["active"] == true
}

func (s *server) inactive(tok string) bool {
	s.t.Helper()
	r := s.introspect(tok)
	return r.Status == 200 && r.Body["active"] == false
}

// revokeAndWait revokes tok (active on to) at from, as its client, and polls to
// every 20ms until it answers {"active":false}: how long that took after the
// revocation was acknowledged, and whether it was within 1s.
func revokeAndWait(t *testing.T, from, to *server, tok string) (time.Duration, bool) {
	t.Helper()
	from, to = from.with(t), to.with(t)
	if !to.active(tok) {
		t.Fatalf("the token is not active on %s before its revocation: %s", to.base, to.introspect(tok).Raw)
	}
	id, _ := claims(t, tok)["client_id"].(string)
	if r := from.post("revocation_endpoint", id, secrets[id], url.Values{"token": {tok}}); r.Status != 200 {
		t.Fatalf("revocation on %s: %d %s", from.base, r.Status, r.Raw)
	}
	return eventually(time.Second, 20*time.Millisecond, func() bool { return to.inactive(tok) })
}

var auditCount = regexp.MustCompile(`(\d+) records? verified`)

// verifiedRecords runs deputy audit verify and returns its count.
func verifiedRecords(t *testing.T, s *server) int {
	t.Helper()
	out, code := s.with(t).deputy("audit", "verify")
	if code != 0 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	m := auditCount.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("audit verify prints no count: %s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// codeOn authorizes the portal on node s with a PKCE verifier and returns the
// code, signing alice in (login and consent on s) if the browser has no session.
func codeOn(t *testing.T, b *browser, s *server, verifier string) string {
	t.Helper()
	s = s.with(t)
	b.t = t
	authURL := s.endpointOIDC("authorization_endpoint") + "?" + url.Values{
		"response_type": {"code"}, "client_id": {"portal"}, "redirect_uri": {"https://portal.example/cb"},
		"scope": {"openid payments:read ledger:read"}, "state": {randomString()},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}.Encode()
	p := b.get(authURL)
	if strings.Contains(p.body, `name="password"`) {
		p = b.submit(s.base, p, url.Values{"username": {"alice"}, "password": {"alice-password"}})
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.submit(s.base, p, url.Values{"decision": {"allow"}})
	}
	u, err := url.Parse(p.url)
	if err != nil || !strings.HasPrefix(p.url, "https://portal.example/cb?") || u.Query().Get("code") == "" {
		t.Fatalf("authorization on %s did not come back with a code: %d %s\n%s", s.base, p.status, p.url, p.body)
	}
	return u.Query().Get("code")
}

func redeemForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://portal.example/cb"}, "code_verifier": {verifier}}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// race sends the same form to the token endpoints of the nodes, n requests spread
// over them in turn, all released at once; it returns the answers in order (and
// the node each went to).
func race(t *testing.T, nodes []*server, n int, id string, form url.Values) ([]reply, []int) {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, s := range nodes {
		urls[i] = s.with(t).endpoint("token_endpoint")
	}
	replies, errs, at := make([]reply, n), make([]error, n), make([]int, n)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := 0; i < n; i++ {
		at[i] = i % len(nodes)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			replies[i], errs[i] = tryPost(httpClient, urls[at[i]], basic(id, secrets[id]), "application/x-www-form-urlencoded", form.Encode())
		}()
	}
	close(ready)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return replies, at
}

// exactlyOneWinner checks that exactly one of the answers is a success and the
// others invalid_grant, and returns the winner's index. A replay that arrives while
// the first use is still in flight waits for it to record its tokens, then revokes
// them: the winner is answered, and its tokens die with the grant.
func exactlyOneWinner(t *testing.T, what string, replies []reply) int {
	t.Helper()
	winner, wins := -1, 0
	answers := map[string]int{}
	for i, r := range replies {
		answers[fmt.Sprintf("%d %s: %s", r.Status, r.str("error"), r.str("error_description"))]++
		switch {
		case r.Status == 200:
			winner = i
			wins++
		case r.Status == 400 && r.str("error") == "invalid_grant":
		default:
			t.Errorf("%s: answer %d is %d %s, want 200 or 400 invalid_grant", what, i, r.Status, r.Raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d of %d parallel requests succeeded, want exactly 1; answers: %v", what, wins, len(replies), answers)
	}
	t.Logf("%s: %d of %d succeeded; answers: %v", what, wins, len(replies), answers)
	return winner
}

// TestClusterTwoNodes: two deputy processes on one PostgreSQL behave as one server.
func TestClusterTwoNodes(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	nodes := startCluster(t, strings.Replace(signinConfig, "\nclients:\n", "\nclients:"+signinClients, 1), dsn, dsn)
	A, B := nodes[0], nodes[1]
	other := func(i int) int { return 1 - i }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node A log:\n%s\nnode B log:\n%s", A.logs.String(), B.logs.String())
		}
	})

	t.Run("one-server", func(t *testing.T) {
		a, b := A.with(t), B.with(t)
		for _, s := range []*server{a, b} {
			if s.meta["issuer"] != A.issuer {
				t.Errorf("node %s: discovery issuer %v, want the shared %s", s.base, s.meta["issuer"], A.issuer)
			}
		}
		// Whatever node issued a token, the other accepts it at once, and both
		// publish the same keys (a client may fetch the JWKS from either).
		ta := a.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		tb := b.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		if !b.active(ta) || !a.active(tb) {
			t.Errorf("a token of one node is not active on the other: %s / %s", b.introspect(ta).Raw, a.introspect(tb).Raw)
		}
		ka, kb := a.jwksKids(), b.jwksKids()
		slices.Sort(ka)
		slices.Sort(kb)
		t.Logf("JWKS of A %v, of B %v; A signs with %v, B with %v", ka, kb, header(t, ta)["kid"], header(t, tb)["kid"])
		if !slices.Equal(ka, kb) || !slices.Contains(ka, header(t, ta)["kid"].(string)) || !slices.Contains(ka, header(t, tb)["kid"].(string)) {
			t.Errorf("JWKS of A %v and of B %v, tokens signed by %v and %v", ka, kb, header(t, ta)["kid"], header(t, tb)["kid"])
		}
		b.token("api1", "api1-secret", exchangeForm(ta, "audience", "https://api2.example"))
		// A client that only knows the issuer (the load balancer) discovers it and
		// verifies the tokens of both nodes, whichever node answers.
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, A.issuer)
		if err != nil {
			t.Fatalf("go-oidc discovery through the load balancer: %v", err)
		}
		var meta struct {
			JWKS string `json:"jwks_uri"`
		}
		if err := provider.Claims(&meta); err != nil || meta.JWKS == "" {
			t.Fatalf("discovery through the load balancer: jwks_uri %q %v", meta.JWKS, err)
		}
		keys := oidc.NewRemoteKeySet(ctx, meta.JWKS)
		for name, tok := range map[string]string{"A": ta, "B": tb} {
			if _, err := keys.VerifySignature(ctx, tok); err != nil {
				t.Errorf("token of node %s not verified with the JWKS behind the load balancer: %v", name, err)
			}
		}
	})

	t.Run("revocation-propagates", func(t *testing.T) {
		a, b := A.with(t), B.with(t)
		for _, dir := range []struct {
			name     string
			from, to *server
		}{{"A→B", a, b}, {"B→A", b, a}} {
			tok := dir.from.token("web-app", "web-secret", clientCredentials("")).str("access_token")
			took, ok := revokeAndWait(t, dir.from, dir.to, tok)
			if !ok {
				t.Errorf("%s: the token revoked on one node is still active on the other after %v", dir.name, took.Round(time.Millisecond))
				continue
			}
			t.Logf("%s: revocation seen by the other node after %v", dir.name, took.Round(time.Millisecond))
			// The 1 s poll alone would take 0–1 s; NOTIFY takes milliseconds.
			if took > 300*time.Millisecond {
				t.Errorf("%s: revocation took %v to reach the other node: notifications are not working (only the poll)", dir.name, took.Round(time.Millisecond))
			}
			wantError(t, dir.to.post("token_endpoint", "api1", "api1-secret", exchangeForm(tok, "audience", "https://api2.example")), 400, "invalid_request")
		}
	})

	t.Run("revocation-races-exchanges", func(t *testing.T) {
		a := A.with(t)
		t0 := a.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		urls := []string{a.endpoint("token_endpoint"), B.with(t).endpoint("token_endpoint")}
		var (
			mu     sync.Mutex
			issued []string
			wg     sync.WaitGroup
			stop   = make(chan struct{})
		)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := tryPost(httpClient, urls[i%2], basic("api1", "api1-secret"), "application/x-www-form-urlencoded",
						exchangeForm(t0, "audience", "https://api2.example").Encode())
					switch {
					case err != nil:
						t.Error(err)
						return
					case r.Status == 200:
						mu.Lock()
						issued = append(issued, r.str("access_token"))
						mu.Unlock()
					case r.Status == 400 && r.str("error") == "invalid_request":
					default:
						t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
						return
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond) // traffic before the revocation
		if r := a.post("revocation_endpoint", "web-app", "web-secret", url.Values{"token": {t0}}); r.Status != 200 {
			t.Fatalf("revoke: %d %s", r.Status, r.Raw)
		}
		time.Sleep(300 * time.Millisecond) // and after it
		close(stop)
		wg.Wait()
		if len(issued) == 0 {
			t.Fatal("no exchange succeeded before the revocation")
		}
		// Within 1s, none of them is active on either node: those issued before the
		// revocation went with their parent, and none decided on a node that had
		// not heard of it yet may outlive it.
		deadline := time.Now().Add(time.Second)
		var still []string
		for _, s := range []*server{a, B.with(t)} {
			for _, tok := range issued {
				if _, ok := eventually(time.Until(deadline), 20*time.Millisecond, func() bool { return s.inactive(tok) }); !ok {
					still = append(still, fmt.Sprintf("%v on %s", claims(t, tok)["jti"], s.base))
				}
			}
		}
		if len(still) > 0 {
			t.Errorf("%d times a token exchanged from the revoked one was still active 1s after the race (%d tokens on 2 nodes), e.g. %v",
				len(still), len(issued), still[:min(len(still), 5)])
		}
		out, code := a.deputy("audit", "query", "--type", "token.exchanged", "--json")
		if code != 0 {
			t.Fatal(out)
		}
		for _, tok := range issued {
			if jti := claims(t, tok)["jti"].(string); !strings.Contains(out, jti) {
				t.Errorf("issued token %s has no audit record", jti)
			}
		}
		t.Logf("%d tokens exchanged on both nodes around the revocation", len(issued))
	})

	br := newBrowser(t, "https://portal.example/cb")

	t.Run("sign-in-across-nodes", func(t *testing.T) {
		a, b := A.with(t), B.with(t)
		br.t = t
		verifier := oauth2.GenerateVerifier()
		authURL := a.endpointOIDC("authorization_endpoint") + "?" + url.Values{
			"response_type": {"code"}, "client_id": {"portal"}, "redirect_uri": {"https://portal.example/cb"},
			"scope": {"openid payments:read ledger:read"}, "state": {"st"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		}.Encode()
		// The login page from A, the password to B, the consent to A.
		login := br.get(authURL)
		if !strings.Contains(login.body, `name="password"`) {
			t.Fatalf("expected the login page, got %d %s", login.status, login.body)
		}
		consent := br.submit(b.base, login, url.Values{"username": {"alice"}, "password": {"alice-password"}})
		if !strings.Contains(consent.body, "Allow") {
			t.Fatalf("login posted to the other node: expected the consent page, got %d %s", consent.status, consent.body)
		}
		back := br.submit(a.base, consent, url.Values{"decision": {"allow"}})
		u, _ := url.Parse(back.url)
		if u.Query().Get("code") == "" || u.Query().Get("iss") != A.issuer {
			t.Fatalf("consent posted to the other node: %d %s %s", back.status, back.url, back.body)
		}
		// The code of A redeemed on B.
		r := b.token("portal", "portal-secret", redeemForm(u.Query().Get("code"), verifier))
		if r.str("access_token") == "" || r.str("id_token") == "" || r.str("refresh_token") == "" {
			t.Fatalf("code redemption on the other node: %s", r.Raw)
		}
		// The session and the consent are the cluster's: B sends the browser
		// straight back with a code.
		again := br.get(b.local(authURL))
		if !strings.HasPrefix(again.url, "https://portal.example/cb?code=") {
			t.Errorf("second authorization, on the other node, did not reuse the session and consent: %d %s", again.status, again.url)
		}
	})

	t.Run("code-single-use", func(t *testing.T) {
		// Redeemed on B, replayed on A: refused, and what it gave is revoked on both.
		verifier := oauth2.GenerateVerifier()
		code := codeOn(t, br, A, verifier)
		got := B.with(t).token("portal", "portal-secret", redeemForm(code, verifier)).str("access_token")
		wantError(t, A.with(t).post("token_endpoint", "portal", "portal-secret", redeemForm(code, verifier)), 400, "invalid_grant")
		for _, s := range nodes {
			s := s.with(t)
			if _, ok := eventually(time.Second, 20*time.Millisecond, func() bool { return s.inactive(got) }); !ok {
				t.Errorf("the access token of a code replayed on the other node still active on %s after 1s", s.base)
			}
		}

		// Twenty redemptions at once on both nodes: one at most succeeds.
		code = codeOn(t, br, A, verifier)
		replies, _ := race(t, nodes, 20, "portal", redeemForm(code, verifier))
		w := exactlyOneWinner(t, "redemptions of one code on two nodes", replies)
		for _, s := range nodes {
			wantError(t, s.with(t).post("token_endpoint", "portal", "portal-secret", redeemForm(code, verifier)), 400, "invalid_grant")
		}
		if w < 0 {
			return
		}
		// The replays revoked what the code gave, on both nodes.
		winner := replies[w].str("access_token")
		for _, s := range nodes {
			s := s.with(t)
			if _, ok := eventually(time.Second, 20*time.Millisecond, func() bool { return s.inactive(winner) }); !ok {
				t.Errorf("the access token of a replayed code still active on %s after 1s", s.base)
			}
		}
	})

	t.Run("refresh-reuse-across-nodes", func(t *testing.T) {
		a, b := A.with(t), B.with(t)
		verifier := oauth2.GenerateVerifier()
		first := a.token("portal", "portal-secret", redeemForm(codeOn(t, br, a, verifier), verifier))
		rt0 := first.str("refresh_token")
		rotated := a.token("portal", "portal-secret", refreshForm(rt0))
		rt1, at1 := rotated.str("refresh_token"), rotated.str("access_token")
		if rt1 == "" || rt1 == rt0 {
			t.Fatalf("refresh on A did not rotate: %s", rotated.Raw)
		}
		wantError(t, b.post("token_endpoint", "portal", "portal-secret", refreshForm(rt0)), 400, "invalid_grant")
		wantError(t, a.post("token_endpoint", "portal", "portal-secret", refreshForm(rt1)), 400, "invalid_grant")
		for _, s := range []*server{a, b} {
			if _, ok := eventually(time.Second, 20*time.Millisecond, func() bool { return s.inactive(at1) }); !ok {
				t.Errorf("the access token of a reused refresh token's family still active on %s after 1s", s.base)
			}
		}

		// The same refresh token presented ten times at once on both nodes: one
		// rotation, the rest reuse, and the reuse revokes the new one too.
		rt := b.token("portal", "portal-secret", redeemForm(codeOn(t, br, b, verifier), verifier)).str("refresh_token")
		replies, at := race(t, nodes, 10, "portal", refreshForm(rt))
		if w := exactlyOneWinner(t, "rotations of one refresh token on two nodes", replies); w >= 0 {
			next := replies[w].str("refresh_token")
			wantError(t, nodes[other(at[w])].with(t).post("token_endpoint", "portal", "portal-secret", refreshForm(next)), 400, "invalid_grant")
		}
		for _, s := range nodes {
			wantError(t, s.with(t).post("token_endpoint", "portal", "portal-secret", refreshForm(rt)), 400, "invalid_grant")
		}
	})

	t.Run("one-audit-chain", func(t *testing.T) {
		before := verifiedRecords(t, A)
		issuedBefore, exchangedBefore := len(auditEvents(t, A.with(t), "token.issued")), len(auditEvents(t, A.with(t), "token.exchanged"))
		const perNode = 50
		urls := []string{A.with(t).endpoint("token_endpoint"), B.with(t).endpoint("token_endpoint")}
		post := func(node int, id string, form url.Values) string {
			r, err := tryPost(httpClient, urls[node], basic(id, secrets[id]), "application/x-www-form-urlencoded", form.Encode())
			if err != nil || r.Status != 200 {
				t.Errorf("%s on node %d: %v %d %s", form.Get("grant_type"), node, err, r.Status, r.Raw)
				return ""
			}
			return r.str("access_token")
		}
		var (
			mu   sync.Mutex
			jtis []string
			wg   sync.WaitGroup
		)
		// Chains started on each node: T0 and T1 there, T2 on the other node.
		for w := 0; w < 10; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node := w % 2
				for i := 0; i < perNode/5; i++ {
					t0 := post(node, "web-app", clientCredentials(""))
					if t0 == "" {
						return
					}
					t1 := post(node, "api1", exchangeForm(t0, "audience", "https://api2.example"))
					if t1 == "" {
						return
					}
					t2 := post(other(node), "api2", exchangeForm(t1, "resource", "https://api3.example"))
					if t2 == "" {
						return
					}
					mu.Lock()
					for _, tok := range []string{t0, t1, t2} {
						jti, _ := claims(t, tok)["jti"].(string)
						jtis = append(jtis, jti)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		after := verifiedRecords(t, A)
		if after-before < 3*2*perNode {
			t.Errorf("audit verify counts %d records, %d before %d chains of 3 tokens", after, before, 2*perNode)
		}
		if got := len(auditEvents(t, B.with(t), "token.issued")) - issuedBefore; got != 2*perNode {
			t.Errorf("%d new token.issued events for %d tokens", got, 2*perNode)
		}
		if got := len(auditEvents(t, B.with(t), "token.exchanged")) - exchangedBefore; got != 4*perNode {
			t.Errorf("%d new token.exchanged events for %d exchanges", got, 4*perNode)
		}
		out, code := B.with(t).deputy("audit", "query", "--json")
		if code != 0 {
			t.Fatal(out)
		}
		for _, jti := range jtis {
			if !strings.Contains(out, `"`+jti+`"`) {
				t.Errorf("token %s has no audit record", jti)
			}
		}
		t.Logf("audit verify: %d records, %d of them from %d chains on both nodes", after, after-before, 2*perNode)
	})

	t.Run("key-rotation", func(t *testing.T) {
		a, b := A.with(t), B.with(t)
		oldA := a.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		oldB := b.token("web-app", "web-secret", clientCredentials("")).str("access_token")
		out, code := a.deputy("keys", "rotate", "--publish-for", "0s")
		if code != 0 {
			t.Fatalf("keys rotate: exit %d %s", code, out)
		}
		rotated := time.Now()
		m := regexp.MustCompile(`new key (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("keys rotate names no new key: %s", out)
		}
		newKid := m[1]
		fresh := map[*server]string{}
		for _, s := range []*server{a, b} {
			took, ok := eventually(6*time.Second, 100*time.Millisecond, func() bool {
				tok := s.token("web-app", "web-secret", clientCredentials("")).str("access_token")
				kid := header(t, tok)["kid"]
				if kids := s.jwksKids(); !slices.Contains(kids, kid.(string)) {
					t.Fatalf("node %s signs with %v, which its JWKS %v does not publish", s.base, kid, kids)
				}
				fresh[s] = tok
				return kid == newKid && slices.Contains(s.jwksKids(), newKid)
			})
			if !ok {
				t.Errorf("node %s does not sign with the new key %s %v after keys rotate (JWKS %v)", s.base, newKid, took.Round(time.Millisecond), s.jwksKids())
				continue
			}
			t.Logf("node %s signs with the new key %v after keys rotate", s.base, time.Since(rotated).Round(time.Millisecond))
		}
		// Old tokens stay good everywhere; new ones of each node are good on the other.
		for name, c := range map[string]struct {
			tok string
			on  *server
		}{"old token of A": {oldA, b}, "old token of B": {oldB, a}, "new token of A": {fresh[a], b}, "new token of B": {fresh[b], a}} {
			if !c.on.active(c.tok) {
				t.Errorf("%s not active on %s: %s", name, c.on.base, c.on.introspect(c.tok).Raw)
			}
		}
		b.token("api1", "api1-secret", exchangeForm(fresh[a], "audience", "https://api2.example"))
	})
}
