package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/oauth"
)

const (
	issuer   = "https://deputy.example"
	tokenURL = issuer + "/token"
)

// nonces opens a real SQLite store on a temporary file, as deputy serve does.
func nonces(t testing.TB) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), "sqlite", filepath.Join(t.TempDir(), "nonces.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwksFile writes a JWKS holding keys to a file in a temporary directory.
func jwksFile(t testing.TB, keys ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.jwks")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func publicJWK(k *ecdsa.PrivateKey, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// sign returns a compact JWS of claims, signed with key under alg with header kid.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned returns an "alg":"none" JWT of claims.
func unsigned(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

var jtiSeq atomic.Int64

// claimsFor are valid RFC 7523 §3 claims of an assertion by client id at now.
func claimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id,
		"sub": id,
		"aud": issuer,
		"exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": fmt.Sprintf("jti-%d-%d", now.UnixNano(), jtiSeq.Add(1)),
	}
}

func with(claims map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(claims, k)
		} else {
			claims[k] = kv[i+1]
		}
	}
	return claims
}

func assertionCreds(jwt string) *Credentials {
	return &Credentials{Assertion: jwt, AssertionType: oauth.ClientAssertionTypeJWTBearer}
}

// codeOf is the protocol error code of err, or "" when err is not an *oauth.Error.
func codeOf(err error) oauth.Code {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

const hashedSecret = "hashed-secret"

// fixture is a registry with one client of every kind.
type fixture struct {
	reg      *Registry
	key      *ecdsa.PrivateKey // jwt-client's signing key (kid k1)
	otherKey *ecdsa.PrivateKey // jwt-client-2's key (kid k2)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{key: newKey(t), otherKey: newKey(t)}
	digest := sha256.Sum256([]byte(hashedSecret))
	cfgs := []config.Client{
		{ID: "basic-client", Secret: "basic-secret", AuthMethod: oauth.AuthClientSecretBasic},
		{ID: "post-client", Secret: "post-secret", AuthMethod: oauth.AuthClientSecretPost},
		{ID: "public-client", AuthMethod: oauth.AuthNone},
		{ID: "sha-client", SecretHash: "sha256:" + hex.EncodeToString(digest[:]), AuthMethod: oauth.AuthClientSecretBasic},
		{ID: "no-secret-client", AuthMethod: oauth.AuthClientSecretBasic},
		{ID: "jwt-client", AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: jwksFile(t, publicJWK(f.key, "k1"))},
		{ID: "jwt-client-2", AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: jwksFile(t, publicJWK(f.otherKey, "k2"))},
	}
	reg, err := NewRegistry(cfgs, issuer, tokenURL, nonces(t))
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	return f
}

// assertion is a valid ES256 assertion of jwt-client, changed by kv (see with).
func (f *fixture) assertion(t testing.TB, now time.Time, kv ...any) string {
	return sign(t, jose.ES256, f.key, "k1", with(claimsFor("jwt-client", now), kv...))
}

// TestAuthenticate covers every client authentication method of RFC 6749 §2.3 and
// RFC 7523 §2.2, and the refusals design §5 (check 1) requires.
func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	now := time.Now() // the nonce store compares with the wall clock

	pubDER, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK, err := json.Marshal(publicJWK(f.key, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	rogue := newKey(t)

	tests := []struct {
		name   string
		creds  func() *Credentials
		wantID string     // the authenticated client, when the call succeeds
		want   oauth.Code // the error code, when it fails
	}{
		{name: "ok/basic", wantID: "basic-client", creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client", BasicSecret: "basic-secret"}
		}},
		{name: "ok/basic-with-matching-client_id", wantID: "basic-client", creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client", BasicSecret: "basic-secret", FormID: "basic-client"}
		}},
		{name: "ok/post", wantID: "post-client", creds: func() *Credentials {
			return &Credentials{FormID: "post-client", FormSecret: "post-secret"}
		}},
		{name: "ok/public-client-by-client_id", wantID: "public-client", creds: func() *Credentials {
			return &Credentials{FormID: "public-client"}
		}},
		{name: "ok/sha256-secret-hash", wantID: "sha-client", creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "sha-client", BasicSecret: hashedSecret}
		}},
		{name: "fail/sha256-secret-hash-wrong-secret", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "sha-client", BasicSecret: hashedSecret + "x"}
		}},
		{name: "fail/sha256-secret-hash-digest-as-secret", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			d := sha256.Sum256([]byte(hashedSecret))
			return &Credentials{Basic: true, BasicID: "sha-client", BasicSecret: hex.EncodeToString(d[:])}
		}},
		{name: "fail/wrong-secret", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client", BasicSecret: "basic-secreT"}
		}},
		{name: "fail/wrong-secret-post", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "post-client", FormSecret: "basic-secret"}
		}},
		{name: "fail/empty-secret", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client"}
		}},
		{name: "fail/client-without-secret", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "no-secret-client"}
		}},
		{name: "fail/unknown-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "nobody", BasicSecret: "basic-secret"}
		}},
		{name: "fail/unknown-client-post", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "nobody", FormSecret: "basic-secret"}
		}},
		{name: "fail/unknown-client-by-client_id", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "nobody"}
		}},
		{name: "fail/method-mismatch-basic-for-post-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "post-client", BasicSecret: "post-secret"}
		}},
		{name: "fail/method-mismatch-post-for-basic-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "basic-client", FormSecret: "basic-secret"}
		}},
		{name: "fail/method-mismatch-secret-for-public-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "public-client", FormSecret: "anything"}
		}},
		{name: "fail/method-mismatch-client_id-only-for-jwt-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "jwt-client"}
		}},
		{name: "fail/malformed-basic", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicMalformed: true}
		}},
		{name: "fail/malformed-basic-with-valid-post", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicMalformed: true, FormID: "post-client", FormSecret: "post-secret"}
		}},
		{name: "fail/two-methods-basic-and-post", want: oauth.CodeInvalidRequest, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client", BasicSecret: "basic-secret", FormID: "basic-client", FormSecret: "basic-secret"}
		}},
		{name: "fail/two-methods-basic-and-assertion", want: oauth.CodeInvalidRequest, creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.Basic, cr.BasicID, cr.BasicSecret = true, "basic-client", "basic-secret"
			return cr
		}},
		{name: "fail/two-methods-post-and-assertion", want: oauth.CodeInvalidRequest, creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.FormSecret = "post-secret"
			return cr
		}},
		// The client_id parameter names another client than the credentials: a failed
		// authentication (401), not a malformed request.
		{name: "fail/client-id-mismatch", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{Basic: true, BasicID: "basic-client", BasicSecret: "basic-secret", FormID: "post-client"}
		}},
		{name: "fail/no-credentials", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{FormID: "basic-client"}
		}},
		{name: "fail/nothing", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return &Credentials{}
		}},

		// private_key_jwt (RFC 7523 §3).
		{name: "ok/assertion", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now))
		}},
		{name: "ok/assertion-aud-token-url", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "aud", tokenURL))
		}},
		{name: "ok/assertion-aud-array", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "aud", []string{"https://elsewhere.example", issuer}))
		}},
		{name: "ok/assertion-with-client_id", wantID: "jwt-client", creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.FormID = "jwt-client"
			return cr
		}},
		{name: "ok/assertion-without-kid", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(sign(t, jose.ES256, f.key, "", claimsFor("jwt-client", now)))
		}},
		{name: "ok/assertion-fractional-numeric-dates", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "exp", float64(now.Add(time.Minute).Unix())+0.5, "nbf", float64(now.Unix())-0.25))
		}},
		{name: "ok/assertion-exp-one-hour", wantID: "jwt-client", creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "exp", now.Add(time.Hour).Unix()))
		}},
		{name: "ok/assertion-of-second-client", wantID: "jwt-client-2", creds: func() *Credentials {
			return assertionCreds(sign(t, jose.ES256, f.otherKey, "k2", claimsFor("jwt-client-2", now)))
		}},
		{name: "fail/expired", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "exp", now.Add(-time.Second).Unix()))
		}},
		{name: "fail/exp-too-far", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "exp", now.Add(time.Hour+time.Minute).Unix()))
		}},
		{name: "fail/missing-exp", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "exp", nil))
		}},
		{name: "fail/not-yet-valid", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "nbf", now.Add(2*time.Minute).Unix()))
		}},
		{name: "fail/missing-jti", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "jti", nil))
		}},
		{name: "fail/wrong-aud", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "aud", "https://other.example"))
		}},
		{name: "fail/aud-prefix-of-issuer", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "aud", issuer+"/"))
		}},
		{name: "fail/missing-aud", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "aud", nil))
		}},
		{name: "fail/iss-ne-sub", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "iss", "jwt-client-2"))
		}},
		{name: "fail/unknown-sub", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "iss", "nobody", "sub", "nobody"))
		}},
		{name: "fail/sub-not-a-private_key_jwt-client", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "iss", "basic-client", "sub", "basic-client"))
		}},
		{name: "fail/signed-by-other-clients-key", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(sign(t, jose.ES256, f.otherKey, "k2", claimsFor("jwt-client", now)))
		}},
		{name: "fail/signed-by-other-key", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			// A key the client never published, under the kid of one it did.
			return assertionCreds(sign(t, jose.ES256, rogue, "k1", claimsFor("jwt-client", now)))
		}},
		{name: "fail/alg-none", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(unsigned(t, claimsFor("jwt-client", now)))
		}},
		{name: "fail/hs256-with-public-key-bytes", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(sign(t, jose.HS256, pubDER, "k1", claimsFor("jwt-client", now)))
		}},
		{name: "fail/hs256-with-public-jwk-bytes", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(sign(t, jose.HS256, pubJWK, "k1", claimsFor("jwt-client", now)))
		}},
		{name: "fail/wrong-assertion-type", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.AssertionType = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
			return cr
		}},
		{name: "fail/missing-assertion-type", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.AssertionType = ""
			return cr
		}},
		{name: "fail/assertion-type-without-assertion", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds("")
		}},
		{name: "fail/assertion-not-a-jwt", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds("not.a.jwt")
		}},
		{name: "fail/assertion-over-sized", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			return assertionCreds(f.assertion(t, now, "pad", strings.Repeat("x", 9000)))
		}},
		// RFC 7521 §4.2, RFC 7523 §3.2: client_id must identify the client the assertion
		// identifies; when it does not, authentication failed (invalid_client).
		{name: "fail/client-id-param-mismatch", want: oauth.CodeInvalidClient, creds: func() *Credentials {
			cr := assertionCreds(f.assertion(t, now))
			cr.FormID = "jwt-client-2"
			return cr
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.reg.Authenticate(t.Context(), tt.creds(), now)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if c == nil || c.ID != tt.wantID {
					t.Fatalf("authenticated %+v, want %s", c, tt.wantID)
				}
				return
			}
			if err == nil {
				t.Fatalf("authenticated %s, want %s", c.ID, tt.want)
			}
			if c != nil {
				t.Errorf("a failed authentication returned client %s", c.ID)
			}
			if got := codeOf(err); got != tt.want {
				t.Errorf("error %v: code %q, want %q", err, got, tt.want)
			}
		})
	}
}

