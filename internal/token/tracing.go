package token

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/oauth"
)

// tracer makes the signing spans (README "Operating deputy › Tracing"), children
// of the token request's span.
var tracer = otel.Tracer("github.com/deputy-auth/deputy/internal/token")

// spanSign is the span of one token's signing; its attributes are the JWT typ
// header and the signing algorithm, never a claim.
const spanSign = "token.sign"

var (
	attrJWTType   = attribute.Key("deputy.token.jwt_type")
	attrAlgorithm = attribute.Key("deputy.token.algorithm")
)

// MintContext is Mint within a token.sign span, a child of ctx's span.
func (s *Service) MintContext(ctx context.Context, typ string, c *Claims) (string, error) {
	_, span := tracer.Start(ctx, spanSign)
	defer span.End()
	raw, err := s.Mint(typ, c)
	if span.IsRecording() {
		span.SetAttributes(attrJWTType.String(typ), attrAlgorithm.String(string(s.keys.Active().Algorithm)))
		signFailed(span, err)
	}
	return raw, err
}

// MintIDTokenContext is MintIDToken within a token.sign span, a child of ctx's
// span.
func (s *Service) MintIDTokenContext(ctx context.Context, alg string, c *IDClaims) (string, error) {
	_, span := tracer.Start(ctx, spanSign)
	defer span.End()
	raw, err := s.MintIDToken(alg, c)
	if span.IsRecording() {
		span.SetAttributes(attrJWTType.String(oauth.JWTTypeJWT), attrAlgorithm.String(string(s.idTokenAlg(alg))))
		signFailed(span, err)
	}
	return raw, err
}

func signFailed(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "signing failed")
	}
}
