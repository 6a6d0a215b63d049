package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/policy/condition"
	"github.com/deputy-auth/deputy/oauth"
)

// check is one row of the validation table: when bad, the key at path has the
// problem msg.
type check struct {
	bad  bool
	path string
	msg  string
}

// Allowed values, in the order messages list them.
var (
	storageDrivers      = []string{DriverSQLite, DriverPostgres}
	logFormats          = []string{LogFormatText, LogFormatJSON}
	logLevels           = []string{LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError}
	signingAlgorithms   = []string{"ES256", "EdDSA", "RS256", "PS256"}
	issuerAlgorithms    = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	authMethods         = []string{oauth.AuthClientSecretBasic, oauth.AuthClientSecretPost, oauth.AuthPrivateKeyJWT, oauth.AuthNone, oauth.AuthTLSClient, oauth.AuthSelfSignedTLSClient}
	grantTypes          = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials, oauth.GrantTokenExchange, oauth.GrantJWTBearer}
	modes               = []string{ModeDelegation, ModeImpersonation}
	subjectTokenTypes   = []string{"access_token", "jwt", "id_token", "refresh_token", "saml2", TxnTokenType}
	requestedTokenTypes = []string{"access_token", "jwt", "id_token", "refresh_token", TxnTokenType}
	upstreamTypes       = []string{UpstreamOIDC, UpstreamSAML}
	// roles are the values of users[].roles: the one list of them.
	roles = []string{RoleAuditor}
	// reservedClaims are set by deputy on the tokens it issues; users[].claims may
	// not set them.
	reservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "may_act", "client_id", "scope", "cnf", "auth_time", "azp", "nonce", "at_hash", "c_hash", "sid", "acr", "amr", "txn", "tctx", "rctx"}
)

// mappedClaimReserved are the claims of issued tokens that trusted_issuers[].claims
// may not set.
var mappedClaimReserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "scope": true, "act": true, "may_act": true, "cnf": true, "azp": true,
	"nonce": true, "at_hash": true, "sid": true, "": true,
	// The claims of transaction tokens (draft-ietf-oauth-transaction-tokens):
	// no other token of deputy's carries them.
	"txn": true, "tctx": true, "rctx": true,
	// idp says which sign-in a subject comes from; the claims of ID tokens and
	// userinfo are chosen by it ("local": a local account's), so an outside
	// issuer must never set it.
	"idp": true,
}

const (
	// maxTxnTokenTTL bounds txn_tokens.ttl: a transaction token lives as long as
	// the calls of one request, and no service checks its revocation (the SDK
	// verifies it offline; introspection answers inactive), so revoking its
	// subject stops it only when it expires.
	maxTxnTokenTTL    = 10 * time.Minute
	minTxnTokenTTL    = time.Second
	maxDPoPMaxAge     = 10 * time.Minute
	maxAccessTokenTTL = 24 * time.Hour
	maxMaxChain       = 32
)

