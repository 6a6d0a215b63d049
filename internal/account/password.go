package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// The argon2id parameters of the hashes [HashPassword] makes (see the package
// documentation for why).
const (
	HashMemoryKiB = 64 * 1024 // m: 64 MiB
	HashTime      = 3         // t: passes over the memory
	HashThreads   = 2         // p: lanes
	SaltBytes     = 16
	KeyBytes      = 32
)

// Bounds on the parameters [VerifyPassword] accepts, so that one stored hash string
// cannot make a single verification take the machine's memory or minutes of CPU.
const (
	maxMemoryKiB = 1024 * 1024 // 1 GiB
	maxTime      = 64
	minSalt      = 8
	maxSalt      = 64
	minKey       = 16
	maxKey       = 64
)

// ErrMalformedHash means a password hash is not an argon2id PHC string deputy
// accepts.
var ErrMalformedHash = errors.New(`account: malformed password hash: want "$argon2id$v=19$m=…,t=…,p=…$<salt>$<key>" (base64 without padding)`)

// params are argon2id cost parameters.
type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

func defaultParams() params {
	return params{memory: HashMemoryKiB, time: HashTime, threads: HashThreads}
}

// phc is a parsed argon2id hash.
type phc struct {
	params
	salt []byte
	key  []byte
}

// HashPassword returns the argon2id hash of password with a fresh random salt, in
// the PHC string format, with the parameters HashMemoryKiB, HashTime, HashThreads.
func HashPassword(password string) (string, error) {
	return hashWith(password, defaultParams())
}

func hashWith(password string, p params) (string, error) {
	salt := make([]byte, SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("account: salt: %w", err)
	}
	h := phc{params: p, salt: salt}
	h.key = h.derive(password, KeyBytes)
	return h.String(), nil
}

// VerifyPassword reports whether password matches hash, an argon2id PHC string. The
// comparison is constant-time. A hash that is not one, or whose parameters are out of
// bounds, is an error wrapping [ErrMalformedHash]. It runs one argon2id computation
// unbounded: servers verify through a [Directory], which bounds how many run at once.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	return h.matches(password), nil
}

func (h *phc) derive(password string, n int) []byte {
	return argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(n))
}

func (h *phc) matches(password string) bool {
	return subtle.ConstantTimeCompare(h.derive(password, len(h.key)), h.key) == 1
}

// String formats the hash as a PHC string.
func (h *phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePHC parses "$argon2id$v=19$m=…,t=…,p=…$<salt>$<key>": exactly that version,
// the parameters in that order (as the PHC format writes them, and as config
// validation expects), in decimal, salt and key in strict base64 without padding.
func parsePHC(s string) (*phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return nil, ErrMalformedHash
	}
	kvs := strings.Split(parts[3], ",")
	if len(kvs) != 3 {
		return nil, fmt.Errorf("%w: parameters are not m=…,t=…,p=…", ErrMalformedHash)
	}
	var n [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kvs[i], name+"=")
		if !ok {
			return nil, fmt.Errorf("%w: parameters are not m=…,t=…,p=…", ErrMalformedHash)
		}
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %s: not a number", ErrMalformedHash, name)
		}
		n[i] = x
	}
	m, t, p := n[0], n[1], n[2]
	switch {
	case p < 1 || p > 255:
		return nil, fmt.Errorf("%w: p=%d is not within 1…255", ErrMalformedHash, p)
	case t < 1 || t > maxTime:
		return nil, fmt.Errorf("%w: t=%d is not within 1…%d", ErrMalformedHash, t, maxTime)
	case m < 8*p || m > maxMemoryKiB:
		return nil, fmt.Errorf("%w: m=%d is not within 8·p…%d KiB", ErrMalformedHash, m, maxMemoryKiB)
	}
	h := &phc{params: params{memory: uint32(m), time: uint32(t), threads: uint8(p)}}
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < minSalt || len(h.salt) > maxSalt {
		return nil, fmt.Errorf("%w: salt is not %d…%d bytes of base64", ErrMalformedHash, minSalt, maxSalt)
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(h.key) < minKey || len(h.key) > maxKey {
		return nil, fmt.Errorf("%w: key is not %d…%d bytes of base64", ErrMalformedHash, minKey, maxKey)
	}
	return h, nil
}
