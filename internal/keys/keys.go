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
	"slices"
	"sort"
	"strings"
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
	CreatedAt time.Time
	ActiveAt  time.Time
	RetiredAt time.Time
}

// Public returns the key's public JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"}
}

// signsAt reports whether k may sign at now: activated, and not withdrawn.
func (k *Key) signsAt(now time.Time) bool {
	return !now.Before(k.ActiveAt) && (k.RetiredAt.IsZero() || now.Before(k.RetiredAt))
}

// snapshot is an immutable view of the key set at one moment.
type snapshot struct {
	// signing holds, per algorithm, the keys that sign from their ActiveAt, the one
	// created last first: of those already active, the newest signs, so a rotation
	// takes effect at its time without waiting for a reload, and a key an older
	// rotation left pending never takes over from a newer one.
	signing map[jose.SignatureAlgorithm][]signingKey
	byID    map[string]*Key
	algs    []jose.SignatureAlgorithm
	jwks    []byte
}

// signingTypes are the JWS "typ" headers deputy signs with: RFC 9068 access
// tokens, plain JWTs (exchange outputs, ID tokens), transaction tokens
// (draft-ietf-oauth-transaction-tokens), and the opaque state deputy
// hands a browser to bring back (StateType), which no token verifier accepts.
var signingTypes = []string{"at+jwt", "JWT", "txntoken+jwt", StateType}

// StateType is the typ of state deputy signs for itself (internal/token).
const StateType = "deputy-state+jwt"