// Validate checks the configuration (with defaults applied, see [Config.SetDefaults])
// and returns every problem as an [*Error], or nil.
func (c *Config) Validate() error {
	if ps := c.validate(origins{}); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

func (c *Config) validate(o origins) []Problem {
	var checks []check
	checks = append(checks, c.serverChecks()...)
	checks = append(checks, c.audienceChecks()...)
	checks = append(checks, c.clientChecks()...)
	checks = append(checks, c.policyChecks()...)
	checks = append(checks, c.txnChecks()...)
	checks = append(checks, c.issuerChecks()...)
	checks = append(checks, c.userChecks()...)
	checks = append(checks, c.upstreamChecks()...)
	checks = append(checks, c.browserChecks()...)
	checks = append(checks, c.proxyChecks()...)
	checks = append(checks, c.tlsChecks()...)
	checks = append(checks, c.lifecycleChecks()...)
	var ps []Problem
	for _, ch := range checks {
		if ch.bad {
			ps = append(ps, Problem{Where: o.of(ch.path), Path: ch.path, Message: ch.msg})
		}
	}
	return append(ps, c.conditionProblems(o)...)
}

// conditionProblems type-checks every exchange.policies[].condition (design §12),
// each problem at its line and column in the file.
func (c *Config) conditionProblems(o origins) []Problem {
	var ps []Problem
	for i, pol := range c.Exchange.Policies {
		if pol.Condition == "" {
			continue
		}
		path := fmt.Sprintf("exchange.policies[%d].condition", i)
		_, err := condition.Compile(pol.Condition)
		var ce *condition.Error
		switch {
		case errors.As(err, &ce):
			for _, p := range ce.Problems {
				ps = append(ps, Problem{Where: o.within(path, pol.Condition, p.Line, p.Column), Path: path, Message: p.Message})
			}
		case err != nil:
			ps = append(ps, Problem{Where: o.of(path), Path: path, Message: err.Error()})
		}
	}
	return ps
}

func (c *Config) serverChecks() []check {
	iss, issURL := c.Issuer, parseURL(c.Issuer)
	tokens := c.Tokens
	return []check{
		{iss == "" && isHostPort(c.Listen), "issuer", fmt.Sprintf("must be set: the URL clients use; it is derived from listen only when listen names a host, and %q does not", c.Listen)},
		{iss != "" && !isHTTPURL(iss), "issuer", fmt.Sprintf("%q is not an absolute http(s) URL", iss)},
		{isHTTPURL(iss) && strings.HasSuffix(iss, "/"), "issuer", fmt.Sprintf("%q ends with a slash; write it without, as clients compare it exactly", iss)},
		{isHTTPURL(iss) && (issURL.RawQuery != "" || issURL.ForceQuery), "issuer", fmt.Sprintf("%q has a query; an issuer has none (RFC 8414 §2)", iss)},
		{isHTTPURL(iss) && strings.Contains(iss, "#"), "issuer", fmt.Sprintf("%q has a fragment; an issuer has none (RFC 8414 §2)", iss)},
		{isHTTPURL(iss) && issURL.User != nil, "issuer", "has user info; an issuer has none"},
		{!isHostPort(c.Listen), "listen", fmt.Sprintf("%q is not host:port (like 127.0.0.1:8080, or :8080 for every interface)", c.Listen)},
		{c.Metrics.Listen != "" && !isHostPort(c.Metrics.Listen), "metrics.listen", fmt.Sprintf("%q is not host:port (like 127.0.0.1:9090)", c.Metrics.Listen)},
		{c.Metrics.Listen != "" && c.Metrics.Listen == c.Listen, "metrics.listen", "is listen itself; leave it empty to serve /metrics there"},
		{c.Tracing.Endpoint != "" && !isHTTPURL(c.Tracing.Endpoint), "tracing.endpoint", fmt.Sprintf("%q is not an absolute http(s) URL (like http://otel-collector:4318)", c.Tracing.Endpoint)},
		{isHTTPURL(c.Tracing.Endpoint) && parseURL(c.Tracing.Endpoint).User != nil, "tracing.endpoint", "has user info; put credentials in OTEL_EXPORTER_OTLP_HEADERS"},
		{isHTTPURL(c.Tracing.Endpoint) && (strings.ContainsAny(c.Tracing.Endpoint, "?#")), "tracing.endpoint", fmt.Sprintf("%q has a query or fragment; it is a base URL, /v1/traces is appended", c.Tracing.Endpoint)},
		{c.TLS.CertFile != "" && c.TLS.KeyFile == "", "tls.key_file", "must be set with tls.cert_file"},
		{c.TLS.KeyFile != "" && c.TLS.CertFile == "", "tls.cert_file", "must be set with tls.key_file"},
		oneOf("storage.driver", c.Storage.Driver, storageDrivers),
		{c.Storage.DSN == "", "storage.dsn", "must be set: a SQLite file path or a postgres:// URL"},
		positive("storage.timeout", c.Storage.Timeout),
		{c.Storage.Timeout.D() > 0 && c.Storage.Timeout.D() < 100*time.Millisecond, "storage.timeout", fmt.Sprintf("%v is shorter than 100ms: a commit's fsync alone can take that long", c.Storage.Timeout.D())},
		oneOf("signing.algorithm", c.Signing.Algorithm, signingAlgorithms),
		positive("signing.retire_after", c.Signing.RetireAfter),
		oneOf("signing.id_token_algorithm", c.Signing.IDTokenAlgorithm, signingAlgorithms),
		positive("tokens.access_token_ttl", tokens.AccessTokenTTL),
		{tokens.AccessTokenTTL.D() > maxAccessTokenTTL, "tokens.access_token_ttl", fmt.Sprintf("%v is longer than %v; access tokens are meant to be short-lived", tokens.AccessTokenTTL.D(), maxAccessTokenTTL)},
		positive("tokens.refresh_token_ttl", tokens.RefreshTokenTTL),
		positive("tokens.id_token_ttl", tokens.IDTokenTTL),
		positive("tokens.code_ttl", tokens.CodeTTL),
		{tokens.CodeTTL.D() > 10*time.Minute, "tokens.code_ttl", "is longer than 10m; authorization codes must be short-lived (RFC 6749 §4.1.2)"},
		positive("tokens.session_ttl", tokens.SessionTTL),
		{c.Audit.MaxBatch < 1, "audit.max_batch", fmt.Sprintf("%d is not positive", c.Audit.MaxBatch)},
		{c.Limits.MaxBodyBytes < 1, "limits.max_body_bytes", fmt.Sprintf("%d is not positive", c.Limits.MaxBodyBytes)},
		{c.Limits.MaxTokenBytes < 1, "limits.max_token_bytes", fmt.Sprintf("%d is not positive", c.Limits.MaxTokenBytes)},
		{c.Limits.MaxInFlight < 1, "limits.max_in_flight", fmt.Sprintf("%d is not positive", c.Limits.MaxInFlight)},
		{c.Limits.Rate.PerSecond < 1, "limits.rate.per_second", fmt.Sprintf("%d is not positive", c.Limits.Rate.PerSecond)},
		{c.Limits.Rate.Burst < 1, "limits.rate.burst", fmt.Sprintf("%d is not positive", c.Limits.Rate.Burst)},
		{int64(c.Limits.MaxTokenBytes) > c.Limits.MaxBodyBytes && c.Limits.MaxBodyBytes > 0, "limits.max_token_bytes", fmt.Sprintf("%d is more than limits.max_body_bytes (%d), the body that carries the token", c.Limits.MaxTokenBytes, c.Limits.MaxBodyBytes)},
	}
}

func (c *Config) audienceChecks() []check {
	var checks []check
	ids := map[string]int{}
	for i, a := range c.Audiences {
		p := fmt.Sprintf("audiences[%d]", i)
		first, dup := ids[a.ID]
		if !dup {
			ids[a.ID] = i
		}
		checks = append(checks, []check{
			{a.ID == "", p + ".id", "must be set: the aud value of tokens for this service"},
			{hasSpace(a.ID), p + ".id", fmt.Sprintf("%q contains white space", a.ID)},
			{!oauth.SafeText(a.ID), p + ".id", fmt.Sprintf("%q contains control, line-separator or bidi characters", a.ID)},
			{a.ID != "" && dup, p + ".id", fmt.Sprintf("%q is already the id of audiences[%d]", a.ID, first)},
			{a.Client != "" && c.Client(a.Client) == nil, p + ".client", fmt.Sprintf("%q is not the id of a configured client", a.Client)},
		}...)
		checks = append(checks, scopeChecks(p+".scopes", a.Scopes)...)
	}
	return checks
}

func (c *Config) clientChecks() []check {
	var checks []check
	ids := map[string]int{}
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		first, dup := ids[cl.ID]
		if !dup {
			ids[cl.ID] = i
		}
		method := cl.AuthMethod
		hasSecret := cl.Secret != "" || cl.SecretHash != ""
		secretMethod := method == oauth.AuthClientSecretBasic || method == oauth.AuthClientSecretPost
		checks = append(checks, []check{
			{cl.ID == "", p + ".id", "must be set"},
			{hasSpace(cl.ID), p + ".id", fmt.Sprintf("%q contains white space", cl.ID)},
			{!oauth.SafeText(cl.ID), p + ".id", fmt.Sprintf("%q contains control, line-separator or bidi characters (a request naming it would be refused)", cl.ID)},
			{len(cl.ID) > MaxClientIDBytes, p + ".id", fmt.Sprintf("is longer than %d bytes", MaxClientIDBytes)},
			{cl.ID != "" && dup, p + ".id", fmt.Sprintf("%q is already the id of clients[%d]", cl.ID, first)},
			{cl.Secret != "" && cl.SecretHash != "", p + ".secret_hash", "set either secret or secret_hash, not both"},
			{cl.SecretHash != "" && !validArgon2id(cl.SecretHash) && !validSHA256Hash(cl.SecretHash), p + ".secret_hash", `is neither "$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>" (base64 without padding; m at most 1048576 KiB, t at most 64) nor "sha256:" followed by the 64 hex digits of the secret's SHA-256`},
			oneOf(p+".auth_method", method, authMethods),
			{secretMethod && !hasSecret, p + ".secret", fmt.Sprintf("must be set (or secret_hash) for auth_method %s", method)},
			{method == oauth.AuthPrivateKeyJWT && cl.JWKSFile == "", p + ".jwks_file", "must be set for auth_method private_key_jwt: the client's public keys"},
			{method == oauth.AuthPrivateKeyJWT && hasSecret, p + ".secret", "is not used with auth_method private_key_jwt; remove secret and secret_hash"},
			{method == oauth.AuthNone && hasSecret, p + ".secret", "must not be set for auth_method none (a public client); remove secret and secret_hash, or choose another auth_method"},
			{cl.JWKSFile != "" && method != oauth.AuthPrivateKeyJWT && method != oauth.AuthSelfSignedTLSClient && slices.Contains(authMethods, method), p + ".jwks_file", fmt.Sprintf("is only used with auth_method private_key_jwt or self_signed_tls_client_auth, not %s", method)},
			{cl.HasGrantType(oauth.GrantAuthorizationCode) && len(cl.RedirectURIs) == 0, p + ".redirect_uris", "must list at least one URI for grant type authorization_code"},
			{len(cl.MayAct) > 1, p + ".may_act", fmt.Sprintf("lists %d clients; may_act names one party (RFC 8693 §4.4)", len(cl.MayAct))},
			{cl.IDTokenSignedResponseAlg != "" && !slices.Contains(signingAlgorithms, cl.IDTokenSignedResponseAlg), p + ".id_token_signed_response_alg", fmt.Sprintf("%q is not one of %s", cl.IDTokenSignedResponseAlg, strings.Join(signingAlgorithms, ", "))},
		}...)
		checks = append(checks, c.clientTLSChecks(p, cl)...)
		checks = append(checks, listChecks(p+".grant_types", cl.GrantTypes, func(path, g string) []check {
			return []check{
				oneOf(path, g, grantTypes),
				{method == oauth.AuthNone && (g == oauth.GrantTokenExchange || g == oauth.GrantClientCredentials || g == oauth.GrantJWTBearer), path, fmt.Sprintf("%s is for confidential clients, and auth_method is none", g)},
			}
		})...)
		checks = append(checks, listChecks(p+".redirect_uris", cl.RedirectURIs, func(path, u string) []check {
			return []check{
				{!isAbsoluteURI(u), path, fmt.Sprintf("%q is not an absolute URI", u)},
				{strings.Contains(u, "#"), path, fmt.Sprintf("%q has a fragment; a redirect URI has none (RFC 6749 §3.1.2)", u)},
				{scriptScheme(u), path, fmt.Sprintf("%q has a scheme a browser runs or renders in place; a redirect URI must leave the page", u)},
			}
		})...)
		checks = append(checks, []check{
			{len(cl.Name) > maxDisplayName, p + ".name", fmt.Sprintf("is %d bytes long; at most %d", len(cl.Name), maxDisplayName)},
			{hasControl(cl.Name), p + ".name", fmt.Sprintf("%q contains control characters", cl.Name)},
			{cl.Name != "" && strings.TrimSpace(cl.Name) == "", p + ".name", "must not be blank: a name people recognise, or leave it out to show the id"},
		}...)
		checks = append(checks, listChecks(p+".post_logout_redirect_uris", cl.PostLogoutRedirectURIs, func(path, u string) []check {
			return []check{
				{!isAbsoluteURI(u), path, fmt.Sprintf("%q is not an absolute URI", u)},
				{strings.Contains(u, "#"), path, fmt.Sprintf("%q has a fragment; a redirect URI has none", u)},
				{scriptScheme(u), path, fmt.Sprintf("%q has a scheme a browser runs or renders in place; a redirect URI must leave the page", u)},
			}
		})...)
		checks = append(checks, scopeChecks(p+".scopes", cl.Scopes)...)
		checks = append(checks, listChecks(p+".audiences", cl.Audiences, func(path, a string) []check {
			return []check{{c.Audience(a) == nil, path, fmt.Sprintf("%q is not the id of a configured audience", a)}}
		})...)
		checks = append(checks, listChecks(p+".may_act", cl.MayAct, func(path, id string) []check {
			return []check{{c.Client(id) == nil, path, fmt.Sprintf("%q is not the id of a configured client", id)}}
		})...)
	}
	return checks
}

