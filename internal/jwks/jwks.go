// Package jwks parses JSON Web Key Sets (RFC 7517 §5) of other issuers and keeps
// them: from a file read once, or fetched over HTTP(S), cached and refreshed.
//
// Only public signing keys are kept: a set carrying a private or symmetric key is
// refused whole, keys for encryption (use "enc") and keys of unknown types are
// skipped. It owns the HTTP fetching so that internal/subject need not import
// net/http (design §8); it imports nothing of deputy's.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Errors of Lookup. They are causes; callers turn them into protocol errors.
var (
	// ErrUnknownKey: the set has no key with the token's kid.
	ErrUnknownKey = errors.New("no key with this kid in the issuer's JWKS")
	// ErrUnavailable: no valid key set is cached and fetching one failed.
	ErrUnavailable = errors.New("the issuer's JWKS is unavailable")
)

// Key is a public key of a set.
type Key = jose.JSONWebKey

// Keys is a parsed, immutable key set.
type Keys struct {
	byKID map[string]jose.JSONWebKey
	all   []jose.JSONWebKey
}

// Len is the number of usable keys.
func (k *Keys) Len() int { return len(k.all) }

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
func (k *Keys) Find(kid string) (jose.JSONWebKey, bool) {
	if kid == "" {
		if len(k.all) == 1 {
			return k.all[0], true
		}
		return jose.JSONWebKey{}, false
	}
	key, ok := k.byKID[kid]
	return key, ok
}

// Parse reads a JWKS document. It keeps public signing keys only, fails on private
// or symmetric key material, on two keys with one kid, and on a set without any
// usable key.
func Parse(b []byte) (*Keys, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON Web Key Set: %v", err)
	}
	ks := &Keys{byKID: map[string]jose.JSONWebKey{}}
	for i, raw := range doc.Keys {
		var probe struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			D   string `json:"d"`
			K   string `json:"k"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("jwks: keys[%d]: %v", i, err)
		}
		if probe.D != "" || probe.K != "" || probe.Kty == "oct" {
			return nil, fmt.Errorf("jwks: keys[%d]: private or symmetric key material in a public key set", i)
		}
		if probe.Use != "" && probe.Use != "sig" {
			continue // an encryption key
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // a key type go-jose does not know; not one we can verify with
		}
		if k.Use != "" && k.Use != "sig" {
			// go-jose reads member names exactly, encoding/json (the probe) in any
			// case: {"use":"enc","USE":"sig"} must not pass as a signing key.
			continue
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, fmt.Errorf("jwks: keys[%d]: not a valid public key", i)
		}
		if _, dup := ks.byKID[k.KeyID]; dup {
			return nil, fmt.Errorf("jwks: keys[%d]: kid %q appears twice", i, k.KeyID)
		}
		ks.byKID[k.KeyID] = k
		ks.all = append(ks.all, k)
	}
	if len(ks.all) == 0 {
		return nil, errors.New("jwks: no usable public signing key")
	}
	return ks, nil
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