// TestAssertionReplay: a client assertion's jti is single-use (RFC 7523 §3 item 7),
// remembered per client in the store.
func TestAssertionReplay(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	claims := claimsFor("jwt-client", now)
	jwt := sign(t, jose.ES256, f.key, "k1", claims)

	if _, err := f.reg.Authenticate(t.Context(), assertionCreds(jwt), now); err != nil {
		t.Fatalf("ok/first-use: %v", err)
	}
	_, err := f.reg.Authenticate(t.Context(), assertionCreds(jwt), now)
	if got := codeOf(err); got != oauth.CodeInvalidClient {
		t.Fatalf("fail/replayed-jti: %v (code %q), want invalid_client", err, got)
	}
	// The same jti in a new assertion (a different signature) is still a replay.
	again := sign(t, jose.ES256, f.key, "k1", with(claimsFor("jwt-client", now), "jti", claims["jti"]))
	if _, err := f.reg.Authenticate(t.Context(), assertionCreds(again), now); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/replayed-jti-resigned: %v, want invalid_client", err)
	}
	// Another client's jti space is its own.
	other := sign(t, jose.ES256, f.otherKey, "k2", with(claimsFor("jwt-client-2", now), "jti", claims["jti"]))
	if c, err := f.reg.Authenticate(t.Context(), assertionCreds(other), now); err != nil || c.ID != "jwt-client-2" {
		t.Fatalf("ok/same-jti-other-client: %v, %v", c, err)
	}
	// A refused assertion does not use up its jti.
	jti := "refused-then-fine"
	bad := sign(t, jose.ES256, f.key, "k1", with(claimsFor("jwt-client", now), "jti", jti, "aud", "https://other.example"))
	if _, err := f.reg.Authenticate(t.Context(), assertionCreds(bad), now); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/wrong-aud: %v", err)
	}
	good := sign(t, jose.ES256, f.key, "k1", with(claimsFor("jwt-client", now), "jti", jti))
	if _, err := f.reg.Authenticate(t.Context(), assertionCreds(good), now); err != nil {
		t.Fatalf("ok/jti-of-refused-assertion: %v", err)
	}
}