func (c *Config) policyChecks() []check {
	var checks []check
	names := map[string]int{}
	for i, pol := range c.Exchange.Policies {
		p := fmt.Sprintf("exchange.policies[%d]", i)
		first, dup := names[pol.Name]
		if !dup {
			names[pol.Name] = i
		}
		client := c.Client(pol.Client)
		// The scopes the policy's audiences have; nil while an audience is unknown.
		var audienceScopes []string
		for _, a := range pol.Audiences {
			aud := c.Audience(a)
			if aud == nil {
				audienceScopes = nil
				break
			}
			audienceScopes = append(audienceScopes, aud.Scopes...)
		}
		samlIssuer := slices.ContainsFunc(pol.SubjectIssuers, func(n string) bool { return c.samlIdP(n) })
		checks = append(checks, []check{
			{pol.Name == "", p + ".name", "must not be empty"},
			{pol.Name != "" && dup, p + ".name", fmt.Sprintf("%q is already the name of exchange.policies[%d]", pol.Name, first)},
			{pol.Client == "", p + ".client", "must be set: the client that may exchange"},
			{pol.Client != "" && client == nil, p + ".client", fmt.Sprintf("%q is not the id of a configured client", pol.Client)},
			// A policy decides token exchanges and on-behalf-of requests alike
			// (README "On-behalf-of (Microsoft Entra's flow)").
			{client != nil && !client.HasGrantType(oauth.GrantTokenExchange) && !client.HasGrantType(oauth.GrantJWTBearer), p + ".client", fmt.Sprintf("client %q has neither grant type %s nor %s", pol.Client, oauth.GrantTokenExchange, oauth.GrantJWTBearer)},
			{slices.Contains(pol.SubjectTokenTypes, "saml2") && !samlIssuer, p + ".subject_token_types", "saml2 needs a saml_idps name in subject_issuers"},
			{len(pol.Audiences) == 0 && !pol.TxnOnly(), p + ".audiences", "must list at least one audience"},
			oneOf(p+".mode", pol.Mode, modes),
			{pol.MaxChain < 1 || pol.MaxChain > maxMaxChain, p + ".max_chain", fmt.Sprintf("%d is not between 1 and %d (0 means %d)", pol.MaxChain, maxMaxChain, DefaultMaxChain)},
			// A rule with require_binding issues only sender-constrained tokens, and
			// ID tokens carry no binding (README "Token exchange rules"): such a rule
			// could never issue one.
			{pol.RequireBinding && slices.Contains(pol.RequestedTokenTypes, "id_token"), p + ".require_binding", "requested_token_types lists id_token, which cannot be sender-constrained: a rule with require_binding would never issue it"},
		}...)
		checks = append(checks, listChecks(p+".subject_issuers", pol.SubjectIssuers, func(path, n string) []check {
			return []check{{n != SubjectIssuerSelf && c.trustedIssuer(n) == nil && !c.samlIdP(n), path, fmt.Sprintf("%q is neither self nor the name of a trusted_issuers or saml_idps entry", n)}}
		})...)
		checks = append(checks, listChecks(p+".subject_token_types", pol.SubjectTokenTypes, func(path, t string) []check {
			return []check{oneOf(path, t, subjectTokenTypes)}
		})...)
		checks = append(checks, listChecks(p+".audiences", pol.Audiences, func(path, a string) []check {
			return []check{{c.Audience(a) == nil, path, fmt.Sprintf("%q is not the id of a configured audience", a)}}
		})...)
		checks = append(checks, scopeChecks(p+".scopes", pol.Scopes)...)
		checks = append(checks, listChecks(p+".scopes", pol.Scopes, func(path, s string) []check {
			return []check{{audienceScopes != nil && !slices.Contains(audienceScopes, s), path, fmt.Sprintf("%q is not a scope of the policy's audiences, so it can never be granted", s)}}
		})...)
		checks = append(checks, listChecks(p+".requested_token_types", pol.RequestedTokenTypes, func(path, t string) []check {
			return []check{oneOf(path, t, requestedTokenTypes)}
		})...)
	}
	return checks
}

