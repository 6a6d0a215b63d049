package oauth

// Grant types (RFC 6749 §4, RFC 8693 §2.1).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantJWTBearer is RFC 7523 §2.1's grant, which deputy answers only as
	// Microsoft Entra's on-behalf-of flow (requested_token_use=on_behalf_of).
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// TokenType is a token type identifier URI (RFC 8693 §3).
type TokenType string

// Token type identifiers (RFC 8693 §3).
const (
	TokenTypeAccessToken  TokenType = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken TokenType = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      TokenType = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT          TokenType = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeSAML1        TokenType = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2        TokenType = "urn:ietf:params:oauth:token-type:saml2"
	// TokenTypeTxnToken is a transaction token (draft-ietf-oauth-transaction-tokens).
	TokenTypeTxnToken TokenType = "urn:ietf:params:oauth:token-type:txn_token"
)

// ShortName returns the last segment of a token type URI ("access_token"), the form
// used in configuration. Unknown types return "".
func (t TokenType) ShortName() string {
	switch t {
	case TokenTypeAccessToken:
		return "access_token"
	case TokenTypeRefreshToken:
		return "refresh_token"
	case TokenTypeIDToken:
		return "id_token"
	case TokenTypeJWT:
		return "jwt"
	case TokenTypeSAML1:
		return "saml1"
	case TokenTypeSAML2:
		return "saml2"
	case TokenTypeTxnToken:
		return "txn_token"
	}
	return ""
}

// TokenTypeFromShort maps a configuration short name ("jwt") to its URI; ok is false
// for unknown names.
func TokenTypeFromShort(name string) (TokenType, bool) {
	for _, t := range []TokenType{TokenTypeAccessToken, TokenTypeRefreshToken, TokenTypeIDToken, TokenTypeJWT, TokenTypeSAML1, TokenTypeSAML2, TokenTypeTxnToken} {
		if t.ShortName() == name {
			return t, true
		}
	}
	return "", false
}

// Client authentication methods (RFC 7591 §2, OIDC Core §9).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
	AuthNone              = "none"
	// RFC 8705 §2.1 and §2.2: mutual-TLS client authentication.
	AuthTLSClient           = "tls_client_auth"
	AuthSelfSignedTLSClient = "self_signed_tls_client_auth"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Token type values of the token_type response parameter (RFC 6749 §7.1,
// RFC 8693 §2.2.1).
const (
	TokenTypeBearer = "Bearer"
	// TokenTypeDPoP is the token_type of a DPoP-bound access token (RFC 9449 §5).
	TokenTypeDPoP = "DPoP"
	TokenTypeNA   = "N_A"
)

// JWT "typ" header values.
const (
	JWTTypeAccessToken = "at+jwt" // RFC 9068 §2.1
	JWTTypeJWT         = "JWT"
	JWTTypeTxnToken    = "txntoken+jwt" // draft-ietf-oauth-transaction-tokens
)

// TxnTokenHeader is the HTTP header a transaction token travels in between the
// services of one trust domain (draft-ietf-oauth-transaction-tokens).
const TxnTokenHeader = "Txn-Token"

// Confirmation is the "cnf" claim of a sender-constrained token (RFC 7800 §3.1): the
// key its holder must prove possession of to use it. JKT is the RFC 7638 SHA-256
// thumbprint of a DPoP key (RFC 9449 §6.1), X5TS256 the SHA-256 thumbprint of a TLS
// client certificate (RFC 8705 §3.1), both base64url without padding. A token
// carries one of the two.
type Confirmation struct {
	JKT     string `json:"jkt,omitempty"`
	X5TS256 string `json:"x5t#S256,omitempty"`
}

// Bound reports whether c names a key (a nil or empty cnf binds nothing).
func (c *Confirmation) Bound() bool { return c != nil && (c.JKT != "" || c.X5TS256 != "") }

// Actor is the value of the "act" and "may_act" claims (RFC 8693 §4.1, §4.4): the
// identity of an acting party and, nested, the party that acted before it. The
// outermost Actor is the current actor.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Actor   *Actor `json:"act,omitempty"`
}

// Depth returns the number of actors in the chain starting at a; a nil chain has
// depth 0.
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Actor {
		n++
	}
	return n
}

// Chain lists the actors' subjects from the current (outermost) actor inwards.
func (a *Actor) Chain() []string {
	var out []string
	for ; a != nil; a = a.Actor {
		out = append(out, a.Subject)
	}
	return out
}

// TokenResponse is the successful token endpoint response (RFC 6749 §5.1,
// RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string    `json:"access_token"`
	IssuedTokenType TokenType `json:"issued_token_type,omitempty"`
	TokenType       string    `json:"token_type"`
	ExpiresIn       int64     `json:"expires_in,omitempty"`
	// ExtExpiresIn is Microsoft Entra's ext_expires_in, sent in answers to the
	// on-behalf-of grant only (equal to ExpiresIn).
	ExtExpiresIn int64  `json:"ext_expires_in,omitempty"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// IntrospectionResponse is the token introspection response (RFC 7662 §2.2). An
// inactive token is exactly {"active":false}.
type IntrospectionResponse struct {
	Active    bool          `json:"active"`
	Scope     string        `json:"scope,omitempty"`
	ClientID  string        `json:"client_id,omitempty"`
	TokenType string        `json:"token_type,omitempty"`
	Exp       int64         `json:"exp,omitempty"`
	Iat       int64         `json:"iat,omitempty"`
	Nbf       int64         `json:"nbf,omitempty"`
	Sub       string        `json:"sub,omitempty"`
	Aud       []string      `json:"aud,omitempty"`
	Iss       string        `json:"iss,omitempty"`
	Jti       string        `json:"jti,omitempty"`
	Act       *Actor        `json:"act,omitempty"`
	MayAct    *Actor        `json:"may_act,omitempty"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
}
