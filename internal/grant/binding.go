package grant

import (
	"fmt"

	"github.com/deputy-auth/deputy/oauth"
)

// accessTokenType is the token_type of an access token bound to b: DPoP for a DPoP key
// (RFC 9449 §5), Bearer otherwise — also for a certificate-bound token, which is
// presented as a bearer token over the mutual-TLS connection (RFC 8705 §3).
func accessTokenType(b *oauth.Confirmation) string {
	if b != nil && b.JKT != "" {
		return oauth.TokenTypeDPoP
	}
	return oauth.TokenTypeBearer
}

// provesKey refuses a request that carries no DPoP proof of the key whose
// thumbprint is jkt ("" asks nothing): what is bound to a key is redeemed only by
// its holder (RFC 9449 §5 refresh tokens, §10 dpop_jkt codes). It is invalid_grant:
// the grant presented is not this client's to use without that key.
func provesKey(req *Request, jkt, what string) error {
	switch {
	case jkt == "":
		return nil
	case req.Binding == nil || req.Binding.JKT == "":
		return oauth.InvalidGrant(what+" is bound to a DPoP key; send a DPoP proof of it",
			fmt.Errorf("%s bound to jkt %s, no DPoP proof", what, jkt))
	case req.Binding.JKT != jkt:
		return oauth.InvalidGrant(what+" is bound to another DPoP key",
			fmt.Errorf("%s bound to jkt %s, proof of %s", what, jkt, req.Binding.JKT))
	}
	return nil
}

// refreshJKT is the DPoP key a new refresh token of c is bound to: a public
// client's is bound to the key of its proof (RFC 9449 §5), a confidential
// client's is not (it authenticates when it refreshes).
func refreshJKT(c interface{ Public() bool }, b *oauth.Confirmation) string {
	if b != nil && c.Public() {
		return b.JKT
	}
	return ""
}

// unboundRefresh tells whether a refresh token of c, bound to the DPoP key jkt ("" =
// unbound), would lose the binding b of the access token beside it: a public
// client's refresh token must be bound to the key its tokens are (RFC 8705 §4, RFC
// 9449 §5), since no client authentication keeps it from whoever copies it, and
// deputy binds refresh tokens to DPoP keys only. A public client whose request is
// bound by its TLS client certificate gets no refresh token then; it signs in
// again. A confidential client's refresh token is bound by its authentication
// (RFC 8705 §7.1).
func unboundRefresh(c interface{ Public() bool }, b *oauth.Confirmation, jkt string) bool {
	return c.Public() && b.Bound() && jkt == ""
}