// txnChecks covers txn_tokens and the policies that issue or replace transaction
// tokens (README "Transaction tokens").
func (c *Config) txnChecks() []check {
	td := c.TxnTokens.TrustDomain
	checks := []check{
		// exp and iat are whole seconds: a shorter ttl can give exp == iat.
		{c.TxnTokens.TTL.D() < minTxnTokenTTL, "txn_tokens.ttl", fmt.Sprintf("%v is shorter than %v (exp and iat are whole seconds)", c.TxnTokens.TTL.D(), minTxnTokenTTL)},
		{c.TxnTokens.TTL.D() > maxTxnTokenTTL, "txn_tokens.ttl", fmt.Sprintf("%v is longer than %v; a transaction token lives as long as the calls of one request", c.TxnTokens.TTL.D(), maxTxnTokenTTL)},
		{td != "" && (hasSpace(td) || hasControl(td)), "txn_tokens.trust_domain", fmt.Sprintf("%q has white space or control characters", td)},
		// The trust domain is the aud of transaction tokens only: were it an
		// audience or a client too, a service that checks aud alone could take
		// a transaction token for an access token addressed to it.
		{td != "" && c.Audience(td) != nil, "txn_tokens.trust_domain", fmt.Sprintf("%q is also the id of a configured audience", td)},
		{td != "" && c.Client(td) != nil, "txn_tokens.trust_domain", fmt.Sprintf("%q is also the id of a configured client", td)},
	}
	for i, pol := range c.Exchange.Policies {
		p := fmt.Sprintf("exchange.policies[%d]", i)
		issues := slices.Contains(pol.RequestedTokenTypes, TxnTokenType)
		replaces := slices.Contains(pol.SubjectTokenTypes, TxnTokenType)
		checks = append(checks, []check{
			{(issues || replaces) && td == "", "txn_tokens.trust_domain", fmt.Sprintf("must be set: %s lists txn_token", p)},
			{pol.TxnOnly() && len(pol.Audiences) > 0, p + ".audiences", "is never consulted by a policy whose requested_token_types is [txn_token] (a transaction token is addressed to txn_tokens.trust_domain): leave it empty"},
			{issues && pol.RequireBinding, p + ".require_binding", "requested_token_types lists txn_token, which is never sender-constrained (it travels unchanged through many services): a rule with require_binding would never issue it"},
			{replaces && !issues, p + ".subject_token_types", "lists txn_token, but a transaction token is replaced only by a transaction token: requested_token_types must list txn_token"},
			{replaces && !slices.Contains(pol.SubjectIssuers, SubjectIssuerSelf), p + ".subject_issuers", "must list self: subject_token_types lists txn_token, and transaction tokens are deputy's own"},
			// A transaction token has no audience whose scopes would bound it,
			// and another issuer's token bounds nothing (its scopes are not
			// deputy's): the policy's scopes must.
			{issues && len(pol.Scopes) == 0 && slices.ContainsFunc(pol.SubjectIssuers, func(n string) bool { return n != SubjectIssuerSelf }),
				p + ".scopes", "must list the scopes transaction tokens may carry: requested_token_types lists txn_token and subject_issuers another issuer than self, whose tokens bound no scope"},
		}...)
	}
	return checks
}