// TestAssertionReplayConcurrent: of many simultaneous uses of one assertion, exactly
// one is accepted.
func TestAssertionReplayConcurrent(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	jwt := f.assertion(t, now)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, err := f.reg.Authenticate(t.Context(), assertionCreds(jwt), now)
			switch codeOf(err) {
			case "":
				if err == nil {
					ok.Add(1)
				}
			case oauth.CodeInvalidClient:
				refused.Add(1)
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 15 {
		t.Fatalf("%d accepted, %d refused; want 1 and 15", ok.Load(), refused.Load())
	}
}

// TestArgon2idSecretHash: an argon2id secret_hash accepts its secret and nothing else;
// once a secret has passed argon2, other secrets are refused from its digest alone.
func TestArgon2idSecretHash(t *testing.T) {
	salt := []byte("0123456789abcdef")
	hash := HashArgon2id("right-secret", salt)
	newReg := func(t *testing.T, secretHash string) *Registry {
		t.Helper()
		r, err := NewRegistry([]config.Client{{ID: "argon-client", SecretHash: secretHash, AuthMethod: oauth.AuthClientSecretPost}},
			issuer, tokenURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	auth := func(r *Registry, secret string) error {
		_, err := r.Authenticate(t.Context(), &Credentials{FormID: "argon-client", FormSecret: secret}, time.Now())
		return err
	}

	r := newReg(t, hash)
	if err := auth(r, "wrong-secret"); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/wrong-secret-before-learning: %v", err)
	}
	if err := auth(r, "right-secret"); err != nil {
		t.Fatalf("ok/right-secret: %v", err)
	}
	if err := auth(r, "right-secret"); err != nil {
		t.Fatalf("ok/right-secret-again: %v", err)
	}
	if err := auth(r, "wrong-secret"); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/wrong-secret-after-learning: %v", err)
	}
	if err := auth(r, ""); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/empty-secret-after-learning: %v", err)
	}

	// After learning, argon2 is not consulted: swap in a hash that "wrong-secret"
	// would pass, and it must still be refused, since only the learned digest counts.
	wrongHash, err := parseArgon2id(HashArgon2id("wrong-secret", salt))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Lookup("argon-client")
	c.argon = wrongHash
	if err := auth(r, "wrong-secret"); codeOf(err) != oauth.CodeInvalidClient {
		t.Fatalf("fail/wrong-secret-after-learning-without-argon2: %v", err)
	}
	if err := auth(r, "right-secret"); err != nil {
		t.Fatalf("ok/right-secret-from-learned-digest: %v", err)
	}
	// Control: before learning, the swapped hash is what decides.
	r2 := newReg(t, hash)
	c2, _ := r2.Lookup("argon-client")
	c2.argon = wrongHash
	if err := auth(r2, "wrong-secret"); err != nil {
		t.Fatalf("control: a fresh client with the swapped hash refused its secret: %v", err)
	}
}

