package grant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// MaxRequestContextBytes bounds the request_context parameter of a transaction
// token request, as sent (README "Transaction tokens"): it becomes the tctx
// claim of a token that travels in a header of every call of the transaction.
const MaxRequestContextBytes = 4096

// paramRequestContext is the transaction token request's context
// (draft-ietf-oauth-transaction-tokens): a JSON object, form-encoded as
// is, that becomes the token's tctx.
const paramRequestContext = "request_context"

// MaxRequestContextDepth bounds the nesting of request_context: the object
// itself is depth 1. Parsers with a recursion limit (Python's json among them)
// must read every tctx a service receives.
const MaxRequestContextDepth = 32

// parseRequestContext checks a request_context value: at most
// MaxRequestContextBytes, UTF-8, a JSON object with nothing after it, no member
// name twice in any object (parsers disagree on which one counts), nested at
// most MaxRequestContextDepth deep, and every number within float64's range
// (deputy's verifier and the SDK read tctx as map[string]any). It returns the
// object compacted; nil for "".
func parseRequestContext(v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > MaxRequestContextBytes {
		return nil, oauth.InvalidRequest(fmt.Sprintf("request_context is larger than %d bytes", MaxRequestContextBytes),
			fmt.Errorf("request_context of %d bytes", len(v)))
	}
	if !utf8.ValidString(v) {
		// JSON text is UTF-8 (RFC 8259 §8.1); the tctx claim and the audit record
		// carry it as sent.
		return nil, oauth.InvalidRequest("request_context is not a JSON object", errors.New("request_context is not UTF-8"))
	}
	if err := walkRequestContext(v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(v)); err != nil {
		return nil, oauth.InvalidRequest("request_context is not a JSON object", err)
	}
	return b.Bytes(), nil
}

