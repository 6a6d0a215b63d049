package grant_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	issuer      = "https://deputy.test"
	apiAudience = "https://api.example"
	api2        = "https://api2.example"
	webRedirect = "https://web.example/cb"
	// verifier is a PKCE code_verifier (RFC 7636 §4.1: 43–128 characters).
	verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

	accessTTL  = 5 * time.Minute
	idTTL      = 5 * time.Minute
	refreshTTL = time.Hour
)

// challenge is the S256 code_challenge of v.
func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func sha(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

// clients registered in every fixture, with their secrets ("" for public clients).
var clientConfigs = []config.Client{
	{
		// A confidential web application: signs users in, refreshes, and may get
		// its own tokens; tokens issued to it may be exchanged by api.
		ID: "web", Secret: "web-secret", AuthMethod: oauth.AuthClientSecretBasic,
		GrantTypes:   []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials},
		RedirectURIs: []string{webRedirect, "https://web.example/other"},
		Scopes:       []string{"openid", "profile", "email", "read", "write"},
		Audiences:    []string{apiAudience},
		MayAct:       []string{"api"},
	},
	{
		// The same, without refresh_token, audiences or may_act.
		ID: "plain", Secret: "plain-secret", AuthMethod: oauth.AuthClientSecretBasic,
		GrantTypes:   []string{oauth.GrantAuthorizationCode},
		RedirectURIs: []string{webRedirect},
		Scopes:       []string{"openid", "read"},
	},
	{
		// Another confidential client that signs users in; it may also ask for token
		// exchange, though no policy names it.
		ID: "other", Secret: "other-secret", AuthMethod: oauth.AuthClientSecretBasic,
		GrantTypes:   []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantTokenExchange},
		RedirectURIs: []string{webRedirect},
		Scopes:       []string{"openid", "read"},
	},
	{
		// A public client that lists grants it can never use (no credentials).
		ID: "spa", AuthMethod: oauth.AuthNone,
		GrantTypes:   []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials, oauth.GrantTokenExchange},
		RedirectURIs: []string{webRedirect},
		Scopes:       []string{"openid", "read"},
	},
	{
		// A service: its own tokens, and exchange under policy api-to-api2.
		ID: "api", Secret: "api-secret", AuthMethod: oauth.AuthClientSecretBasic,
		GrantTypes: []string{oauth.GrantClientCredentials, oauth.GrantTokenExchange},
		Scopes:     []string{"read", "write"},
		Audiences:  []string{apiAudience},
	},
}

var secrets = map[string]string{"web": "web-secret", "plain": "plain-secret", "other": "other-secret", "api": "api-secret"}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// directory is a fixed set of user profiles (grant.Profiles).
type directory map[string]map[string]string

func (d directory) Claims(_ context.Context, subject, _ string) map[string]string { return d[subject] }

// fixture is a token endpoint assembled as internal/server assembles it, over a
// SQLite store in a temporary directory.
type fixture struct {
	path    string // of the SQLite database
	st      *sqlstore.DB
	revoked *token.Revoked
	audit   *audit.Writer
	tokens  *token.Service
	clients *client.Registry
	jwtKey  *ecdsa.PrivateKey // of client jwt
	xchg    *exchange.Exchanger
	users   *grant.UserTokens
	disp    *grant.Dispatcher
	now     time.Time
}

