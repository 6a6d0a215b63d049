package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KEK is a key-encryption key: it encrypts the private signing keys deputy stores
// (AES-256-GCM, crypto/aes and crypto/cipher of the standard library), with the
// key id as additional data, so that a sealed key cannot be moved to another row.
type KEK struct {
	aead cipher.AEAD
}

// KEKSize is the size of a key-encryption key: 256 bits.
const KEKSize = 32

// sealedPrefix starts a stored private key that a KEK encrypted; the nonce and
// the ciphertext with its tag follow. A plaintext JWK starts with '{'.
var sealedPrefix = []byte("deputy-kek:A256GCM:")

// NewKEK returns the KEK of a 32-byte key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("a key-encryption key is %d bytes (256 bits), not %d", KEKSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KEK{aead: aead}, nil
}

// ParseKEK reads a key-encryption key written as text: 32 bytes in base64
// (standard or URL alphabet, padded or not; `openssl rand -base64 32`) or in hex
// (64 digits; `openssl rand -hex 32`). Surrounding white space is ignored. The
// errors never contain the text.
func ParseKEK(text []byte) (*KEK, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return nil, errors.New("the key-encryption key is empty")
	}
	if len(s) == 2*KEKSize {
		if b, err := hex.DecodeString(s); err == nil {
			return NewKEK(b)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KEKSize {
			return NewKEK(b)
		}
	}
	return nil, fmt.Errorf("the key-encryption key is not %d bytes in base64 or hex (make one with `openssl rand -base64 32`)", KEKSize)
}

// LoadKEK reads a key-encryption key from a file (as ParseKEK reads it). The file
// must be readable by its owner only: a key others can read protects nothing, so
// a file with any group or other permission bit is refused.
func LoadKEK(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible to group or others (mode %#o); make it readable by its owner only: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, err := ParseKEK(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// sealed reports whether a stored private key is encrypted.
func sealed(private []byte) bool { return bytes.HasPrefix(private, sealedPrefix) }

// seal encrypts the private JWK of key kid.
func (k *KEK) seal(kid string, private []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte{}, sealedPrefix...), nonce...)
	return k.aead.Seal(out, nonce, private, []byte(kid)), nil
}

// errWrongKEK is the cause of a sealed key the configured KEK cannot open.
var errWrongKEK = errors.New("it cannot be decrypted with the configured key-encryption key (signing.key_encryption_key_file or signing.key_encryption_key): a different key encrypted it, or the stored key was altered")

// open decrypts a sealed private key of key kid.
func (k *KEK) open(kid string, stored []byte) ([]byte, error) {
	rest := stored[len(sealedPrefix):]
	ns := k.aead.NonceSize()
	if len(rest) < ns+k.aead.Overhead() {
		return nil, errWrongKEK
	}
	plain, err := k.aead.Open(nil, rest[:ns], rest[ns:], []byte(kid))
	if err != nil {
		return nil, errWrongKEK
	}
	return plain, nil
}
