package grant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/oauth"
)

// OnBehalfOf is Microsoft Entra's on-behalf-of flow (README "On-behalf-of
// (Microsoft Entra's flow)"): the jwt-bearer grant of RFC 7523 §2.1 with
// requested_token_use=on_behalf_of, as MSAL's acquireTokenOnBehalfOf sends it.
// It is a front door to the token exchange, not a second one: the assertion is
// the subject token, the audience of its scope values the target, and Exchange
// verifies, decides (the same policies), mints and describes it. Only the
// parameters and the answer are Entra's.
type OnBehalfOf struct {
	Exchange *TokenExchange
}

// Permits allows what the token exchange allows: confidential clients that some
// policy names.
func (g *OnBehalfOf) Permits(c *client.Client) bool { return g.Exchange.Permits(c) }

// requestedTokenUseOBO is the one requested_token_use deputy answers.
const requestedTokenUseOBO = "on_behalf_of"

// Handle reads the on-behalf-of parameters, exchanges the assertion and answers
// as Entra does. Its audit records, allow and deny, carry "grant": "obo".
func (g *OnBehalfOf) Handle(ctx context.Context, req *Request, c *client.Client, ev *store.AuditEvent) (*Issued, error) {
	ev.Detail = oboDetail(ev.Detail)
	p, err := g.parse(req.Form)
	if err != nil {
		return nil, err
	}
	issued, err := g.Exchange.exchange(ctx, req, c, ev, p)
	// The exchange writes its own Detail (an impersonation names the exchange's
	// grant_type): the record says which door the request came in by.
	ev.Detail = oboDetail(ev.Detail)
	if err != nil {
		return nil, oboError(err, p.audiences[0])
	}
	for _, e := range issued.Events {
		e.Detail = oboDetail(e.Detail)
	}
	r := &issued.Response
	aud := p.audiences[0]
	scopes := strings.Fields(r.Scope)
	for i, s := range scopes {
		scopes[i] = aud + "/" + s
	}
	r.Scope = strings.Join(scopes, " ")
	r.ExtExpiresIn = r.ExpiresIn
	r.IssuedTokenType = ""
	return issued, nil
}

// parse reads the request's parameters into the exchange's: the assertion is
// the subject token, of type access_token when deputy issued it (its iss, read
// unverified, is deputy's, or it has none to read) and jwt otherwise (a trusted
// issuer's); the one audience of scope is the target, its scopes the requested
// ones (none for <audience>/.default). Parameters MSAL adds (client_info,
// x-client-*, claims) are ignored.
func (g *OnBehalfOf) parse(form map[string][]string) (*exchangeParams, error) {
	use, err := optional(form, "requested_token_use")
	if err != nil {
		return nil, err
	}
	switch use {
	case "":
		return nil, oauth.InvalidRequest("missing parameter requested_token_use (on_behalf_of)", nil)
	case requestedTokenUseOBO:
	default:
		return nil, oauth.InvalidRequest(fmt.Sprintf("requested_token_use %.64q is not supported; this server answers on_behalf_of only", use), nil)
	}
	p := &exchangeParams{requested: oauth.TokenTypeAccessToken, onBehalfOf: true}
	if p.subjectToken, err = single(form, "assertion"); err != nil {
		return nil, err
	}
	scope, err := single(form, "scope")
	if err != nil {
		return nil, err
	}
	aud, scopes, err := ParseOBOScope(scope)
	if err != nil {
		return nil, err
	}
	p.audiences, p.scopes = []string{aud}, scopes
	p.subjectType = oauth.TokenTypeJWT
	if iss := subject.UnverifiedIssuer(p.subjectToken); iss == "" || iss == g.Exchange.Tokens.Issuer() {
		p.subjectType = oauth.TokenTypeAccessToken
	}
	return p, nil
}

