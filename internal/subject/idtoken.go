package subject

import (
	"fmt"
	"time"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/oauth"
)

// verifyOwnIDToken checks an ID token deputy issued, presented as a subject token.
func (v *Verifier) verifyOwnIDToken(role, raw string, now time.Time) (exchange.Principal, error) {
	return exchange.Principal{}, oauth.InvalidRequest(role+"_token_type id_token is not accepted yet",
		fmt.Errorf("own ID tokens as %s tokens are not supported yet", role))
}