// TestArgon2idConcurrentLearning: concurrent first uses of the right secret all pass
// (run with -race: the learned digest is shared).
func TestArgon2idConcurrentLearning(t *testing.T) {
	r, err := NewRegistry([]config.Client{{
		ID: "argon-client", SecretHash: HashArgon2id("s", []byte("saltsaltsaltsalt")), AuthMethod: oauth.AuthClientSecretBasic,
	}}, issuer, tokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			secret := "s"
			if i == 3 {
				secret = "not-s"
			}
			_, err := r.Authenticate(t.Context(), &Credentials{Basic: true, BasicID: "argon-client", BasicSecret: secret}, time.Now())
			if (err == nil) != (secret == "s") {
				t.Errorf("secret %q: %v", secret, err)
			}
		})
	}
	wg.Wait()
}

// TestReconfigure: the registry of a reloaded configuration has the new clients
// and secrets; a client whose secret_hash is unchanged keeps the secret learned
// (no slow hash: with every hashing slot taken, it still authenticates at once),
// one whose secret_hash changed learns again.
func TestReconfigure(t *testing.T) {
	salt := []byte("0123456789abcdef")
	argon := config.Client{ID: "argon-client", SecretHash: HashArgon2id("s", salt), AuthMethod: oauth.AuthClientSecretPost}
	plain := config.Client{ID: "plain", Secret: "p1", AuthMethod: oauth.AuthClientSecretPost}
	r, err := NewRegistry([]config.Client{argon, plain}, issuer, tokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := func(r *Registry, id, secret string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := r.Authenticate(ctx, &Credentials{FormID: id, FormSecret: secret}, time.Now())
		return err
	}
	if err := auth(r, "argon-client", "s"); err != nil {
		t.Fatal(err)
	}
	changedPlain := plain
	changedPlain.Secret = "p2"
	n, err := r.Reconfigure([]config.Client{argon, changedPlain, {ID: "added", Secret: "a", AuthMethod: oauth.AuthClientSecretPost}})
	if err != nil {
		t.Fatal(err)
	}
	for range cap(r.slow) {
		r.slow <- struct{}{} // every hashing slot taken, for both registries
	}
	defer func() {
		for range cap(r.slow) {
			<-r.slow
		}
	}()
	tests := []struct {
		name, id, secret string
		ok               bool
	}{
		{"ok/learned-secret-kept", "argon-client", "s", true},
		{"fail/old-secret", "plain", "p1", false},
		{"ok/new-secret", "plain", "p2", true},
		{"ok/added", "added", "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := auth(n, tt.id, tt.secret); (err == nil) != tt.ok {
				t.Errorf("Authenticate = %v, want ok %v", err, tt.ok)
			}
		})
	}
	if err := auth(r, "plain", "p1"); err != nil {
		t.Errorf("the replaced registry changed: %v", err)
	}
	rehashed := argon
	rehashed.SecretHash = HashArgon2id("s", []byte("fedcba9876543210"))
	n2, err := n.Reconfigure([]config.Client{rehashed})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth(n2, "argon-client", "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a changed secret_hash: %v, want a wait for a hashing slot (nothing learned)", err)
	}
	if _, err := n.Reconfigure([]config.Client{{ID: "x", SecretHash: "sha256:zz"}}); err == nil {
		t.Error("a malformed secret_hash was accepted")
	}
}

