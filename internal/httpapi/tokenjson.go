package httpapi

import (
	"net/http"
	"strconv"

	"github.com/deputy-auth/deputy/internal/jsonx"
	"github.com/deputy-auth/deputy/oauth"
)

// appendTokenResponse appends r as encoding/json writes an oauth.TokenResponse
// (same members, order, omitempty and escaping; TestAppendTokenResponse), without
// reflection: it is written on every token the endpoint issues.
func appendTokenResponse(b []byte, r *oauth.TokenResponse) []byte {
	b = append(b, `{"access_token":`...)
	b = jsonx.AppendString(b, r.AccessToken)
	if r.IssuedTokenType != "" {
		b = append(b, `,"issued_token_type":`...)
		b = jsonx.AppendString(b, string(r.IssuedTokenType))
	}
	b = append(b, `,"token_type":`...)
	b = jsonx.AppendString(b, r.TokenType)
	if r.ExpiresIn != 0 {
		b = append(b, `,"expires_in":`...)
		b = strconv.AppendInt(b, r.ExpiresIn, 10)
	}
	if r.ExtExpiresIn != 0 {
		b = append(b, `,"ext_expires_in":`...)
		b = strconv.AppendInt(b, r.ExtExpiresIn, 10)
	}
	b = append(b, `,"scope":`...)
	b = jsonx.AppendString(b, r.Scope)
	if r.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = jsonx.AppendString(b, r.RefreshToken)
	}
	if r.IDToken != "" {
		b = append(b, `,"id_token":`...)
		b = jsonx.AppendString(b, r.IDToken)
	}
	return append(b, '}')
}

// writeTokenResponse writes r with writeJSON's headers.
func writeTokenResponse(w http.ResponseWriter, r *oauth.TokenResponse) error {
	b := make([]byte, 0, 128+len(r.AccessToken)+len(r.RefreshToken)+len(r.IDToken)+len(r.Scope))
	return writeJSONBytes(w, appendTokenResponse(b, r))
}
