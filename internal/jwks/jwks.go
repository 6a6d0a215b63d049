// Package jwks gives deputy's server the key sets of other issuers: from a file read
// once, or fetched over HTTP(S), cached and refreshed. The parsing and the cache are
// the SDK's (sdk/jwk), so that the server and the SDK read and fetch key sets alike;
// this package adds reading a file and the server's bounds.
//
// Only public signing keys are kept: a set carrying a private or symmetric key is
// refused whole, keys for encryption (use "enc") and keys of unknown types are
// skipped. It owns the HTTP fetching so that internal/subject need not import
// net/http (design §8); it imports nothing of deputy's but sdk/jwk.
package jwks

import (
	"context"
	"fmt"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/sdk/jwk"
	"github.com/deputy-auth/deputy/sdk/jwkfetch"
)

// Errors of Lookup. They are causes; callers turn them into protocol errors.
var (
	// ErrUnknownKey: the set has no key with the token's kid.
	ErrUnknownKey = jwkfetch.ErrUnknownKey
	// ErrUnavailable: no valid key set is cached and fetching one failed.
	ErrUnavailable = jwkfetch.ErrUnavailable
)

// Key is a public key of a set.
type Key = jose.JSONWebKey

// Keys is a parsed, immutable key set.
type Keys struct {
	set *jwk.Set
}

// Len is the number of usable keys.
func (k *Keys) Len() int { return k.set.Len() }

// Lookup returns the key with this kid, or ErrUnknownKey; ctx and now are unused (a
// file's keys do not expire), so that Keys and Remote serve alike.
func (k *Keys) Lookup(_ context.Context, kid string, _ time.Time) (Key, error) {
	if key, ok := k.Find(kid); ok {
		return key, nil
	}
	return Key{}, fmt.Errorf("%w (kid %q)", ErrUnknownKey, kid)
}

// Find returns the key with this kid. A token without a kid matches only when the
// set holds exactly one key (there is then no doubt which key was meant).
func (k *Keys) Find(kid string) (jose.JSONWebKey, bool) { return k.set.Find(kid) }

// Parse reads a JWKS document (see jwk.Parse). It keeps public signing keys only,
// fails on private or symmetric key material, on two keys with one kid, and on a
// set without any usable key.
func Parse(b []byte) (*Keys, error) {
	s, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return &Keys{set: s}, nil
}

// ReadFile parses the JWKS in a file.
func ReadFile(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	ks, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}