// newFixture builds the fixture. refuse, if not nil, is consulted by the audit
// writer's Admit after the revoked-parent check of internal/server.
func newFixture(t *testing.T, refuse func(*store.AuditEvent) error) *fixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "deputy.db")
	st, err := sqlstore.Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Open(ctx, st, keys.Options{Algorithm: "ES256", RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{path: path, st: st, revoked: token.NewRevoked(), now: time.Now().UTC().Truncate(time.Second)}
	f.audit = audit.NewWriter(st, st, audit.WriterOptions{
		Admit: func(e *store.AuditEvent) error {
			if e.Decision == store.DecisionAllow && e.ParentJTI != "" && e.TokenJTI != "" && f.revoked.Contains(e.ParentJTI) {
				return token.ErrRevoked
			}
			if refuse != nil {
				return refuse(e)
			}
			return nil
		},
		OnRevoked: f.revoked.Add,
	})
	t.Cleanup(func() { f.audit.Close() })
	f.tokens = token.NewService(issuer, ks, f.revoked, 16384)

	// A client that authenticates with private_key_jwt (RFC 7523 §2.2): its request
	// claims no client id until the assertion is checked.
	if f.jwtKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: f.jwtKey.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwt.jwks")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := append(slices.Clone(clientConfigs), config.Client{
		ID: "jwt", AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: jwksFile,
		GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{"read"},
	})
	if f.clients, err = client.NewRegistry(cfgs, issuer, issuer+"/token", st); err != nil {
		t.Fatal(err)
	}
	f.xchg, err = exchange.New([]config.Policy{{
		Name: "api-to-api2", Client: "api", Audiences: []string{api2}, Scopes: []string{"read"},
		Mode: config.ModeDelegation, RequestedTokenTypes: []string{"access_token"},
	}, {
		// Names a public client, which may still not exchange: it has no credentials.
		Name: "spa-to-api2", Client: "spa", Audiences: []string{api2}, Mode: config.ModeDelegation,
	}}, []config.Audience{
		{ID: apiAudience, Scopes: []string{"read", "write"}, Client: "api"},
		{ID: api2, Scopes: []string{"read", "write"}},
	}, exchange.Options{IssuerURL: issuer})
	if err != nil {
		t.Fatal(err)
	}
	f.users = &grant.UserTokens{
		Tokens: f.tokens, Refresh: st,
		Profiles: directory{"alice": {
			"name": "Alice", "preferred_username": "alice", "email": "alice@example.com",
			"phone_number": "+1 555 0100", "sub": "mallory",
		}},
		AccessTTL: accessTTL, IDTokenTTL: idTTL, RefreshTTL: refreshTTL,
	}
	f.disp = grant.NewDispatcher(f.clients, f.audit, map[string]grant.Grant{
		oauth.GrantClientCredentials: &grant.ClientCredentials{Tokens: f.tokens, TTL: accessTTL},
		oauth.GrantTokenExchange:     &grant.TokenExchange{Tokens: f.tokens, Subjects: subject.NewVerifier(f.tokens), Exchange: f.xchg},
		oauth.GrantAuthorizationCode: &grant.AuthorizationCode{Codes: st, Revoker: f.audit, Users: f.users},
		oauth.GrantRefreshToken:      &grant.RefreshToken{Store: st, Revoker: f.audit, Users: f.users},
	}, discard)
	return f
}

// request is a token request of clientID, authenticated with its secret (HTTP
// Basic) or, for a public client, by client_id alone; kv are form parameters.
func (f *fixture) request(clientID string, kv ...string) *grant.Request {
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Add(kv[i], kv[i+1])
	}
	cr := client.Credentials{FormID: clientID}
	if s, ok := secrets[clientID]; ok {
		cr = client.Credentials{Basic: true, BasicID: clientID, BasicSecret: s}
	}
	return &grant.Request{
		Endpoint: "token", Form: form, Credentials: cr, Now: f.now,
		RequestID: "req-" + token.NewID(), RemoteAddr: "192.0.2.1:1234",
	}
}