// Set holds deputy's keys in memory: one key that signs per algorithm the node
// signs with, and every published key. Reads are lock-free; Reload swaps a new
// snapshot in. Safe for concurrent use.
type Set struct {
	store store.Keys
	// algorithms are the algorithms this node signs with, the default (Sign's)
	// first.
	algorithms []jose.SignatureAlgorithm
	retire     time.Duration
	now        func() time.Time
	kek        *KEK // nil: private keys are stored as they are

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
// The read runs within ctx — the request's deadline, at most missReloadWait — and
// a caller whose ctx has ended leaves the next read to another: it does not use
// up the interval.
func (s *Set) LookupFresh(ctx context.Context, kid string) (*Key, bool) {
	if k, ok := s.Lookup(kid); ok {
		return k, true
	}
	if ctx.Err() != nil {
		return nil, false
	}
	now := time.Now().UnixNano()
	last := s.lastMiss.Load()
	if now-last < int64(MissReloadInterval) || !s.lastMiss.CompareAndSwap(last, now) {
		return nil, false
	}
	rctx, cancel := context.WithTimeout(ctx, missReloadWait)
	defer cancel()
	if err := s.Reload(rctx); err != nil {
		if ctx.Err() != nil {
			s.lastMiss.CompareAndSwap(now, last) // the caller left: not a read that counts
		}
		return nil, false
	}
	return s.Lookup(kid)
}

// missReloadWait bounds LookupFresh's read when the caller's context allows more.
const missReloadWait = 2 * time.Second

// Options configure a Set.
type Options struct {
	// Algorithm is the default algorithm, Sign's: access tokens, exchanged JWTs
	// and deputy's own state.
	Algorithm string
	// MoreAlgorithms are further algorithms the node signs with through SignWith
	// (ID tokens: OpenID Connect Core §15.1 makes RS256 mandatory, and a client may
	// ask for another). Duplicates of Algorithm are ignored.
	MoreAlgorithms []string
	RetireAfter    time.Duration // how long a replaced key stays published
	Now            func() time.Time
	// KEK, when set, encrypts the private keys in the store: new keys are stored
	// encrypted, and Open encrypts the keys stored in the clear. Without it, an
	// encrypted key cannot be loaded.
	KEK *KEK
}

// Open loads the keys from st and, for every algorithm of opts without a key that
// can sign now, generates and stores one that signs at once. Keys of algorithms
// the node no longer signs with stay published until the next Rotate. With a KEK,
// keys stored in the clear are encrypted first; a key the KEK cannot decrypt (or
// an encrypted key without one) is an error naming the key.
func Open(ctx context.Context, st store.Keys, opts Options) (*Set, error) {
	s := &Set{store: st, retire: opts.RetireAfter, now: opts.Now, kek: opts.KEK}
	for _, a := range append([]string{opts.Algorithm}, opts.MoreAlgorithms...) {
		alg := jose.SignatureAlgorithm(a)
		if !supported(alg) {
			return nil, fmt.Errorf("keys: unsupported signing algorithm %q", a)
		}
		if !slices.Contains(s.algorithms, alg) {
			s.algorithms = append(s.algorithms, alg)
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sealStored(ctx); err != nil {
		return nil, err
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var added bool
	for _, alg := range s.algorithms {
		if s.snap.Load().current(alg, now) != nil {
			continue
		}
		sk, err := Generate(alg, now, now)
		if err != nil {
			return nil, err
		}
		if err := s.insert(ctx, sk); err != nil {
			return nil, err
		}
		added = true
	}
	if added {
		if err := s.reload(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// sealStored encrypts with the KEK every stored key still in the clear, retired
// ones too (their private keys are as secret), and then has the store erase what
// the clear keys left in its files (store.Keys.EraseFreed). A key another process
// changed meanwhile is left to it; reload then checks that every key opens.
func (s *Set) sealStored(ctx context.Context) error {
	if s.kek == nil {
		return nil
	}
	stored, err := s.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list: %w", err)
	}
	var replaced bool
	for _, sk := range stored {
		if sealed(sk.Private) {
			continue
		}
		enc, err := s.kek.seal(sk.ID, sk.Private)
		if err != nil {
			return fmt.Errorf("keys: encrypt key %s: %w", sk.ID, err)
		}
		if err := s.store.ReplaceKeyPrivate(ctx, sk.ID, sk.Private, enc); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("keys: encrypt key %s: %w", sk.ID, err)
		}
		replaced = true
	}
	if replaced {
		if err := s.store.EraseFreed(ctx); err != nil {
			return fmt.Errorf("keys: erase the keys stored in the clear: %w", err)
		}
	}
	return nil
}

// insert stores a new key, encrypted when there is a KEK.
func (s *Set) insert(ctx context.Context, sk store.Key) error {
	sk, err := s.storedForm(sk)
	if err != nil {
		return err
	}
	if err := s.store.InsertKey(ctx, sk); err != nil {
		return fmt.Errorf("keys: store: %w", err)
	}
	return nil
}

// storedForm is sk as it is stored: its private key encrypted when there is a KEK.
func (s *Set) storedForm(sk store.Key) (store.Key, error) {
	if s.kek != nil {
		enc, err := s.kek.seal(sk.ID, sk.Private)
		if err != nil {
			return store.Key{}, fmt.Errorf("keys: encrypt key %s: %w", sk.ID, err)
		}
		sk.Private = enc
	}
	return sk, nil
}

func supported(alg jose.SignatureAlgorithm) bool {
	return slices.Contains(Algorithms, string(alg))
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
	snap := &snapshot{byID: map[string]*Key{}, signing: map[jose.SignatureAlgorithm][]signingKey{}}
	var published []jose.JSONWebKey
	for _, sk := range stored {
		if !sk.RetiredAt.IsZero() && !now.Before(sk.RetiredAt) {
			continue // withdrawn: tokens it signed are no longer accepted
		}
		k, err := s.decode(sk)
		if err != nil {
			return err
		}
		snap.byID[k.ID] = k
		published = append(published, k.Public())
		if !slices.Contains(snap.algs, k.Algorithm) {
			snap.algs = append(snap.algs, k.Algorithm)
		}
		sk, err := newSigningKey(k, signingTypes)
		if err != nil {
			return err
		}
		snap.signing[k.Algorithm] = append(snap.signing[k.Algorithm], sk)
	}
	for _, list := range snap.signing {
		sort.SliceStable(list, func(i, j int) bool { return newer(list[i].key, list[j].key) })
	}
	snap.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: published})
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	return nil
}

// newer orders keys by rotation: the one created later, or of two created at
// once the one that activates later, or the larger kid.
func newer(a, b *Key) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	if !a.ActiveAt.Equal(b.ActiveAt) {
		return a.ActiveAt.After(b.ActiveAt)
	}
	return a.ID > b.ID
}

// Rotate generates a new key for every algorithm the node signs with, published at
// once and signing from now+publishFor. Every other key not yet retired — an
// active key, a key an earlier rotation left waiting (nodes that loaded it sign
// with it from its time, whatever happened since), a key of an algorithm no
// longer used — is scheduled to retire RetireAfter after the new keys activate,
// so tokens it signed keep verifying until they expire.
func (s *Set) Rotate(ctx context.Context, publishFor time.Duration) ([]*Key, error) {
	return s.RotateRecorded(ctx, publishFor, nil, nil)
}

// RotateRecorded is Rotate, recording it: the new keys, the retirement of the
// others and the audit events record returns for the new keys (key.rotated,
// ready to store: see audit.Prepare), sealed with seal, are stored in one
// transaction (store.Keys.RotateKeys) — all of them or none, also across a
// crash. record may be nil: nothing is recorded.
func (s *Set) RotateRecorded(ctx context.Context, publishFor time.Duration, record func(made []*Key) []*store.AuditEvent, seal store.SealFunc) ([]*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC().Truncate(time.Microsecond)
	stored, err := s.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	r := store.KeyRotation{RetireAt: now.Add(publishFor).Add(s.retire)}
	var out []*Key
	for _, alg := range s.algorithms {
		sk, err := Generate(alg, now, now.Add(publishFor))
		if err != nil {
			return nil, err
		}
		k, err := s.decode(sk)
		if err != nil {
			return nil, err
		}
		if sk, err = s.storedForm(sk); err != nil {
			return nil, err
		}
		r.Add = append(r.Add, sk)
		out = append(out, k)
	}
	for _, k := range stored {
		if k.RetiredAt.IsZero() {
			r.Retire = append(r.Retire, k.ID)
		}
	}
	var events []*store.AuditEvent
	if record != nil {
		events = record(out)
	}
	if err := s.store.RotateKeys(ctx, r, events, seal); err != nil {
		return nil, fmt.Errorf("keys: rotate: %w", err)
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return out, nil
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

// decode loads a stored key, decrypting it with the KEK when it is encrypted.
func (s *Set) decode(sk store.Key) (*Key, error) {
	private := sk.Private
	if sealed(private) {
		if s.kek == nil {
			return nil, fmt.Errorf("keys: key %s is encrypted in the store, and no key-encryption key is configured (signing.key_encryption_key_file or signing.key_encryption_key)", sk.ID)
		}
		var err error
		if private, err = s.kek.open(sk.ID, private); err != nil {
			return nil, fmt.Errorf("keys: key %s: %w", sk.ID, err)
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(private); err != nil {
		return nil, fmt.Errorf("keys: decode %s: %w", sk.ID, err)
	}
	priv, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, fmt.Errorf("keys: key %s is not a private signing key", sk.ID)
	}
	return &Key{ID: sk.ID, Algorithm: jose.SignatureAlgorithm(sk.Algorithm), Private: priv,
		CreatedAt: sk.CreatedAt, ActiveAt: sk.ActiveAt, RetiredAt: sk.RetiredAt}, nil
}

// ErrNoActiveKey means no key can sign now.
var ErrNoActiveKey = errors.New("keys: no active signing key")

// Sign signs payload as a compact JWS with the active key of the default
// algorithm and the given typ header ("at+jwt" or "JWT"). It does not keep
// payload: the caller may reuse it once Sign returns.
func (s *Set) Sign(typ string, payload []byte) (string, error) {
	return s.SignWith(s.algorithms[0], typ, payload)
}

// SignWith is Sign with the active key of algorithm alg, one of the algorithms
// the set was opened with.
func (s *Set) SignWith(alg jose.SignatureAlgorithm, typ string, payload []byte) (string, error) {
	sk := s.snap.Load().current(alg, s.now())
	if sk == nil {
		if !slices.Contains(s.algorithms, alg) {
			return "", fmt.Errorf("keys: this node does not sign with %q", alg)
		}
		return "", ErrNoActiveKey
	}
	return sk.sign(typ, payload)
}

// current is the key of algorithm alg that signs at now, or nil: the newest
// rotation's key among those active and not withdrawn.
func (snap *snapshot) current(alg jose.SignatureAlgorithm, now time.Time) *signingKey {
	list := snap.signing[alg]
	for i := range list {
		if list[i].key.signsAt(now) {
			return &list[i]
		}
	}
	return nil
}

// Active returns the key of the default algorithm that signs now (nil if none).
func (s *Set) Active() *Key { return s.ActiveFor(s.algorithms[0]) }

// ActiveFor returns the key of algorithm alg that signs now (nil if none).
func (s *Set) ActiveFor(alg jose.SignatureAlgorithm) *Key {
	if sk := s.snap.Load().current(alg, s.now()); sk != nil {
		return sk.key
	}
	return nil
}

// CanSign reports whether every algorithm this node signs with has a key that
// signs now — access tokens and state (the default), and ID tokens in each
// algorithm a client may ask for — else an error wrapping ErrNoActiveKey naming
// those that have none: a node that cannot sign one of them is not ready.
func (s *Set) CanSign() error {
	snap, now := s.snap.Load(), s.now()
	var missing []string
	for _, alg := range s.algorithms {
		if snap.current(alg, now) == nil {
			missing = append(missing, string(alg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w for %s", ErrNoActiveKey, strings.Join(missing, ", "))
	}
	return nil
}

// SigningAlgorithms returns the algorithms this node signs with, the default
// first.
func (s *Set) SigningAlgorithms() []jose.SignatureAlgorithm { return slices.Clone(s.algorithms) }

// Lookup returns the published key with that kid. A key whose retirement time
// has passed since the last reload is not returned: it is withdrawn, even before
// the JWKS document drops it.
func (s *Set) Lookup(kid string) (*Key, bool) {
	k, ok := s.snap.Load().byID[kid]
	if !ok || (!k.RetiredAt.IsZero() && !s.now().Before(k.RetiredAt)) {
		return nil, false
	}
	return k, true
}

// Algorithms returns the algorithms of the published keys: the allow-list for
// verifying deputy's own tokens.
func (s *Set) Algorithms() []jose.SignatureAlgorithm { return s.snap.Load().algs }

// JWKS returns the JSON Web Key Set document (RFC 7517 §5) of the published keys.
func (s *Set) JWKS() []byte { return s.snap.Load().jwks }
