package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/argon2"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// Client is a registered client.
type Client struct {
	ID           string
	AuthMethod   string
	GrantTypes   []string
	RedirectURIs []string
	Scopes       []string
	Audiences    []string
	// MayAct is the party that tokens issued to this client may be exchanged by
	// (RFC 8693 §4.4), or "".
	MayAct string
	// Name is shown to people on deputy's pages ("" when not configured: show ID).
	Name string
	// PostLogoutRedirectURIs are where end-session may send the browser back to.
	PostLogoutRedirectURIs []string
	// IDTokenAlg is the algorithm of this client's ID tokens
	// (id_token_signed_response_alg; "" for the server's default).
	IDTokenAlg string
	// DPoPBoundAccessTokens: every token request of the client must carry a DPoP
	// proof (dpop_bound_access_tokens, RFC 9449 §5.2).
	DPoPBoundAccessTokens bool
	// CertificateBound: the client's tokens are bound to the TLS client
	// certificate of the token request (tls_client_certificate_bound_access_tokens,
	// RFC 8705 §3).
	CertificateBound bool

	tlsName tlsName  // for tls_client_auth
	digest  [32]byte // sha256 of the secret, when known
	hasHash bool     // digest is valid
	argon   *argonHash
	// argonHash is the secret_hash argon was parsed from.
	argonHash string
	learned   atomic.Pointer[[32]byte] // digest of the secret that passed argon2
	jwks      *jose.JSONWebKeySet
}

// DisplayName is the client's name for people: its name, else its id.
func (c *Client) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// Public reports whether the client has no credentials (auth_method none).
func (c *Client) Public() bool { return c.AuthMethod == oauth.AuthNone }

// HasGrant reports whether the client may use grant type g.
func (c *Client) HasGrant(g string) bool {
	for _, x := range c.GrantTypes {
		if x == g {
			return true
		}
	}
	return false
}

// Registry holds every client in memory.
type Registry struct {
	byID map[string]*Client
	// slow bounds how many argon2id checks run at once: each takes tens of MiB and
	// milliseconds, so a flood of wrong secrets must queue rather than exhaust the
	// machine.
	slow      chan struct{}
	nonces    store.Nonces
	audiences []string // accepted aud values of client assertions
	clientCAs *x509.CertPool
}