// assertion is a private_key_jwt client assertion of client jwt.
func (f *fixture) assertion(t *testing.T) client.Credentials {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.jwtKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := json.Marshal(map[string]any{"iss": "jwt", "sub": "jwt", "aud": issuer + "/token",
		"exp": f.now.Add(time.Minute).Unix(), "jti": token.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return client.Credentials{Assertion: raw, AssertionType: oauth.ClientAssertionTypeJWTBearer}
}

// code stores an authorization code issued to web for alice in session sid-1, with
// PKCE, changed by mod; it returns the code's value and its record.
func (f *fixture) code(t *testing.T, mod func(*store.AuthCode)) (string, store.AuthCode) {
	t.Helper()
	value := "code-value-" + token.NewID()
	ac := store.AuthCode{
		Hash: sha(value), ID: "code-" + token.NewID(), ClientID: "web", SessionID: "sid-1", Subject: "alice",
		RedirectURI: webRedirect, Scopes: []string{"openid", "profile", "read"}, Nonce: "n-0S6_WzA2Mj",
		CodeChallenge: challenge(verifier), IdP: "local", AMR: []string{"pwd"}, ACR: "urn:deputy:pwd",
		AuthTime: f.now.Add(-time.Minute), ExpiresAt: f.now.Add(time.Minute),
	}
	if mod != nil {
		mod(&ac)
	}
	if err := f.st.InsertCode(context.Background(), ac); err != nil {
		t.Fatal(err)
	}
	return value, ac
}

// redeem presents code at the token endpoint as web, with the redirect URI and the
// verifier of a default code.
func (f *fixture) redeem(code string) (*grant.Request, *oauth.TokenResponse, error) {
	req := f.request("web", "grant_type", oauth.GrantAuthorizationCode, "code", code,
		"redirect_uri", webRedirect, "code_verifier", verifier)
	resp, err := f.disp.Token(context.Background(), req)
	return req, resp, err
}

// refresh presents a refresh token as clientID, with kv as further parameters.
func (f *fixture) refresh(clientID, rt string, kv ...string) (*grant.Request, *oauth.TokenResponse, error) {
	req := f.request(clientID, append([]string{"grant_type", oauth.GrantRefreshToken, "refresh_token", rt}, kv...)...)
	resp, err := f.disp.Token(context.Background(), req)
	return req, resp, err
}

// events returns the audit events of one request, in chain order.
func (f *fixture) events(t *testing.T, requestID string) []store.AuditEvent {
	t.Helper()
	all, err := f.st.Query(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range all {
		if e.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}

// access verifies an access token deputy issued, ignoring revocation.
func (f *fixture) access(t *testing.T, raw string) token.Claims {
	t.Helper()
	v, err := f.tokens.VerifyIgnoringRevocation(raw, []string{oauth.JWTTypeAccessToken}, f.now)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	return v.Claims
}

// verifyIDToken checks an ID token the way deputy checks one it issued (an
// id_token_hint, a subject token): Verify with typ JWT, expiry included; and
// returns its claims.
func verifyIDToken(f *fixture, raw string) (*token.IDClaims, error) {
	if _, err := f.tokens.Verify(raw, []string{oauth.JWTTypeJWT}, f.now); err != nil {
		return nil, err
	}
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c token.IDClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// refreshRecord returns the stored refresh token of value.
func (f *fixture) refreshRecord(t *testing.T, value string) store.RefreshToken {
	t.Helper()
	rt, err := f.st.RefreshTokenByHash(context.Background(), sha(value))
	if err != nil {
		t.Fatalf("refresh token %q: %v", value, err)
	}
	return rt
}

// wantCode fails unless err is a protocol error with code c.
func wantCode(t *testing.T, err error, c oauth.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", c)
	}
	if got := oauth.AsError(err).Code; got != c {
		t.Fatalf("error %v, want code %s", err, c)
	}
}

// wantDenied fails unless the request's audit record is exactly one request.denied
// event whose reason starts with the error code, and returns it.
func wantDenied(t *testing.T, f *fixture, req *grant.Request, c oauth.Code) store.AuditEvent {
	t.Helper()
	evs := f.events(t, req.RequestID)
	if len(evs) != 1 {
		t.Fatalf("request %s has %d audit events, want one denial: %+v", req.RequestID, len(evs), evs)
	}
	e := evs[0]
	if e.Type != store.EventDenied || e.Decision != store.DecisionDeny {
		t.Errorf("event type %q decision %q, want %s deny", e.Type, e.Decision, store.EventDenied)
	}
	if e.Reason != string(c) && !strings.HasPrefix(e.Reason, string(c)+": ") {
		t.Errorf("reason %q does not start with %s", e.Reason, c)
	}
	if e.TokenJTI != "" || !e.TokenExpires.IsZero() {
		t.Errorf("denial names an issued token %q (expires %v)", e.TokenJTI, e.TokenExpires)
	}
	if e.RemoteAddr != req.RemoteAddr {
		t.Errorf("remote address %q, want %q", e.RemoteAddr, req.RemoteAddr)
	}
	return e
}
