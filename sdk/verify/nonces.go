package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNonceLifetime is NewNonces's default: how long a nonce is accepted.
const DefaultNonceLifetime = 5 * time.Minute

// Nonces is a stateless NonceSource (RFC 9449 §9): a nonce is the time it was
// made and an HMAC-SHA256 of it under a secret key, so every replica of a service
// that shares the key accepts the nonces of the others, and none stores anything.
type Nonces struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// NewNonces returns a Nonces whose nonces are accepted for lifetime (zero means
// DefaultNonceLifetime) after they are made. key must be at least 32 bytes of
// secret randomness, the same on every replica.
func NewNonces(key []byte, lifetime time.Duration) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("verify: nonce key must be at least 32 bytes")
	}
	if lifetime < 0 {
		return nil, errors.New("verify: nonce lifetime must not be negative")
	}
	if lifetime == 0 {
		lifetime = DefaultNonceLifetime
	}
	return &Nonces{key: append([]byte(nil), key...), lifetime: lifetime, now: time.Now}, nil
}

// Nonce returns a nonce made now.
func (n *Nonces) Nonce() (string, error) {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(n.now().UnixMilli()))
	return base64.RawURLEncoding.EncodeToString(append(ts[:], n.mac(ts[:])...)), nil
}

// Check accepts a nonce this key made within the lifetime (and not in the future,
// beyond DPoPSkew).
func (n *Nonces) Check(nonce string) error {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 8+sha256.Size {
		return errors.New("not a nonce of this service")
	}
	if !hmac.Equal(b[8:], n.mac(b[:8])) {
		return errors.New("not a nonce of this service")
	}
	made := time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8])))
	now := n.now()
	if made.After(now.Add(DPoPSkew)) || now.Sub(made) > n.lifetime {
		return errors.New("stale nonce")
	}
	return nil
}

func (n *Nonces) mac(ts []byte) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("deputy sdk/verify DPoP nonce\x00"))
	m.Write(ts)
	return m.Sum(nil)
}