// NewRegistry builds the registry from configuration. issuer and tokenURL are the
// accepted audiences of private_key_jwt assertions; nonces remembers their jti.
func NewRegistry(cfgs []config.Client, issuer, tokenURL string, nonces store.Nonces) (*Registry, error) {
	r := &Registry{byID: map[string]*Client{}, nonces: nonces, audiences: []string{issuer, tokenURL},
		slow: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if err := r.add(cfgs, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Reconfigure returns a registry of cfgs (a reload of the configuration file)
// that shares r's bound on concurrent argon2id checks, its client CAs and its
// replay memory of assertions. A client whose secret_hash is unchanged keeps the
// secret r learned for it, so its next request costs no slow hash. r is
// unchanged.
func (r *Registry) Reconfigure(cfgs []config.Client) (*Registry, error) {
	n := &Registry{byID: map[string]*Client{}, nonces: r.nonces, audiences: r.audiences, slow: r.slow, clientCAs: r.clientCAs}
	if err := n.add(cfgs, r); err != nil {
		return nil, err
	}
	return n, nil
}

// add registers the clients of cfgs; prev, if not nil, is the registry they
// replace.
func (r *Registry) add(cfgs []config.Client, prev *Registry) error {
	for i, cc := range cfgs {
		c := &Client{
			ID: cc.ID, AuthMethod: cc.AuthMethod, GrantTypes: cc.GrantTypes,
			RedirectURIs: cc.RedirectURIs, Scopes: cc.Scopes, Audiences: cc.Audiences,
			IDTokenAlg: cc.IDTokenSignedResponseAlg, DPoPBoundAccessTokens: cc.DPoPBoundAccessTokens,
		}
		if len(cc.MayAct) > 0 {
			c.MayAct = cc.MayAct[0]
		}
		c.Name, c.PostLogoutRedirectURIs = cc.Name, cc.PostLogoutRedirectURIs
		c.CertificateBound, c.tlsName = cc.TLSClientCertificateBoundAccessTokens, newTLSName(cc)
		switch {
		case cc.Secret != "":
			c.digest, c.hasHash = sha256.Sum256([]byte(cc.Secret)), true
		case strings.HasPrefix(cc.SecretHash, "sha256:"):
			b, err := hex.DecodeString(strings.TrimPrefix(cc.SecretHash, "sha256:"))
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("clients[%d].secret_hash: malformed sha256 digest", i)
			}
			copy(c.digest[:], b)
			c.hasHash = true
		case cc.SecretHash != "":
			h, err := parseArgon2id(cc.SecretHash)
			if err != nil {
				return fmt.Errorf("clients[%d].secret_hash: %w", i, err)
			}
			c.argon, c.argonHash = h, cc.SecretHash
			if old, ok := prev.Lookup(cc.ID); ok && old.argonHash == cc.SecretHash {
				c.learned.Store(old.learned.Load())
			}
		}
		if cc.JWKSFile != "" {
			b, err := os.ReadFile(cc.JWKSFile)
			if err != nil {
				return fmt.Errorf("clients[%d].jwks_file: %w", i, err)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(b, &set); err != nil {
				return fmt.Errorf("clients[%d].jwks_file: %w", i, err)
			}
			for _, k := range set.Keys {
				if !k.IsPublic() {
					return fmt.Errorf("clients[%d].jwks_file: holds a private key; publish public keys only", i)
				}
			}
			c.jwks = &set
		}
		r.byID[c.ID] = c
	}
	return nil
}

// Lookup returns the client with that id (none from a nil Registry).
func (r *Registry) Lookup(id string) (*Client, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.byID[id]
	return c, ok
}

// Credentials are the client credentials found in one request, as sent.
type Credentials struct {
	// Basic is set when an Authorization header with the Basic scheme was sent.
	Basic          bool
	BasicMalformed bool // the header was present but not valid Basic credentials
	BasicID        string
	BasicSecret    string
	FormID         string // client_id form parameter
	FormSecret     string // client_secret form parameter
	Assertion      string // client_assertion
	AssertionType  string // client_assertion_type
	// Certificates is the request's TLS client certificate chain, leaf first (RFC
	// 8705): from the connection, or from a trusted proxy's header. Presenting one
	// is no authentication method of its own: it authenticates a client whose
	// auth_method is tls_client_auth or self_signed_tls_client_auth, and binds the
	// tokens of a client with certificate-bound tokens.
	Certificates []*x509.Certificate
}

// ClaimedID is the client id the request claims, before authentication ("" if none).
func (cr *Credentials) ClaimedID() string {
	if cr.BasicID != "" {
		return cr.BasicID
	}
	return cr.FormID
}

// Authenticate identifies and authenticates the client of a request. Errors are
// protocol errors: invalid_client (401) for failed authentication — wrong or missing
// credentials, a client_id naming another client than the credentials or the
// assertion, any fault of a client assertion or client certificate (RFC 8705 §2) —
// and invalid_request only for more
// than one method in one request (RFC 6749 §2.3).
func (r *Registry) Authenticate(ctx context.Context, cr *Credentials, now time.Time) (*Client, error) {
	if cr.BasicMalformed {
		return nil, oauth.InvalidClient("malformed Authorization header", errors.New("authorization header is not valid Basic credentials"))
	}
	methods := 0
	for _, present := range []bool{cr.Basic, cr.FormSecret != "", cr.Assertion != "" || cr.AssertionType != ""} {
		if present {
			methods++
		}
	}
	if methods > 1 {
		return nil, oauth.InvalidRequest("more than one client authentication method", nil)
	}
	switch {
	case cr.Basic:
		if cr.FormID != "" && cr.FormID != cr.BasicID {
			// The credentials are another client's than the one the request names: a
			// failed authentication, like a wrong secret.
			return nil, oauth.InvalidClient("client_id does not match the Authorization header",
				fmt.Errorf("basic credentials of client %q, client_id %q", cr.BasicID, cr.FormID))
		}
		return r.secret(ctx, cr.BasicID, cr.BasicSecret, oauth.AuthClientSecretBasic)
	case cr.FormSecret != "":
		return r.secret(ctx, cr.FormID, cr.FormSecret, oauth.AuthClientSecretPost)
	case cr.Assertion != "" || cr.AssertionType != "":
		return r.assertion(ctx, cr, now)
	}
	c, ok := r.byID[cr.FormID]
	if ok && (c.AuthMethod == oauth.AuthTLSClient || c.AuthMethod == oauth.AuthSelfSignedTLSClient) {
		// RFC 8705 §2: client_id names the client, the certificate authenticates it.
		return r.certificate(c, cr, now)
	}
	if cr.FormID == "" || !ok || !c.Public() {
		return nil, oauth.InvalidClient("client authentication failed", fmt.Errorf("no credentials for client %q", cr.FormID))
	}
	return c, nil
}

func unknown(id string) error {
	return oauth.InvalidClient("client authentication failed", fmt.Errorf("unknown client %q", id))
}

func (r *Registry) secret(ctx context.Context, id, secret, method string) (*Client, error) {
	c, ok := r.byID[id]
	if !ok {
		return nil, unknown(id)
	}
	if c.AuthMethod != method {
		return nil, oauth.InvalidClient("client authentication failed",
			fmt.Errorf("client %q authenticates with %s, not %s", id, c.AuthMethod, method))
	}
	ok, err := c.checkSecret(ctx, secret, r.slow)
	if err != nil {
		return nil, oauth.TemporarilyUnavailable("the server is busy", fmt.Errorf("client %q: waiting to check the secret: %w", id, err))
	}
	if !ok {
		return nil, oauth.InvalidClient("client authentication failed", fmt.Errorf("wrong secret for client %q", id))
	}
	return c, nil
}

// checkSecret reports whether secret is the client's. An argon2id check waits for
// a slot of slow, or returns ctx's error when ctx ends first (a request whose
// client went away, or past its deadline, stops waiting at once and never hashes).
func (c *Client) checkSecret(ctx context.Context, secret string, slow chan struct{}) (bool, error) {
	got := sha256.Sum256([]byte(secret))
	if c.hasHash {
		return subtle.ConstantTimeCompare(got[:], c.digest[:]) == 1, nil
	}
	if c.argon == nil {
		return false, nil
	}
	if known := c.learned.Load(); known != nil {
		// The accepted secret is known; any other is wrong, without a slow hash.
		return subtle.ConstantTimeCompare(got[:], known[:]) == 1, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	select {
	case slow <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	ok := c.argon.matches(secret)
	<-slow
	if !ok {
		return false, nil
	}
	c.learned.Store(&got)
	return true, nil
}

// argonHash is a parsed "$argon2id$v=19$m=…,t=…,p=…$salt$hash" string.
type argonHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

func parseArgon2id(s string) (*argonHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return nil, errors.New(`not an argon2id hash of the form "$argon2id$v=19$m=…,t=…,p=…$salt$hash"`)
	}
	h := &argonHash{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id parameter %q: %w", kv, err)
		}
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d too large", n)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id: unknown parameter %q", k)
		}
	}
	if h.memory == 0 || h.time == 0 || h.threads == 0 {
		return nil, errors.New("argon2id: m, t and p are required")
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("argon2id salt: %w", err)
	}
	if h.hash, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.hash) < 16 {
		return nil, errors.New("argon2id: malformed hash")
	}
	return h, nil
}

func (h *argonHash) matches(secret string) bool {
	got := argon2.IDKey([]byte(secret), h.salt, h.time, h.memory, h.threads, uint32(len(h.hash)))
	return subtle.ConstantTimeCompare(got, h.hash) == 1
}

// HashArgon2id returns the argon2id hash string of secret with the given salt (for
// tooling and tests).
func HashArgon2id(secret string, salt []byte) string {
	const m, t, p = 64 * 1024, 3, 2
	sum := argon2.IDKey([]byte(secret), salt, t, m, p, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}