// issuerChecks covers trusted_issuers and saml_idps, whose names share one
// namespace: that of exchange.policies[].subject_issuers.
func (c *Config) issuerChecks() []check {
	var checks []check
	names := map[string]string{}
	name := func(path, n string) []check {
		first, dup := names[n]
		if !dup {
			names[n] = path
		}
		return []check{
			{n == "", path, "must be set: the name policies use in subject_issuers"},
			{hasSpace(n), path, fmt.Sprintf("%q contains white space", n)},
			{n == SubjectIssuerSelf, path, `"self" is reserved for deputy itself`},
			{n != "" && dup, path, fmt.Sprintf("%q is already the name of %s", n, strings.TrimSuffix(first, ".name"))},
		}
	}
	issuers := map[string]int{}
	for i, t := range c.TrustedIssuers {
		p := fmt.Sprintf("trusted_issuers[%d]", i)
		first, dup := issuers[t.Issuer]
		if !dup {
			issuers[t.Issuer] = i
		}
		checks = append(checks, name(p+".name", t.Name)...)
		checks = append(checks, []check{
			{t.Issuer == "", p + ".issuer", "must be set: the iss of the tokens it issues"},
			{t.Issuer != "" && !isHTTPURL(t.Issuer), p + ".issuer", fmt.Sprintf("%q is not an absolute http(s) URL", t.Issuer)},
			{t.Issuer != "" && t.Issuer == c.Issuer, p + ".issuer", "is deputy's own issuer; policies name it as self"},
			{t.Issuer != "" && dup, p + ".issuer", fmt.Sprintf("%q is already the issuer of trusted_issuers[%d]", t.Issuer, first)},
			{t.JWKSURI == "" && t.JWKSFile == "", p + ".jwks_uri", "one of jwks_uri or jwks_file must be set: the issuer's public keys"},
			{t.JWKSURI != "" && t.JWKSFile != "", p + ".jwks_file", "set either jwks_uri or jwks_file, not both"},
			{t.JWKSURI != "" && !isHTTPURL(t.JWKSURI), p + ".jwks_uri", fmt.Sprintf("%q is not an absolute http(s) URL", t.JWKSURI)},
			{len(t.Audiences) == 0, p + ".audiences", "must list at least one audience; the issuer's tokens must be addressed to one of them"},
			{t.SubjectClaim == "", p + ".subject_claim", "must not be empty"},
		}...)
		checks = append(checks, listChecks(p+".audiences", t.Audiences, func(path, a string) []check {
			return []check{{a == "", path, "must not be empty"}}
		})...)
		checks = append(checks, listChecks(p+".algorithms", t.Algorithms, func(path, a string) []check {
			return []check{oneOf(path, a, issuerAlgorithms)}
		})...)
		checks = append(checks, []check{
			{t.Skew.D() < 0 || t.Skew.D() > MaxTrustedIssuerSkew, p + ".skew", fmt.Sprintf("%v is not between 0s and %v", t.Skew.D(), MaxTrustedIssuerSkew)},
		}...)
		for _, k := range slices.Sorted(maps.Keys(t.Claims)) {
			path := p + ".claims." + k
			checks = append(checks, []check{
				{mappedClaimReserved[k], path, fmt.Sprintf("%q is set by deputy itself and cannot be mapped", k)},
				{t.Claims[k] == "", path, "must name a claim of the issuer's tokens"},
			}...)
		}
		for _, k := range slices.Sorted(maps.Keys(t.RequiredClaims)) {
			path := p + ".required_claims." + k
			checks = append(checks, check{t.RequiredClaims[k] == "", path, "must be the value the claim must have"})
		}
	}
	entities := map[string]int{}
	for i, s := range c.SAMLIdPs {
		p := fmt.Sprintf("saml_idps[%d]", i)
		first, dup := entities[s.EntityID]
		if !dup {
			entities[s.EntityID] = i
		}
		checks = append(checks, name(p+".name", s.Name)...)
		checks = append(checks, []check{
			{s.EntityID == "", p + ".entity_id", "must be set: the IdP's entity id, the Issuer of its assertions"},
			{s.EntityID != "" && dup, p + ".entity_id", fmt.Sprintf("%q is already the entity_id of saml_idps[%d]", s.EntityID, first)},
			{s.CertificateFile == "" && s.MetadataFile == "", p + ".certificate_file", "one of certificate_file or metadata_file must be set: the IdP's signing certificate"},
			{s.CertificateFile != "" && s.MetadataFile != "", p + ".metadata_file", "set either certificate_file or metadata_file, not both"},
			{s.Audience == "", p + ".audience", "must be set: deputy's SP entity id, expected in the assertion's AudienceRestriction"},
			{s.SubjectAttribute != "" && strings.TrimSpace(s.SubjectAttribute) == "", p + ".subject_attribute", "must not be blank: the Name of an attribute, or leave it out to take the NameID"},
			{strings.TrimSpace(s.SubjectAttribute) != "" && strings.TrimSpace(s.SubjectAttribute) != s.SubjectAttribute, p + ".subject_attribute", fmt.Sprintf("%q has white space around it; attribute names are compared exactly", s.SubjectAttribute)},
		}...)
	}
	return checks
}