// walkRequestContext reads v token by token: one JSON object and nothing
// after it, no duplicate member name, no nesting beyond
// MaxRequestContextDepth, no number out of float64's range.
func walkRequestContext(v string) error {
	notObject := func(err error) error { return oauth.InvalidRequest("request_context is not a JSON object", err) }
	type frame struct {
		names   map[string]bool // nil for an array
		wantKey bool            // in an object, the next token is a member name or '}'
	}
	var stack []*frame
	dec := json.NewDecoder(strings.NewReader(v))
	for started := false; !started || len(stack) > 0; started = true {
		tok, err := dec.Token()
		var num *json.UnmarshalTypeError
		switch {
		case errors.As(err, &num):
			return oauth.InvalidRequest("request_context has a number out of range", err)
		case err == io.EOF:
			return notObject(io.ErrUnexpectedEOF)
		case err != nil:
			return notObject(err)
		}
		if !started {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return notObject(fmt.Errorf("request_context is a JSON %T, not an object", tok))
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.wantKey {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return oauth.InvalidRequest("request_context has a member name twice", fmt.Errorf("member %q twice in one object", name))
				}
				top.names[name], top.wantKey = true, false
				continue
			}
			// '}': the decoder allows nothing else here.
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == MaxRequestContextDepth {
				return oauth.InvalidRequest(fmt.Sprintf("request_context is nested more than %d deep", MaxRequestContextDepth), nil)
			}
			f := &frame{}
			if tok == json.Delim('{') {
				f.names, f.wantKey = map[string]bool{}, true
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value is complete: in an object, a member name comes next.
		if len(stack) > 0 && stack[len(stack)-1].names != nil {
			stack[len(stack)-1].wantKey = true
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return notObject(errors.New("request_context has more after the object"))
	}
	return nil
}

// checkRequestContext applies the rules of request_context to parsed
// parameters: it is sent only with requested_token_type txn_token, and not
// with a replacement, which keeps the presented token's tctx: the context of a
// transaction is set once, where it enters the trust domain, and every service
// down the call graph sees the same (draft-ietf-oauth-transaction-tokens).
func checkRequestContext(p *exchangeParams) error {
	if p.requestContext == "" {
		return nil
	}
	if p.requested != oauth.TokenTypeTxnToken {
		return oauth.InvalidRequest("request_context is sent only with requested_token_type "+string(oauth.TokenTypeTxnToken), nil)
	}
	if p.subjectType == oauth.TokenTypeTxnToken {
		return oauth.InvalidRequest("request_context cannot be sent to replace a transaction token, which keeps its tctx", nil)
	}
	var err error
	p.tctx, err = parseRequestContext(p.requestContext)
	return err
}

// mintTxn issues the transaction token of decision d (README "Transaction
// tokens"): aud the trust domain, a fresh txn (or the replaced token's), sub,
// the granted scope, tctx (request_context, or the replaced token's) and rctx
// (req_ip, authn, req_wl). No act, no client_id, and no cnf even when the
// request proved a key: a transaction token is forwarded unchanged from service
// to service within the trust domain, and no service could prove the
// requester's key. It fills the audit event's TokenJTI and Detail and returns
// the token and its expiry.
func (g *TokenExchange) mintTxn(ctx context.Context, req *Request, c *client.Client, d exchange.Decision, tctx json.RawMessage, ev *store.AuditEvent) (string, time.Time, error) {
	claims := &token.TxnClaims{
		IssuedAt: req.Now.Unix(), Expiry: d.ExpiresAt.Unix(), ID: token.NewID(),
		Audience: d.Audiences[0], Subject: d.Subject, Scope: strings.Join(d.Scopes, " "),
		Tctx: tctx,
	}
	if t := d.Txn; t != nil {
		// A replacement keeps txn, tctx and the rctx of the request that entered
		// the trust domain (req_ip, authn); req_wl names the workload that asked
		// for this token.
		claims.Txn, claims.Tctx = t.ID, t.Context
		claims.Rctx = maps.Clone(t.RequestContext)
		if claims.Rctx == nil {
			claims.Rctx = map[string]any{}
		}
	} else {
		claims.Txn = token.NewID()
		claims.Rctx = map[string]any{}
		if req.RemoteAddr != "" {
			claims.Rctx["req_ip"] = req.RemoteAddr
		}
		if a := authn(d.Claims); a != "" {
			claims.Rctx["authn"] = a
		}
	}
	claims.Rctx["req_wl"] = c.ID
	raw, err := g.Tokens.MintTxnContext(ctx, claims)
	if errors.Is(err, token.ErrTooLarge) {
		// Over limits.max_token_bytes, no service of deputy's would accept it.
		return "", time.Time{}, oauth.InvalidRequest("the transaction token would be too large; send a smaller request_context", err)
	}
	if err != nil {
		return "", time.Time{}, oauth.ServerError(err)
	}
	ev.TokenJTI = claims.ID
	ev.Detail = withTxn(ev.Detail, claims)
	return raw, time.Unix(claims.Expiry, 0), nil
}

// authn is rctx.authn: the subject's acr, else its amr values joined by a
// space; "" when it has neither.
func authn(claims map[string]any) string {
	var at token.Claims
	carry(&at, claims)
	if at.ACR != "" {
		return at.ACR
	}
	return strings.Join(at.AMR, " ")
}

// withTxn adds to the event Detail JSON object detail what the audit trail
// records of a transaction token (README "Transaction tokens"): issued_token_type
// txn_token, its txn, tctx (when present) and rctx.
func withTxn(detail string, c *token.TxnClaims) string {
	m := map[string]json.RawMessage{}
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &m); err != nil {
			m = map[string]json.RawMessage{}
		}
	}
	m["issued_token_type"], _ = json.Marshal(oauth.TokenTypeTxnToken.ShortName())
	m["txn"], _ = json.Marshal(c.Txn)
	if len(c.Tctx) > 0 {
		m["tctx"] = c.Tctx
	}
	m["rctx"], _ = json.Marshal(c.Rctx)
	// As the token signs it: tctx as sent, not HTML-escaped.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return strings.TrimSuffix(b.String(), "\n")
}
