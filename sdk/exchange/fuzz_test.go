package exchange

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// FuzzParseTokenResponse: whatever the token endpoint answers, the parser returns a
// token or an error, never both and never a panic; a token comes only from a 200
// with an access_token, and an *oauth.Error only from another status with a code.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"a","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":300,"scope":"ledger:read"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"a","token_type":"Bearer","expires_in":9223372036854775807}`))
	f.Add(200, "application/json", []byte(`{"access_token":"a","token_type":"Bearer","expires_in":-5}`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_target","error_description":"no"}`))
	f.Add(401, "application/json; charset=utf-8", []byte(`{"error":"invalid_client"}`))
	f.Add(502, "text/html", []byte(`<html></html>`))
	f.Add(200, "", []byte(``))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		sent := time.Unix(1_000_000, 0)
		tok, err := parseTokenResponse(status, contentType, body, sent)
		if (tok == nil) == (err == nil) {
			t.Fatalf("token %v and error %v", tok, err)
		}
		if tok != nil {
			if status != http.StatusOK || tok.AccessToken == "" || tok.TokenType == "" {
				t.Fatalf("token %+v from status %d", tok, status)
			}
			if !tok.ExpiresAt.IsZero() && !tok.ExpiresAt.After(sent) {
				t.Fatalf("ExpiresAt %v not after the request", tok.ExpiresAt)
			}
		}
		var oe *oauth.Error
		if errors.As(err, &oe) && (status == http.StatusOK || oe.Code == "") {
			t.Fatalf("oauth error %v from status %d", oe, status)
		}
	})
}