// maxDisplayName and maxScopeDescription bound the texts pages show.
const (
	maxDisplayName      = 100
	maxScopeDescription = 300
)

// browserChecks covers cors and scopes: what browsers and the people using them see.
func (c *Config) browserChecks() []check {
	var checks []check
	checks = append(checks, listChecks("cors.allowed_origins", c.CORS.AllowedOrigins, func(path, o string) []check {
		u := parseURL(o)
		web, _ := WebOrigin(o)
		return []check{
			{o == "*", path, `"*" is not accepted: discovery and the JWKS are open to every origin already; name the origins of the web apps that call /token, /userinfo and /revoke`},
			{o != "*" && (!isHTTPURL(o) || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || strings.Contains(o, "#")), path,
				fmt.Sprintf("%q is not an origin: scheme://host[:port], like https://app.example or http://127.0.0.1:3000", o)},
			{o != "*" && isHTTPURL(o) && u.Path == "/" && web != "", path, fmt.Sprintf("%q ends with a slash; an origin has no path: %s", o, web)},
		}
	})...)
	known := map[string]bool{}
	for s := range BuiltinScopeDescriptions {
		known[s] = true
	}
	for _, a := range c.Audiences {
		for _, s := range a.Scopes {
			known[s] = true
		}
	}
	for _, cl := range c.Clients {
		for _, s := range cl.Scopes {
			known[s] = true
		}
	}
	names := map[string]int{}
	for i, sc := range c.Scopes {
		p := fmt.Sprintf("scopes[%d]", i)
		first, dup := names[sc.Name]
		if !dup {
			names[sc.Name] = i
		}
		checks = append(checks, []check{
			{sc.Name == "", p + ".name", "must be set: a scope of audiences[].scopes or clients[].scopes"},
			{sc.Name != "" && !validScope(sc.Name), p + ".name", fmt.Sprintf("%q is not a scope name: printable ASCII without spaces, \" or \\ (RFC 6749 §3.3)", sc.Name)},
			{sc.Name != "" && validScope(sc.Name) && !known[sc.Name], p + ".name", fmt.Sprintf("%q is no scope of audiences[].scopes or clients[].scopes, so no one is ever asked for it", sc.Name)},
			{sc.Name != "" && dup, p + ".name", fmt.Sprintf("%q is already described by scopes[%d]", sc.Name, first)},
			{strings.TrimSpace(sc.Description) == "", p + ".description", "must be set: what the scope lets an application do, in words people understand"},
			{len(sc.Description) > maxScopeDescription, p + ".description", fmt.Sprintf("is %d bytes long; at most %d", len(sc.Description), maxScopeDescription)},
			{hasControl(sc.Description), p + ".description", "contains control characters"},
		}...)
	}
	return checks
}

// hasControl reports whether s holds a control character (C0, DEL or C1).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 })
}

// scriptScheme reports whether uri's scheme makes a browser run or render content
// in place (javascript:, data:, vbscript:, blob:, file:, about:) rather than leave
// for an application: never a place to send a browser with a code or state.
func scriptScheme(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "blob", "file", "about":
		return true
	}
	return false
}

func (c *Config) userChecks() []check {
	var checks []check
	names := map[string]int{}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		first, dup := names[u.Username]
		if !dup {
			names[u.Username] = i
		}
		checks = append(checks, []check{
			{u.Username == "", p + ".username", "must be set"},
			{hasSpace(u.Username), p + ".username", fmt.Sprintf("%q contains white space", u.Username)},
			{!oauth.SafeText(u.Username), p + ".username", fmt.Sprintf("%q contains control, line-separator or bidi characters", u.Username)},
			{u.Username != "" && dup, p + ".username", fmt.Sprintf("%q is already the username of users[%d]", u.Username, first)},
			{u.Username != "" && c.Client(u.Username) != nil, p + ".username", fmt.Sprintf("%q is also a client id; a token's subject would not say which of the two it is", u.Username)},
			{u.Password == "" && u.PasswordHash == "", p + ".password_hash", "must be set (or password, for development only)"},
			{u.Password != "" && u.PasswordHash != "", p + ".password", "set either password or password_hash, not both"},
			{u.PasswordHash != "" && !validArgon2id(u.PasswordHash), p + ".password_hash", `is not "$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>" (base64 without padding; m at most 1048576 KiB, t at most 64)`},
		}...)
		for _, k := range slices.Sorted(maps.Keys(u.Claims)) {
			checks = append(checks, check{slices.Contains(reservedClaims, k), p + ".claims." + k, "is a claim deputy sets itself"})
		}
		checks = append(checks, listChecks(p+".roles", u.Roles, func(path, r string) []check {
			return []check{oneOf(path, r, roles)}
		})...)
	}
	return checks
}

