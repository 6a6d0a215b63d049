package grant

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/oauth"
)

// Spans of a token request (README "Operating deputy › Tracing"): the grant's
// steps are children of the request's server span (internal/httpapi). Their
// attributes are deputy's own identifiers (client id, grant type, issuer and rule
// names from the configuration) or come from fixed sets (roles, token types,
// decisions, OAuth error codes): never a token, secret, code or assertion.
var tracer = otel.Tracer("github.com/deputy-auth/deputy/internal/grant")

// Span names and attribute keys.
const (
	spanVerifySubject = "subject.verify"
	spanDecide        = "exchange.decide"

	attrClientID  = attribute.Key("deputy.client_id")
	attrGrantType = attribute.Key("deputy.grant_type")
	attrRole      = attribute.Key("deputy.token.role") // subject or actor
	attrTokenType = attribute.Key("deputy.token.type") // short name of the token type URN
	attrIssuer    = attribute.Key("deputy.token.issuer")
	attrDecision  = attribute.Key("deputy.decision") // allow or deny
	attrRule      = attribute.Key("deputy.rule")
	attrMode      = attribute.Key("deputy.exchange.mode")
	attrError     = attribute.Key("oauth.error")
)

// requestAttributes puts the authenticated client and the grant type, when it
// is one deputy supports, on the request's span (the server span): both are
// deputy's own identifiers.
func requestAttributes(ctx context.Context, clientID, grantType string, supported bool) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrClientID.String(clientID))
	if supported {
		span.SetAttributes(attrGrantType.String(grantType))
	}
}

// verifySubject verifies a subject or actor token within a span.
func (g *TokenExchange) verifySubject(ctx context.Context, role, raw string, typ oauth.TokenType, req *Request) (exchange.Principal, error) {
	ctx, span := tracer.Start(ctx, spanVerifySubject)
	defer span.End()
	p, err := g.Subjects.Verify(ctx, role, raw, typ, req.Now)
	if span.IsRecording() {
		span.SetAttributes(attrRole.String(role), attrTokenType.String(typ.ShortName()))
		if err == nil && p.Issuer != "" {
			span.SetAttributes(attrIssuer.String(p.Issuer))
		}
		failed(span, err)
	}
	return p, err
}

// decide applies the exchange rules within a span; internal/exchange is pure
// and makes none itself.
func (g *TokenExchange) decide(ctx context.Context, xreq exchange.Request, req *Request) (exchange.Decision, error) {
	_, span := tracer.Start(ctx, spanDecide)
	defer span.End()
	d, err := g.Exchange.Decide(xreq, req.Now)
	if span.IsRecording() {
		rule := d.Rule
		var den *exchange.Denial
		if errors.As(err, &den) && den.Rule != "" {
			rule = den.Rule
		}
		if rule != "" {
			span.SetAttributes(attrRule.String(rule))
		}
		if err != nil {
			span.SetAttributes(attrDecision.String("deny"))
		} else {
			span.SetAttributes(attrDecision.String("allow"), attrMode.String(string(d.Mode)))
		}
		failed(span, err)
	}
	return d, err
}

// failed marks span as failed with err's OAuth error code, when err is not nil.
func failed(span trace.Span, err error) {
	if err == nil {
		return
	}
	code := string(oauth.AsError(err).Code)
	span.SetAttributes(attrError.String(code))
	span.SetStatus(codes.Error, code)
}
