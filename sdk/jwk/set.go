package jwk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Set is a parsed, immutable key set of public signing keys.
type Set struct {
	byKID map[string]jose.JSONWebKey
	all   []jose.JSONWebKey
}

// Len is the number of usable keys.
func (s *Set) Len() int { return len(s.all) }

// Keys returns the usable keys, in the order of the document.
func (s *Set) Keys() []jose.JSONWebKey { return append([]jose.JSONWebKey(nil), s.all...) }

// Find returns the key with this kid. A token without a kid matches only when the
// set holds exactly one key (there is then no doubt which key was meant).
func (s *Set) Find(kid string) (jose.JSONWebKey, bool) {
	if kid == "" {
		if len(s.all) == 1 {
			return s.all[0], true
		}
		return jose.JSONWebKey{}, false
	}
	k, ok := s.byKID[kid]
	return k, ok
}

// Parse reads a JWKS document (RFC 7517 §5). It keeps the public signing keys: keys
// for encryption (use other than "sig") and keys of types go-jose does not know are
// skipped. It refuses the whole set when it carries private or symmetric key
// material, an invalid key, or one kid twice, and a set without any usable key.
func Parse(b []byte) (*Set, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	s := &Set{byKID: map[string]jose.JSONWebKey{}}
	for i, raw := range doc.Keys {
		var probe struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			D   string `json:"d"`
			K   string `json:"k"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("keys[%d]: %v", i, err)
		}
		if probe.D != "" || probe.K != "" || strings.EqualFold(probe.Kty, "oct") {
			return nil, fmt.Errorf("keys[%d]: private or symmetric key material in a public key set", i)
		}
		if probe.Use != "" && probe.Use != "sig" {
			continue // an encryption key
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // a key type go-jose does not know: not one a token can use
		}
		if k.Use != "" && k.Use != "sig" {
			// go-jose reads member names exactly, encoding/json (the probe) in any
			// case: {"use":"enc","USE":"sig"} must not pass as a signing key.
			continue
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, fmt.Errorf("keys[%d]: not a valid public key", i)
		}
		if _, dup := s.byKID[k.KeyID]; dup {
			return nil, fmt.Errorf("keys[%d]: kid %q appears twice", i, k.KeyID)
		}
		s.byKID[k.KeyID] = k
		s.all = append(s.all, k)
	}
	if len(s.all) == 0 {
		return nil, errors.New("no usable public signing key")
	}
	return s, nil
}
