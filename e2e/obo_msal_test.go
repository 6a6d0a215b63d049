package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/verify"
)

// msalJSDir holds Microsoft's MSAL for Node (package.json, package-lock.json);
// scripts/test runs `npm ci` there when its node_modules is missing.
const msalJSDir = "testdata/msal-js"

const (
	jwtBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	oboCorpIssuer = "https://login.corp.example/tenant-1/v2.0"
	oboLedger     = "api://ledger"
)

// oboConfig: mid is a middle-tier API (audience api://mid) that calls the
// ledger on behalf of whoever called it, with Entra's on-behalf-of flow (the
// jwt-bearer grant, client_secret_post as MSAL sends it). Its callers hold
// deputy's tokens (web, client_credentials) or corp's, a trusted issuer (the
// users of an Entra tenant moving to deputy), matched as jwt by a policy of
// their own. hr is another middle tier corp addresses tokens to. TLS is filled
// in for MSAL, which speaks only https. Access tokens live an hour: MSAL renews
// a cached token 5 minutes before it expires, so it would never answer from
// its cache a token of deputy's default 5 minutes.
const oboConfig = `
issuer: %ISSUER%
listen: %LISTEN%
` + sqliteStorage + `
%TLS%
tokens:
  access_token_ttl: 1h
trusted_issuers:
  - name: corp
    issuer: ` + oboCorpIssuer + `
    jwks_file: %DIR%/corp.jwks
    audiences: ["api://mid", "api://hr"]
    algorithms: [ES256]
audiences:
  - id: api://mid
    scopes: [read]
    client: mid
  - id: api://hr
    scopes: [read]
    client: hr
  - id: api://ledger
    scopes: [read, write]
  - id: https://fraud.bank.example
    scopes: [read]
clients:
  - id: web
    secret: web-secret
    grant_types: [client_credentials]
    scopes: [read]
    audiences: ["api://mid", "https://fraud.bank.example"]
  - id: mid
    secret: mid-secret
    auth_method: client_secret_post
    grant_types: [` + jwtBearer + `]
  - id: hr
    secret: hr-secret
    auth_method: client_secret_post
    grant_types: [` + jwtBearer + `]
exchange:
  policies:
    - name: mid-on-behalf-of
      client: mid
      audiences: [api://ledger, https://fraud.bank.example]
      subject_issuers: [self]
      subject_token_types: [access_token]
    - name: mid-corp-on-behalf-of
      client: mid
      audiences: [api://ledger]
      subject_issuers: [corp]
      subject_token_types: [jwt]
    - name: hr-on-behalf-of
      client: hr
      audiences: [api://ledger]
      subject_issuers: [corp]
      subject_token_types: [jwt]
`

// oboTLS is the tls section of oboConfig served over https.
const oboTLS = `tls:
  cert_file: %DIR%/server.pem
  key_file: %DIR%/server.key`

// corpUser signs an access token of corp's for user, addressed to api://mid.
func corpUser(t *testing.T, key *ecdsa.PrivateKey, user string) string {
	t.Helper()
	return corpToken(t, key, user)
}

