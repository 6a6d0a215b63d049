package report

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// maxToken bounds the size of a token whose payload is decoded.
const maxToken = 64 << 10

// unsafeJTI returns the jti claim (RFC 7519 §4.1.7) of raw, a JWS compact
// serialisation (RFC 7515 §7.1), by decoding its payload WITHOUT verifying the
// signature. It is only for tokens that were verified already.
func unsafeJTI(raw string) (string, error) {
	if len(raw) > maxToken {
		return "", errors.New("token too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWS compact serialisation")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", err
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	if claims.JTI == "" {
		return "", errors.New("no jti claim")
	}
	return claims.JTI, nil
}