// ParseOBOScope reads the scope parameter of an on-behalf-of request: values
// <audience>/<scope>, split at the last "/" (an audience may be a URI such as
// api://ledger), all of one audience; <audience>/.default asks for every scope
// the policy allows there (nil scopes). The OpenID Connect scopes openid, profile
// and offline_access, which MSAL adds to every request, are ignored. Anything
// else is invalid_scope (RFC 6749 §5.2): no audience, two audiences, .default
// mixed with named scopes, a value that is not <audience>/<scope>.
func ParseOBOScope(scope string) (audience string, scopes []string, err error) {
	all := false
	seen := map[string]struct{}{}
	for _, v := range strings.Fields(scope) {
		switch v {
		case "openid", "profile", "offline_access":
			continue
		}
		i := strings.LastIndexByte(v, '/')
		if i <= 0 || i == len(v)-1 {
			return "", nil, oauth.InvalidScope(fmt.Sprintf("scope value %.128q is not <audience>/<scope>", v), nil)
		}
		aud, s := v[:i], v[i+1:]
		if audience != "" && aud != audience {
			return "", nil, oauth.InvalidScope(fmt.Sprintf("scope names two audiences, %.128q and %.128q; ask for one audience per request", audience, aud), nil)
		}
		audience = aud
		if s == ".default" {
			all = true
		} else if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			scopes = append(scopes, s)
		}
	}
	if audience == "" {
		return "", nil, oauth.InvalidScope("scope names no audience: send <audience>/.default or <audience>/<scope> values", nil)
	}
	if all && len(scopes) > 0 {
		return "", nil, oauth.InvalidScope("scope mixes <audience>/.default with named scopes; send one or the other", nil)
	}
	return audience, scopes, nil
}

// oboError is the on-behalf-of answer to an exchange of an assertion for
// audience refused with err, in RFC 6749 §5.2's terms, as Entra answers: what
// made the assertion unacceptable (invalid_request from its verification or from
// the subject checks of the decision — addressed to another client, expired, a
// foreign issuer, the wrong kind of token, no policy accepting it) is
// invalid_grant, a target no policy allows is invalid_scope (the target comes
// from scope). What the request itself lacks stays invalid_request: a proof of
// possession (exchange.CheckBinding: a policy's require_binding, or a
// sender-constrained assertion), an access token no policy issues
// (exchange.CheckTokenType). An issuer whose keys cannot be had now stays
// temporarily_unavailable. Descriptions speak of what the request sent: the
// assertion, <audience>/<scope> values. A *exchange.Denial is kept, its Err
// replaced, so that its audit record still says what each policy made of the
// request.
func oboError(err error, audience string) error {
	oe := oauth.AsError(err)
	var den *exchange.Denial
	isDenial := errors.As(err, &den)
	var check exchange.Check
	if isDenial {
		check = den.Check()
	}
	var mapped *oauth.Error
	switch {
	case oe.Code == oauth.CodeInvalidRequest && check == exchange.CheckBinding:
		mapped = oauth.InvalidRequest(assertionWords.Replace(oe.Description), oe.Cause)
	case oe.Code == oauth.CodeInvalidRequest && check == exchange.CheckTokenType:
		// The request asked for no token type: on-behalf-of always asks for an
		// access token.
		mapped = oauth.InvalidRequest("the policy for this audience issues no access tokens", oe.Cause)
	case oe.Code == oauth.CodeInvalidRequest:
		mapped = oauth.InvalidGrant(assertionWords.Replace(oe.Description), oe.Cause)
	case oe.Code == oauth.CodeInvalidTarget:
		mapped = oauth.InvalidScope(oe.Description, oe.Cause)
	case oe.Code == oauth.CodeInvalidScope && isDenial && den.Scope != "":
		mapped = oauth.InvalidScope(fmt.Sprintf("scope %q is beyond what may be granted", audience+"/"+den.Scope), oe.Cause)
	case oe.Code == oauth.CodeTemporarilyUnavail:
		mapped = oauth.TemporarilyUnavailable(assertionWords.Replace(oe.Description), oe.Cause)
	default:
		return err
	}
	if isDenial {
		den.Err = mapped
		return err
	}
	return mapped
}

// assertionWords names the subject token as the on-behalf-of request calls it
// (an assertion, whose type it does not declare: deputy verifies its own as an
// access token).
var assertionWords = strings.NewReplacer(
	"not of the declared subject_token_type", "not an access token",
	"subject_token_type", "token type",
	"subject_token", "assertion", "subject token", "assertion")

// Keys of an on-behalf-of record's Detail (README "On-behalf-of (Microsoft
// Entra's flow)").
const (
	detailGrant = "grant"
	grantOBO    = "obo"
)

// oboDetail is the event Detail JSON object detail with grant_type the
// jwt-bearer grant and "grant": "obo".
func oboDetail(detail string) string {
	m := map[string]json.RawMessage{}
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &m); err != nil {
			m = map[string]json.RawMessage{}
		}
	}
	m["grant_type"], _ = json.Marshal(oauth.GrantJWTBearer)
	m[detailGrant], _ = json.Marshal(grantOBO)
	b, _ := json.Marshal(m)
	return string(b)
}
