package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/store"
)

// Algorithms deputy signs with.
var Algorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// Key is a loaded signing key.
type Key struct {
	ID        string
	Algorithm jose.SignatureAlgorithm
	Private   crypto.Signer
	ActiveAt  time.Time
	RetiredAt time.Time
}

// Public returns the key's public JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"}
}

// snapshot is an immutable view of the key set at one moment.
type snapshot struct {
	// signing holds the keys that sign from their ActiveAt, latest ActiveAt first;
	// the first already active signs, so a rotation takes effect at its time
	// without waiting for a reload.
	signing []signingKey
	byID    map[string]*Key
	algs    []jose.SignatureAlgorithm
	jwks    []byte
}

type signingKey struct {
	key     *Key
	signers map[string]jose.Signer // by JWT typ header
}

// signingTypes are the JWS "typ" headers deputy signs with: RFC 9068 access
// tokens, plain JWTs (exchange outputs, ID tokens), and the opaque state deputy
// hands a browser to bring back (StateType), which no token verifier accepts.
var signingTypes = []string{"at+jwt", "JWT", StateType}

// StateType is the typ of state deputy signs for itself (internal/token).
const StateType = "deputy-state+jwt"

// Set holds deputy's keys in memory. Reads are lock-free; Reload swaps a new
// snapshot in. Safe for concurrent use.
type Set struct {
	store     store.Keys
	algorithm jose.SignatureAlgorithm
	retire    time.Duration
	now       func() time.Time

	mu   sync.Mutex // serialises Reload / Rotate
	snap atomic.Pointer[snapshot]
	// lastMiss is when LookupFresh last reloaded for an unknown kid (unix nanos).
	lastMiss atomic.Int64
}

// MissReloadInterval is how often at most LookupFresh reads the store for a kid
// it does not know.
const MissReloadInterval = time.Second

// LookupFresh is Lookup, except that a kid this node does not know makes it read
// the keys from the store again (at most once per MissReloadInterval, whoever
// asks) before giving up: another node may have created a key an instant ago —
// two nodes starting at once on an empty database, or a rotation whose
// notification has not arrived yet. Random kids cost one read a second at most.
func (s *Set) LookupFresh(kid string) (*Key, bool) {
	if k, ok := s.Lookup(kid); ok {
		return k, true
	}
	now := time.Now().UnixNano()
	last := s.lastMiss.Load()
	if now-last < int64(MissReloadInterval) || !s.lastMiss.CompareAndSwap(last, now) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Reload(ctx); err != nil {
		return nil, false
	}
	return s.Lookup(kid)
}

// Options configure a Set.
type Options struct {
	Algorithm   string        // algorithm of keys this node generates
	RetireAfter time.Duration // how long a replaced key stays published
	Now         func() time.Time
}

// Open loads the keys from st, generating and storing a first key when none is
// usable with the configured algorithm.
func Open(ctx context.Context, st store.Keys, opts Options) (*Set, error) {
	alg := jose.SignatureAlgorithm(opts.Algorithm)
	if !supported(alg) {
		return nil, fmt.Errorf("keys: unsupported signing algorithm %q", opts.Algorithm)
	}
	s := &Set{store: st, algorithm: alg, retire: opts.RetireAfter, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	if s.Active() == nil || s.newest().Algorithm != alg {
		if _, err := s.Rotate(ctx, 0); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func supported(alg jose.SignatureAlgorithm) bool {
	for _, a := range Algorithms {
		if string(alg) == a {
			return true
		}
	}
	return false
}

// Reload reads the keys from the store and replaces the in-memory view. A node calls
// it periodically so that rotations made elsewhere take effect.
func (s *Set) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reload(ctx)
}

func (s *Set) reload(ctx context.Context) error {
	stored, err := s.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list: %w", err)
	}
	now := s.now()
	snap := &snapshot{byID: map[string]*Key{}}
	var published []jose.JSONWebKey
	algSeen := map[jose.SignatureAlgorithm]bool{}
	for _, sk := range stored {
		k, err := decode(sk)
		if err != nil {
			return err
		}
		if !k.RetiredAt.IsZero() && !now.Before(k.RetiredAt) {
			continue // withdrawn: tokens it signed are no longer accepted
		}
		snap.byID[k.ID] = k
		published = append(published, k.Public())
		if !algSeen[k.Algorithm] {
			algSeen[k.Algorithm] = true
			snap.algs = append(snap.algs, k.Algorithm)
		}
		sk := signingKey{key: k, signers: map[string]jose.Signer{}}
		for _, typ := range signingTypes {
			sig, err := jose.NewSigner(jose.SigningKey{
				Algorithm: k.Algorithm,
				Key:       jose.JSONWebKey{Key: k.Private, KeyID: k.ID},
			}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
			if err != nil {
				return fmt.Errorf("keys: signer: %w", err)
			}
			sk.signers[typ] = sig
		}
		snap.signing = append(snap.signing, sk)
	}
	// The key activated last signs; a replaced key keeps verifying until it retires
	// (its RetiredAt is after its successor's ActiveAt).
	sort.SliceStable(snap.signing, func(i, j int) bool {
		return snap.signing[i].key.ActiveAt.After(snap.signing[j].key.ActiveAt)
	})
	snap.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: published})
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	return nil
}

