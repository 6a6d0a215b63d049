package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// introspector asks deputy whether a token is still active (RFC 7662).
type introspector struct {
	url      func(ctx context.Context, now time.Time) (string, error)
	client   *http.Client
	clientID string
	secret   string
}

// check posts raw to the introspection endpoint. An inactive token is invalid; a
// failure to get an answer is ErrUnavailable, never a pass.
func (in *introspector) check(ctx context.Context, raw string, now time.Time) error {
	u, err := in.url(ctx, now)
	if err != nil {
		return unavailable("deputy's introspection endpoint is unknown", err)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return unavailable("deputy's introspection endpoint is unknown", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret first.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	b, _, err := do(in.client, req)
	if err != nil {
		return unavailable("deputy's introspection endpoint cannot be used", err)
	}
	// RFC 7662 §2.2: active is REQUIRED; an answer without it is no answer.
	var resp struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return unavailable("deputy's introspection endpoint cannot be used", fmt.Errorf("introspection response: %v", err))
	}
	if resp.Active == nil {
		return unavailable("deputy's introspection endpoint cannot be used", errors.New("introspection response: no active member"))
	}
	if !*resp.Active {
		return invalidToken("token is revoked or inactive", nil)
	}
	return nil
}
