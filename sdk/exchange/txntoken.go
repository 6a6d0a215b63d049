package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/deputy-auth/deputy/oauth"
)

// TxnRequest is what a transaction token is asked for with
// (draft-ietf-oauth-transaction-tokens; README "Transaction tokens").
type TxnRequest struct {
	// Scopes are the transaction's purpose, narrowed from the subject token's;
	// none asks for every scope deputy's policy allows.
	Scopes []string
	// Context is the transaction's context (the token's tctx claim), sent as the
	// request_context parameter; nil sends none. It must encode as a JSON object.
	Context map[string]any
	// TrustDomain, when set, is sent as the audience; deputy's configured trust
	// domain is the only one it accepts, and the one it uses when none is sent.
	TrustDomain string
}

// TxnToken obtains a transaction token for the transaction that the access token
// subjectToken, which this service received, starts: a token exchange (RFC 8693
// §2.1) with requested_token_type txn_token. The service passes it unchanged in
// the Txn-Token header of every call it makes for the transaction (ForwardTxn),
// and every service of the trust domain verifies it (sdk/verify TxnVerifier).
//
// Each call is one transaction with its own txn: results are not cached, and
// calls are not shared. With Config.DPoPKey the request proves the key, as
// deputy requires when subjectToken is bound, but the transaction token itself
// is never bound (token_type N_A): it travels unchanged through many services.
//
// Errors are those of Exchange.
func (e *Exchanger) TxnToken(ctx context.Context, subjectToken string, r TxnRequest) (*Token, error) {
	if subjectToken == "" {
		return nil, errors.New("exchange: empty subject token")
	}
	form := exchangeForm(subjectToken, r.TrustDomain, normalizeScope(r.Scopes))
	form.Set("requested_token_type", string(oauth.TokenTypeTxnToken))
	if r.Context != nil {
		b, err := json.Marshal(r.Context)
		if err != nil {
			return nil, fmt.Errorf("exchange: transaction context: %w", err)
		}
		form.Set("request_context", string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	tok, err := e.request(ctx, form, false)
	if err != nil {
		return nil, err
	}
	if tok.IssuedTokenType != string(oauth.TokenTypeTxnToken) {
		return nil, fmt.Errorf("exchange: deputy answered a transaction token request with issued_token_type %q", tok.IssuedTokenType)
	}
	return tok, nil
}