// corpToken signs a token of corp's for user, addressed to api://mid, with kv
// overriding or adding claims.
func corpToken(t *testing.T, key *ecdsa.PrivateKey, user string, kv ...any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "corp-1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{"iss": oboCorpIssuer, "sub": user, "aud": "api://mid", "tid": "tenant-1", "scp": "access_as_user",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": randomString()}
	for i := 0; i+1 < len(kv); i += 2 {
		claims[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(claims)
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// writeCorpKeys writes corp's public key set into dir and returns its key.
func writeCorpKeys(t *testing.T, dir string) *ecdsa.PrivateKey {
	t.Helper()
	key := ecKey(t)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "corp-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corp.jwks"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// oboHTTPS starts deputy on oboConfig over https with a server certificate of
// its own test CA, and returns it with an HTTPS client trusting that CA, the CA
// file (for NODE_EXTRA_CA_CERTS) and corp's signing key.
func oboHTTPS(t *testing.T) (*server, *http.Client, string, *ecdsa.PrivateKey) {
	t.Helper()
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "https://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	ca := newPKI(t, "OBO test CA")
	serverKey := ecKey(t)
	cert := ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "deputy"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, &serverKey.PublicKey, nil)
	writePEM(t, filepath.Join(s.dir, "server.pem"), "CERTIFICATE", cert.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(s.dir, "server.key"), "PRIVATE KEY", keyDER)
	caFile := filepath.Join(s.dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.cert.Raw)
	corp := writeCorpKeys(t, s.dir)

	s.writeConfig(storageForMode(t, strings.Replace(oboConfig, "%TLS%", oboTLS, 1)), addr)
	s.launch()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	c := tlsClient(roots)
	s.waitReadyTLS(c)
	return s, c, caFile, corp
}

// msalResult is what obo.mjs prints for one acquireTokenOnBehalfOf.
type msalResult struct {
	AccessToken  string   `json:"accessToken"`
	Scopes       []string `json:"scopes"`
	TokenType    string   `json:"tokenType"`
	ExpiresOn    string   `json:"expiresOn"`
	FromCache    bool     `json:"fromCache"`
	Error        string   `json:"error"`
	ErrorCode    string   `json:"errorCode"`
	ErrorMessage string   `json:"errorMessage"`
}

// TestOnBehalfOfMSAL: Microsoft's @azure/msal-node, unmodified and configured
// only (authority = deputy's issuer, knownAuthorities, authorityMetadata =
// deputy's discovery document), performs acquireTokenOnBehalfOf against the
// built binary over https, for a caller holding deputy's token and for a user
// of a trusted issuer; the ledger accepts what it gets with the Go SDK's
// verify, and the act chain names mid.
func TestOnBehalfOfMSAL(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: MSAL for Node needs it (apt-get install -y nodejs npm)")
	}
	dir, err := filepath.Abs(msalJSDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "msal-node")); err != nil {
		t.Fatalf("run `npm ci` in e2e/%s first (scripts/test does): %v", msalJSDir, err)
	}
	s, hc, caFile, corp := oboHTTPS(t)
	post := func(id, secret string, form url.Values) reply {
		t.Helper()
		r, err := tryPost(hc, s.issuer+"/token", basic(id, secret), "application/x-www-form-urlencoded", form.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A caller of mid with deputy's token: web's, addressed to api://mid.
	web := post("web", "web-secret", clientCredentials(""))
	if web.Status != 200 {
		t.Fatalf("web's token: %d %s", web.Status, web.Raw)
	}
	webToken := web.str("access_token")
	userToken := corpUser(t, corp, "user-42")

	resp, err := hc.Get(s.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var metadata json.RawMessage
	err = json.NewDecoder(resp.Body).Decode(&metadata)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if json.Unmarshal(metadata, &doc) != nil || !slices.Contains(doc.GrantTypes, jwtBearer) {
		t.Fatalf("discovery's grant_types_supported %v lacks %s", doc.GrantTypes, jwtBearer)
	}

	in, _ := json.Marshal(map[string]any{
		"authority": s.issuer, "clientId": "mid", "clientSecret": "mid-secret", "authorityMetadata": string(metadata),
		"requests": []map[string]any{
			{"assertion": webToken, "scopes": []string{oboLedger + "/.default"}},
			{"assertion": userToken, "scopes": []string{oboLedger + "/read", oboLedger + "/write"}},
			// The same again, a second later: MSAL answers from its cache, keyed by
			// the assertion, as long as the token lives more than its renewal
			// offset (5 minutes) past now.
			{"assertion": userToken, "scopes": []string{oboLedger + "/read", oboLedger + "/write"}, "pauseMs": 1100},
			// A token signed by a key corp never published: MSAL reads deputy's refusal.
			{"assertion": corpUser(t, ecKey(t), "user-7"), "scopes": []string{oboLedger + "/.default"}},
		},
	})
	cmd := exec.Command(node, filepath.Join(dir, "obo.mjs"))
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "NODE_EXTRA_CA_CERTS="+caFile)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("MSAL logged:\n%s", stderr.String())
	}
	var got []msalResult
	if err := json.Unmarshal(out, &got); err != nil || len(got) != 4 {
		t.Fatalf("node printed %q (%v); stderr:\n%s", out, err, stderr.String())
	}

	ledger, err := verify.New(context.Background(), verify.Config{Issuer: s.issuer, Audience: oboLedger, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		subject, issuer string
		scopes          []string
		fromCache       bool
	}{
		{subject: "web", scopes: []string{"read"}},
		{subject: "user-42", issuer: oboCorpIssuer, scopes: []string{"read", "write"}},
		{subject: "user-42", issuer: oboCorpIssuer, scopes: []string{"read", "write"}, fromCache: true},
	} {
		if exp, err := time.Parse(time.RFC3339, got[i].ExpiresOn); err != nil || time.Until(exp) < 55*time.Minute {
			t.Errorf("request %d: MSAL reads expiresOn %q (%v), want the hour of tokens.access_token_ttl", i, got[i].ExpiresOn, err)
		}
		r := got[i]
		if r.Error != "" || r.AccessToken == "" {
			t.Fatalf("request %d: MSAL: %s %s %s\n%s", i, r.Error, r.ErrorCode, r.ErrorMessage, stderr.String())
		}
		if !strings.EqualFold(r.TokenType, "Bearer") || r.FromCache != tc.fromCache {
			t.Errorf("request %d: token type %q, from cache %v", i, r.TokenType, r.FromCache)
		}
		var want []string
		for _, sc := range tc.scopes {
			want = append(want, oboLedger+"/"+sc)
		}
		if !slices.Equal(r.Scopes, want) {
			t.Errorf("request %d: MSAL reads scopes %q, want %q", i, r.Scopes, want)
		}
		p, err := ledger.Verify(context.Background(), r.AccessToken)
		if err != nil {
			t.Fatalf("request %d: the ledger refuses MSAL's token: %v", i, err)
		}
		if p.Subject != tc.subject || p.ClientID != "mid" || !slices.Equal(p.Actors, []string{"mid"}) || !slices.Equal(p.Scopes, tc.scopes) {
			t.Errorf("request %d: ledger sees subject %q client %q actors %q scopes %q", i, p.Subject, p.ClientID, p.Actors, p.Scopes)
		}
		if tc.issuer != "" && (p.Act == nil || p.Act.Subject != "mid") {
			t.Errorf("request %d: act %+v", i, p.Act)
		}
	}

	if r := got[3]; r.AccessToken != "" || r.ErrorCode != "invalid_grant" {
		t.Errorf("forged assertion: MSAL got %+v, want its invalid_grant", r)
	}
	denied := oboAuditEvents(t, s, "--client", "mid", "--type", "request.denied")
	if len(denied) != 1 || !strings.HasPrefix(denied[0].Reason, "invalid_grant: assertion") || denied[0].Detail["grant"] != "obo" {
		t.Errorf("denials of mid: %+v, want the forged assertion's", denied)
	}

	// Two exchanges on record (the third answer came from MSAL's cache), each
	// with grant obo and the policy that decided it.
	evs := oboAuditEvents(t, s, "--client", "mid", "--type", "token.exchanged")
	if len(evs) != 2 {
		t.Fatalf("%d token.exchanged events of mid, want 2: %+v", len(evs), evs)
	}
	// deputy's token is matched as access_token, corp's as jwt: each by the
	// policy that accepts only that.
	rules := map[string]string{"web": "mid-on-behalf-of", "user-42": "mid-corp-on-behalf-of"}
	for _, e := range evs {
		if e.Detail["grant"] != "obo" || e.Detail["grant_type"] != jwtBearer || e.Rule != rules[e.Subject] ||
			!slices.Equal(e.Audiences, []string{oboLedger}) || !slices.Equal(e.Actors, []string{"mid"}) {
			t.Errorf("event %+v, want rule %s", e, rules[e.Subject])
		}
	}
}

// oboEvent is an audit event as `deputy audit query --json` prints it.
type oboEvent struct {
	Type      string         `json:"type"`
	ClientID  string         `json:"client_id"`
	Subject   string         `json:"subject"`
	Actors    []string       `json:"actors"`
	Audiences []string       `json:"audiences"`
	Decision  string         `json:"decision"`
	Reason    string         `json:"reason"`
	Rule      string         `json:"rule"`
	TokenJTI  string         `json:"token_jti"`
	Detail    map[string]any `json:"detail"`
}

// oboAuditEvents runs `deputy audit query --json` with args.
func oboAuditEvents(t *testing.T, s *server, args ...string) []oboEvent {
	t.Helper()
	out, code := s.deputy(append([]string{"audit", "query", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("audit query: exit %d %s", code, out)
	}
	var evs []oboEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e oboEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit query line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// TestOnBehalfOfBadInput: on-behalf-of requests as plain HTTP forms to the
// built binary, refused with Entra's codes, nothing issued, each denial on
// record with grant obo. hr, to whom corp also addresses tokens, presents one
// for hr, which it may, to show the refusals of mid are mid's.
func TestOnBehalfOfBadInput(t *testing.T) {
	addr := freePort(t)
	s := &server{t: t, dir: t.TempDir(), issuer: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	corp := writeCorpKeys(t, s.dir)
	s.writeConfig(storageForMode(t, strings.Replace(oboConfig, "%TLS%", "", 1)), addr)
	s.run()
	webToken := s.token("web", "web-secret", clientCredentials("")).str("access_token")
	// web's token for the fraud service, not for mid.
	fraudToken := s.token("web", "web-secret", url.Values{"grant_type": {"client_credentials"},
		"resource": {"https://fraud.bank.example"}}).str("access_token")
	forged := corpUser(t, ecKey(t), "user-7") // signed by a key corp never published
	// user-42's corp token for hr, and an ID token of mid's own sign-in at corp
	// (nonce, azp), both of the issuer mid trusts and addressed where corp may.
	forHR := corpToken(t, corp, "user-42", "aud", "api://hr")
	idToken := corpToken(t, corp, "user-42", "azp", "mid", "nonce", "n-0S6_WzA2Mj", "scp", nil)

	obo := func(kv ...string) url.Values {
		f := url.Values{"grant_type": {jwtBearer}, "client_id": {"mid"}, "client_secret": {"mid-secret"},
			"requested_token_use": {"on_behalf_of"}, "assertion": {webToken}, "scope": {oboLedger + "/.default"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}
	cases := []struct {
		name   string
		form   url.Values
		code   string
		reason string
	}{
		{"fail/missing-requested-token-use", obo("requested_token_use", ""), "invalid_request", "invalid_request: missing parameter requested_token_use"},
		{"fail/scopes-for-two-audiences", obo("scope", oboLedger+"/read https://fraud.bank.example/read"), "invalid_scope", "invalid_scope: scope names two audiences"},
		{"fail/default-mixed-with-named", obo("scope", oboLedger+"/.default "+oboLedger+"/read"), "invalid_scope", "invalid_scope: scope mixes"},
		{"fail/assertion-badly-signed", obo("assertion", forged), "invalid_grant", "invalid_grant: assertion"},
		{"fail/assertion-for-another-client", obo("assertion", fraudToken), "invalid_grant", "invalid_grant: assertion is not addressed to the client"},
		// Entra's rule, for a trusted issuer's assertion too.
		{"fail/trusted-assertion-for-another-client", obo("assertion", forHR), "invalid_grant", "invalid_grant: assertion is not addressed to the client"},
		{"fail/trusted-id-token-as-assertion", obo("assertion", idToken), "invalid_grant", "invalid_grant: assertion is an ID token, not an access token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.postRaw(s.endpoint("token_endpoint"), "", "application/x-www-form-urlencoded", tc.form.Encode())
			wantError(t, r, 400, tc.code)
		})
	}
	hr := s.postRaw(s.endpoint("token_endpoint"), "", "application/x-www-form-urlencoded",
		obo("client_id", "hr", "client_secret", "hr-secret", "assertion", forHR).Encode())
	if hr.Status != 200 || hr.str("access_token") == "" {
		t.Fatalf("hr's on-behalf-of request with corp's token for hr: %d %s", hr.Status, hr.Raw)
	}
	denials := oboAuditEvents(t, s, "--client", "mid", "--type", "request.denied")
	if len(denials) != len(cases) {
		t.Fatalf("%d denials of mid on record, want %d: %+v", len(denials), len(cases), denials)
	}
	for i, e := range denials {
		if e.Decision != "deny" || e.TokenJTI != "" || !strings.HasPrefix(e.Reason, cases[i].reason) ||
			e.Detail["grant"] != "obo" || e.Detail["grant_type"] != jwtBearer {
			t.Errorf("%s: denial %+v", cases[i].name, e)
		}
	}
	if evs := oboAuditEvents(t, s, "--client", "mid", "--type", "token.exchanged"); len(evs) != 0 {
		t.Errorf("issued: %+v", evs)
	}
}

// TestOnBehalfOfReadmeConfig: the configuration README "On-behalf-of
// (Microsoft Entra's flow)" shows is one the built binary accepts as it is,
// with no policy finding: a reader may copy it.
func TestOnBehalfOfReadmeConfig(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### On-behalf-of (Microsoft Entra's flow)")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no yaml block in its on-behalf-of section")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "deputy.yaml")
	cfg := "issuer: https://deputy.example\n" + strings.ReplaceAll(sqliteStorage, "%DIR%", dir) + "\n" + block
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "policy", "lint", "--config", file)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.EqualFold(strings.TrimSpace(string(out)), "no findings") {
		t.Fatalf("deputy policy lint of README's configuration: %v\n%s", err, out)
	}
}