// TestNewRegistryRefuses: malformed secret hashes and JWKS files stop start-up with a
// message naming the client's key.
func TestNewRegistryRefuses(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	sum := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	argon := func(params, salt, sum string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + sum }
	priv := newKey(t)
	notJSON := filepath.Join(t.TempDir(), "bad.jwks")
	if err := os.WriteFile(notJSON, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		c    config.Client
		want string // substring of the error; "" means NewRegistry succeeds
	}{
		{"ok/sha256", config.Client{SecretHash: "sha256:" + strings.Repeat("ab", 32)}, ""},
		{"ok/sha256-upper-case", config.Client{SecretHash: "sha256:" + strings.Repeat("AB", 32)}, ""},
		{"ok/argon2id", config.Client{SecretHash: argon("m=65536,t=3,p=2", salt, sum)}, ""},
		{"ok/public-jwks", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: jwksFile(t, publicJWK(priv, "k"))}, ""},
		{"fail/sha256-not-hex", config.Client{SecretHash: "sha256:" + strings.Repeat("zz", 32)}, "malformed sha256"},
		{"fail/sha256-short", config.Client{SecretHash: "sha256:" + strings.Repeat("ab", 31)}, "malformed sha256"},
		{"fail/sha256-long", config.Client{SecretHash: "sha256:" + strings.Repeat("ab", 33)}, "malformed sha256"},
		{"fail/sha256-empty", config.Client{SecretHash: "sha256:"}, "malformed sha256"},
		{"fail/argon2i", config.Client{SecretHash: "$argon2i$v=19$m=65536,t=3,p=2$" + salt + "$" + sum}, "argon2id"},
		{"fail/argon2id-old-version", config.Client{SecretHash: "$argon2id$v=16$m=65536,t=3,p=2$" + salt + "$" + sum}, "argon2id"},
		{"fail/argon2id-too-few-parts", config.Client{SecretHash: "$argon2id$v=19$m=65536,t=3,p=2$" + salt}, "argon2id"},
		{"fail/argon2id-missing-param", config.Client{SecretHash: argon("m=65536,t=3", salt, sum)}, "m, t and p"},
		{"fail/argon2id-zero-memory", config.Client{SecretHash: argon("m=0,t=3,p=2", salt, sum)}, "m, t and p"},
		{"fail/argon2id-unknown-param", config.Client{SecretHash: argon("m=65536,t=3,p=2,x=1", salt, sum)}, "unknown parameter"},
		{"fail/argon2id-param-not-a-number", config.Client{SecretHash: argon("m=lots,t=3,p=2", salt, sum)}, "argon2id parameter"},
		{"fail/argon2id-parallelism-too-large", config.Client{SecretHash: argon("m=65536,t=3,p=256", salt, sum)}, "parallelism"},
		{"fail/argon2id-bad-salt", config.Client{SecretHash: argon("m=65536,t=3,p=2", "!!!", sum)}, "salt"},
		{"fail/argon2id-bad-hash", config.Client{SecretHash: argon("m=65536,t=3,p=2", salt, "!!!")}, "malformed hash"},
		{"fail/argon2id-short-hash", config.Client{SecretHash: argon("m=65536,t=3,p=2", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 8)))}, "malformed hash"},
		{"fail/not-a-hash", config.Client{SecretHash: "plain-text"}, "argon2id"},
		{"fail/private-key-in-jwks-file", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT,
			JWKSFile: jwksFile(t, jose.JSONWebKey{Key: priv, KeyID: "k", Algorithm: string(jose.ES256), Use: "sig"})}, "private key"},
		{"fail/private-key-among-public-keys-in-jwks-file", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT,
			JWKSFile: jwksFile(t, publicJWK(newKey(t), "a"), jose.JSONWebKey{Key: priv, KeyID: "b", Algorithm: string(jose.ES256)})}, "private key"},
		{"fail/symmetric-key-in-jwks-file", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT,
			JWKSFile: jwksFile(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h", Algorithm: string(jose.HS256)})}, "jwks_file"},
		{"fail/jwks-file-missing", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: filepath.Join(t.TempDir(), "absent.jwks")}, "jwks_file"},
		{"fail/jwks-file-not-json", config.Client{AuthMethod: oauth.AuthPrivateKeyJWT, JWKSFile: notJSON}, "jwks_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.ID = "c"
			if c.AuthMethod == "" {
				c.AuthMethod = oauth.AuthClientSecretBasic
			}
			cfgs := []config.Client{{ID: "first", Secret: "s", AuthMethod: oauth.AuthClientSecretBasic}, c}
			_, err := NewRegistry(cfgs, issuer, tokenURL, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewRegistry: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewRegistry accepted %+v", c)
			}
			if !strings.Contains(err.Error(), "clients[1].") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to name clients[1] and say %q", err, tt.want)
			}
		})
	}
}

// TestHashArgon2id: the helper's output is a hash NewRegistry accepts and that
// verifies only its secret.
func TestHashArgon2id(t *testing.T) {
	h := HashArgon2id("s", []byte("0123456789abcdef"))
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("HashArgon2id = %q", h)
	}
	parsed, err := parseArgon2id(h)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.matches("s") || parsed.matches("t") {
		t.Fatal("the parsed hash does not tell its secret from another")
	}
}

// TestImports enforces doc.go: package client does not import net/http.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) < 3 {
		t.Fatalf("suspiciously few imports: %v", pkg.Imports)
	}
	for _, imp := range pkg.Imports {
		if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
			t.Errorf("package client imports %s", imp)
		}
	}
}