func (c *Config) upstreamChecks() []check {
	var checks []check
	names := map[string]int{}
	for i, u := range c.UpstreamIdPs {
		p := fmt.Sprintf("upstream_idps[%d]", i)
		first, dup := names[u.Name]
		if !dup {
			names[u.Name] = i
		}
		oidc := u.Type == UpstreamOIDC
		checks = append(checks, []check{
			{u.Name == "", p + ".name", "must be set"},
			{hasSpace(u.Name), p + ".name", fmt.Sprintf("%q contains white space", u.Name)},
			{u.Name != "" && dup, p + ".name", fmt.Sprintf("%q is already the name of upstream_idps[%d]", u.Name, first)},
			{u.Name == UpstreamLocal, p + ".name", fmt.Sprintf("%q names sign-ins with deputy's own accounts; choose another name", u.Name)},
			oneOf(p+".type", u.Type, upstreamTypes),
			{u.Issuer == "", p + ".issuer", "must be set: the IdP's issuer URL (oidc) or entity id (saml)"},
			{oidc && u.Issuer != "" && !isHTTPURL(u.Issuer), p + ".issuer", fmt.Sprintf("%q is not an absolute http(s) URL", u.Issuer)},
			{oidc && u.ClientID == "", p + ".client_id", "must be set for type oidc: deputy's client id at the IdP"},
			{u.Type == UpstreamSAML && u.SSOURL == "" && u.MetadataFile == "", p + ".sso_url", "must be set for type saml (or give metadata_file)"},
			{u.Type == UpstreamSAML && u.SSOURL != "" && !isHTTPURL(u.SSOURL), p + ".sso_url", fmt.Sprintf("%q is not an absolute http(s) URL", u.SSOURL)},
			{u.Type == UpstreamSAML && (u.CertificateFile == "") == (u.MetadataFile == ""), p + ".certificate_file", "set exactly one of certificate_file and metadata_file for type saml"},
			{oidc && (u.CertificateFile != "" || u.MetadataFile != "" || u.SSOURL != ""), p + ".type", "sso_url, certificate_file and metadata_file are for type saml"},
		}...)
	}
	return checks
}

// clientTLSChecks are the checks of a client's mutual-TLS keys (RFC 8705).
func (c *Config) clientTLSChecks(p string, cl Client) []check {
	method := cl.AuthMethod
	hasSecret := cl.Secret != "" || cl.SecretHash != ""
	tlsMethod := method == oauth.AuthTLSClient || method == oauth.AuthSelfSignedTLSClient
	subjects := 0
	for _, v := range []string{cl.TLSClientAuthSubjectDN, cl.TLSClientAuthSANDNS, cl.TLSClientAuthSANURI, cl.TLSClientAuthSANEmail, cl.TLSClientAuthSANIP} {
		if v != "" {
			subjects++
		}
	}
	noCerts := c.TLS.CertFile == "" && c.TLS.ClientCertHeader == ""
	return []check{
		{method == oauth.AuthTLSClient && subjects != 1, p + ".tls_client_auth_subject_dn", fmt.Sprintf("set exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_email, tls_client_auth_san_ip for auth_method tls_client_auth (%d set)", subjects)},
		{method != oauth.AuthTLSClient && subjects > 0, p + ".tls_client_auth_subject_dn", fmt.Sprintf("tls_client_auth_* are only used with auth_method tls_client_auth, not %s", method)},
		{cl.TLSClientAuthSANIP != "" && net.ParseIP(cl.TLSClientAuthSANIP) == nil, p + ".tls_client_auth_san_ip", fmt.Sprintf("%q is not an IP address", cl.TLSClientAuthSANIP)},
		{method == oauth.AuthTLSClient && c.TLS.ClientCAFile == "", "tls.client_ca_file", fmt.Sprintf("must be set: %s.auth_method is tls_client_auth, whose certificate chain is verified against it", p)},
		{method == oauth.AuthSelfSignedTLSClient && cl.JWKSFile == "", p + ".jwks_file", "must be set for auth_method self_signed_tls_client_auth: the public keys of the client's certificates"},
		{tlsMethod && hasSecret, p + ".secret", fmt.Sprintf("is not used with auth_method %s; remove secret and secret_hash", method)},
		{(tlsMethod || cl.TLSClientCertificateBoundAccessTokens) && noCerts, p + ".auth_method", "needs client certificates: set tls.cert_file (deputy serves HTTPS) or tls.client_cert_header (a proxy in front of deputy forwards them)"},
	}
}

// tlsChecks are the checks of tls.* beyond the server certificate (RFC 8705).
func (c *Config) tlsChecks() []check {
	t := c.TLS
	checks := []check{
		{t.ClientCertHeader != "" && len(t.TrustedProxies) == 0, "tls.trusted_proxies", "must list the proxies that write tls.client_cert_header: from any other peer the header is ignored"},
		{t.ClientCertHeader == "" && len(t.TrustedProxies) > 0, "tls.client_cert_header", "must be set with tls.trusted_proxies: the header those proxies put the client certificate in"},
		{t.ClientCertHeader != "" && !headerName(t.ClientCertHeader), "tls.client_cert_header", fmt.Sprintf("%q is not an HTTP header name", t.ClientCertHeader)},
	}
	return append(checks, listChecks("tls.trusted_proxies", t.TrustedProxies, func(path, v string) []check {
		p, err := ProxyPrefix(v)
		return []check{
			{err != nil, path, fmt.Sprintf("%q is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an IP address: %v", v, err)},
			{err == nil && p.Bits() == 0, path, fmt.Sprintf("%q trusts every address: anyone could then present any client certificate", v)},
		}
	})...)
}

// headerName reports whether s is an HTTP field name (RFC 9110 §5.1: a token).
func headerName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func (c *Config) proxyChecks() []check {
	// Header names are case-insensitive (RFC 9110 §5.1).
	h := c.TrustedProxyHeader
	checks := []check{{!strings.EqualFold(h, ProxyHeaderXForwardedFor) && !strings.EqualFold(h, ProxyHeaderForwarded), "trusted_proxy_header",
		fmt.Sprintf("%q is not one of %s, %s", h, ProxyHeaderXForwardedFor, ProxyHeaderForwarded)}}
	return append(checks, listChecks("trusted_proxies", c.TrustedProxies, func(path, v string) []check {
		p, err := ProxyPrefix(v)
		return []check{
			{err != nil, path, fmt.Sprintf("%q is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an IP address: %v", v, err)},
			{err == nil && p.Bits() == 0, path, fmt.Sprintf("%q trusts every address: anyone could then choose the address throttling and the audit trail see", v)},
		}
	})...)
}