// Rotate generates a new key that is published at once and signs from now+publishFor.
// Every older key that is still active is scheduled to retire RetireAfter after the
// new key activates, so tokens it signed keep verifying until they expire.
func (s *Set) Rotate(ctx context.Context, publishFor time.Duration) (*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC().Truncate(time.Microsecond)
	sk, err := Generate(s.algorithm, now, now.Add(publishFor))
	if err != nil {
		return nil, err
	}
	if err := s.store.InsertKey(ctx, sk); err != nil {
		return nil, fmt.Errorf("keys: store: %w", err)
	}
	if old := s.snap.Load(); old != nil {
		retireAt := now.Add(publishFor).Add(s.retire)
		for _, k := range old.byID {
			if k.RetiredAt.IsZero() {
				at := retireAt
				if k.ActiveAt.After(now) {
					at = now // a key still waiting to sign never signed: withdraw it now
				}
				if err := s.store.RetireKey(ctx, k.ID, at); err != nil {
					return nil, fmt.Errorf("keys: retire %s: %w", k.ID, err)
				}
			}
		}
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	k, err := decode(sk)
	return k, err
}

// Generate creates a new key of the given algorithm, in its stored form.
func Generate(alg jose.SignatureAlgorithm, created, active time.Time) (store.Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return store.Key{}, fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("keys: generate: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(alg), Use: "sig"}
	pub := jwk.Public()
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return store.Key{}, err
	}
	// kid: RFC 7638 thumbprint, so it is stable and names the key itself.
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(thumb[:16])
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return store.Key{}, err
	}
	return store.Key{ID: jwk.KeyID, Algorithm: string(alg), Private: raw, CreatedAt: created, ActiveAt: active}, nil
}

func decode(sk store.Key) (*Key, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(sk.Private); err != nil {
		return nil, fmt.Errorf("keys: decode %s: %w", sk.ID, err)
	}
	priv, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, fmt.Errorf("keys: key %s is not a private signing key", sk.ID)
	}
	return &Key{ID: sk.ID, Algorithm: jose.SignatureAlgorithm(sk.Algorithm), Private: priv, ActiveAt: sk.ActiveAt, RetiredAt: sk.RetiredAt}, nil
}

// ErrNoActiveKey means no key can sign now.
var ErrNoActiveKey = errors.New("keys: no active signing key")

// Sign signs payload as a compact JWS with the active key and the given typ header
// ("at+jwt" or "JWT").
func (s *Set) Sign(typ string, payload []byte) (string, error) {
	sk := s.snap.Load().current(s.now())
	if sk == nil {
		return "", ErrNoActiveKey
	}
	sig := sk.signers[typ]
	if sig == nil {
		return "", fmt.Errorf("keys: no signer for typ %q", typ)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// current is the key that signs at now, or nil.
func (snap *snapshot) current(now time.Time) *signingKey {
	for i := range snap.signing {
		if !now.Before(snap.signing[i].key.ActiveAt) {
			return &snap.signing[i]
		}
	}
	return nil
}

// Active returns the key that signs now (nil if none).
func (s *Set) Active() *Key {
	if sk := s.snap.Load().current(s.now()); sk != nil {
		return sk.key
	}
	return nil
}

// newest returns the key activated last or to be activated next (nil if none).
func (s *Set) newest() *Key {
	if snap := s.snap.Load(); len(snap.signing) > 0 {
		return snap.signing[0].key
	}
	return nil
}

// Lookup returns the published key with that kid.
func (s *Set) Lookup(kid string) (*Key, bool) {
	k, ok := s.snap.Load().byID[kid]
	return k, ok
}

// Algorithms returns the algorithms of the published keys: the allow-list for
// verifying deputy's own tokens.
func (s *Set) Algorithms() []jose.SignatureAlgorithm { return s.snap.Load().algs }

// JWKS returns the JSON Web Key Set document (RFC 7517 §5) of the published keys.
func (s *Set) JWKS() []byte { return s.snap.Load().jwks }