// oneOf is the check that v is one of allowed.
func oneOf(path, v string, allowed []string) check {
	if v == "" {
		return check{true, path, "must be set to one of " + strings.Join(allowed, ", ")}
	}
	return check{!slices.Contains(allowed, v), path, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))}
}

// positive is the check that a duration is more than zero.
func positive(path string, d Duration) check {
	return check{d <= 0, path, fmt.Sprintf("%v is not positive", d.D())}
}

// listChecks applies each to every element of a list, and reports repeated
// elements.
func listChecks(path string, list []string, each func(path, v string) []check) []check {
	var checks []check
	seen := map[string]int{}
	for j, v := range list {
		ep := fmt.Sprintf("%s[%d]", path, j)
		first, dup := seen[v]
		if !dup {
			seen[v] = j
		}
		checks = append(checks, check{dup, ep, fmt.Sprintf("%q is already %s[%d]", v, path, first)})
		if !dup {
			checks = append(checks, each(ep, v)...)
		}
	}
	return checks
}

// scopeChecks checks a list of scope names (RFC 6749 §3.3).
func scopeChecks(path string, scopes []string) []check {
	return listChecks(path, scopes, func(path, s string) []check {
		return []check{{!validScope(s), path, fmt.Sprintf("%q is not a scope name: printable ASCII without spaces, \" or \\ (RFC 6749 §3.3)", s)}}
	})
}

func (c *Config) trustedIssuer(name string) *TrustedIssuer {
	for i := range c.TrustedIssuers {
		if c.TrustedIssuers[i].Name == name {
			return &c.TrustedIssuers[i]
		}
	}
	return nil
}

func (c *Config) samlIdP(name string) bool {
	return slices.ContainsFunc(c.SAMLIdPs, func(s SAMLIdP) bool { return s.Name == name })
}

// validScope reports whether s is a scope-token: 1*NQCHAR (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

func hasSpace(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' })
}

// parseURL parses s, returning an empty URL when it cannot.
func parseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" && u.Opaque == ""
}

// isAbsoluteURI reports whether s is an absolute URI: a scheme, and for http(s) a
// host (RFC 3986 §4.3).
func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return false
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Hostname() != "" && u.Opaque == ""
	}
	return true
}

// isHostPort reports whether s is host:port with a numeric port; the host may be
// empty (every interface).
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || hasSpace(host) {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && strconv.FormatUint(n, 10) == port
}

// Bounds of an argon2id hash's cost and sizes (those internal/account verifies
// stored passwords within), so that one configured hash cannot make each check
// take the machine's memory or minutes of CPU.
const (
	maxArgon2MemoryKiB = 1024 * 1024 // 1 GiB
	maxArgon2Passes    = 64
	maxArgon2Bytes     = 64 // salt and hash
)

// validArgon2id reports whether s is an argon2id hash in the PHC string format:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, base64 without padding,
// within the bounds above.
func validArgon2id(s string) bool {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return false
	}
	var m, t, p uint64
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return false
	}
	for i, dst := range []*uint64{&m, &t, &p} {
		v, ok := strings.CutPrefix(params[i], []string{"m=", "t=", "p="}[i])
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return false
		}
		*dst = n
	}
	if p > 255 || m < 8*p || m > maxArgon2MemoryKiB || t > maxArgon2Passes {
		return false
	}
	salt, err1 := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	hash, err2 := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	return err1 == nil && err2 == nil && len(salt) >= 8 && len(hash) >= 16 && len(salt) <= maxArgon2Bytes && len(hash) <= maxArgon2Bytes
}

// validSHA256Hash reports whether s is "sha256:" followed by 64 hex digits.
func validSHA256Hash(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Bounds of http.max_header_bytes.
const (
	minMaxHeaderBytes = 4096
	maxMaxHeaderBytes = 1 << 20
)

func (c *Config) lifecycleChecks() []check {
	h, sd := c.HTTP, c.Shutdown
	return []check{
		positive("http.read_header_timeout", h.ReadHeaderTimeout),
		positive("http.read_timeout", h.ReadTimeout),
		{h.ReadHeaderTimeout > h.ReadTimeout && h.ReadTimeout > 0, "http.read_header_timeout", fmt.Sprintf("%v is longer than http.read_timeout (%v), which bounds the headers too", h.ReadHeaderTimeout.D(), h.ReadTimeout.D())},
		positive("http.write_timeout", h.WriteTimeout),
		positive("http.idle_timeout", h.IdleTimeout),
		{h.MaxHeaderBytes < minMaxHeaderBytes || h.MaxHeaderBytes > maxMaxHeaderBytes, "http.max_header_bytes", fmt.Sprintf("%d is not within %d…%d", h.MaxHeaderBytes, minMaxHeaderBytes, maxMaxHeaderBytes)},
		positive("shutdown.drain", sd.Drain),
		positive("shutdown.timeout", sd.Timeout),
		{sd.Timeout < h.ReadTimeout && sd.Timeout > 0, "shutdown.timeout", fmt.Sprintf("%v is shorter than http.read_timeout (%v): a request the server accepted must be given the time to arrive", sd.Timeout.D(), h.ReadTimeout.D())},
		positive("dpop.max_age", c.DPoP.MaxAge),
		{c.DPoP.MaxAge.D() > maxDPoPMaxAge, "dpop.max_age", fmt.Sprintf("%v is longer than %v: a proof is for one request, made just before it (RFC 9449 §11.1)", c.DPoP.MaxAge.D(), maxDPoPMaxAge)},
		oneOf("log.format", c.Log.Format, logFormats),
		oneOf("log.level", c.Log.Level, logLevels),
	}
}
