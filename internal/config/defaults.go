package config

import (
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// SetDefaults fills in every key left unset (zero) that has a default; it leaves
// set keys alone and may be called more than once. The defaults are the Default…
// constants and those listed after them; in short:
//
//	listen                                 127.0.0.1:8080
//	issuer                                 http://<listen> (https:// when tls is set),
//	                                       only when listen names a host
//	storage.driver                         sqlite
//	storage.dsn                            deputy.db (sqlite only)
//	storage.timeout                        5s
//	signing.algorithm                      ES256
//	signing.retire_after                   24h
//	signing.id_token_algorithm             RS256
//	tokens.access_token_ttl                5m
//	tokens.refresh_token_ttl               24h
//	tokens.id_token_ttl                    5m
//	tokens.code_ttl                        1m
//	tokens.session_ttl                     8h
//	txn_tokens.ttl                         60s
//	audit.max_batch                        256
//	limits.max_body_bytes                  65536
//	limits.max_token_bytes                 16384
//	limits.max_in_flight                   512
//	limits.rate.per_second                 10000
//	limits.rate.burst                      20000
//	clients[].auth_method                  client_secret_basic with a secret or
//	                                       secret_hash, else private_key_jwt with a
//	                                       jwks_file, else none
//	clients[].id_token_signed_response_alg signing.id_token_algorithm
//	exchange.policies[].name               policies[i]
//	exchange.policies[].subject_issuers    [self]
//	exchange.policies[].subject_token_types [access_token]
//	exchange.policies[].mode               delegation
//	exchange.policies[].max_chain          4 (also when 0)
//	exchange.policies[].requested_token_types [access_token]
//	trusted_issuers[].subject_claim        sub
//	trusted_issuers[].algorithms           [RS256]
//	trusted_issuers[].skew                 60s
//	saml_idps[].audience                   the issuer
//	saml_idps[].subject_attribute          none: the NameID is the subject
//	upstream_idps[].subject_claim          sub (oidc); the NameID when empty (saml)
//	upstream_idps[].scopes                 [openid, profile, email] (oidc)
//	clients[].name                         the client's id (where pages show it)
//	scopes[].description                   built in for openid, profile, email and
//	                                       offline_access (BuiltinScopeDescriptions)
//	http.read_header_timeout               5s
//	http.read_timeout                      15s
//	http.write_timeout                     30s
//	http.idle_timeout                      120s
//	http.max_header_bytes                  65536
//	shutdown.drain                         5s
//	shutdown.timeout                       20s
//	trusted_proxy_header                   X-Forwarded-For
//	log.format                             text
//	log.level                              info
func (c *Config) SetDefaults() {
	if c.TrustedProxyHeader == "" {
		c.TrustedProxyHeader = ProxyHeaderXForwardedFor
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Issuer == "" {
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && isHostPort(c.Listen) && !unspecifiedHost(host) {
			scheme := "http://"
			if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
				scheme = "https://"
			}
			c.Issuer = scheme + c.Listen
		}
	}
	if c.Storage.Driver == "" {
		c.Storage.Driver = DefaultStorageDriver
	}
	if c.Storage.DSN == "" && c.Storage.Driver == DriverSQLite {
		c.Storage.DSN = DefaultStorageDSN
	}
	setDuration(&c.Storage.Timeout, DefaultStorageTimeout)
	if c.Signing.Algorithm == "" {
		c.Signing.Algorithm = DefaultSigningAlgorithm
	}
	setDuration(&c.Signing.RetireAfter, DefaultRetireAfter)
	if c.Signing.IDTokenAlgorithm == "" {
		c.Signing.IDTokenAlgorithm = DefaultIDTokenAlgorithm
	}
	setDuration(&c.Tokens.AccessTokenTTL, DefaultAccessTokenTTL)
	setDuration(&c.TxnTokens.TTL, DefaultTxnTokenTTL)
	setDuration(&c.Tokens.RefreshTokenTTL, DefaultRefreshTokenTTL)
	setDuration(&c.Tokens.IDTokenTTL, DefaultIDTokenTTL)
	setDuration(&c.Tokens.CodeTTL, DefaultCodeTTL)
	setDuration(&c.Tokens.SessionTTL, DefaultSessionTTL)
	if c.Audit.MaxBatch == 0 {
		c.Audit.MaxBatch = DefaultAuditMaxBatch
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Limits.MaxTokenBytes == 0 {
		c.Limits.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.Limits.MaxInFlight == 0 {
		c.Limits.MaxInFlight = DefaultMaxInFlight
	}
	if c.Limits.Rate.PerSecond == 0 {
		c.Limits.Rate.PerSecond = DefaultRatePerSecond
	}
	if c.Limits.Rate.Burst == 0 {
		c.Limits.Rate.Burst = DefaultRateBurst
	}
	setDuration(&c.HTTP.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&c.HTTP.ReadTimeout, DefaultReadTimeout)
	setDuration(&c.HTTP.WriteTimeout, DefaultWriteTimeout)
	setDuration(&c.HTTP.IdleTimeout, DefaultIdleTimeout)
	if c.HTTP.MaxHeaderBytes == 0 {
		c.HTTP.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	setDuration(&c.Shutdown.Drain, DefaultShutdownDrain)
	setDuration(&c.Shutdown.Timeout, DefaultShutdownTimeout)
	setDuration(&c.DPoP.MaxAge, DefaultDPoPMaxAge)
	if c.Log.Format == "" {
		c.Log.Format = LogFormatText
	}
	if c.Log.Level == "" {
		c.Log.Level = LogLevelInfo
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.AuthMethod == "" {
			switch {
			case cl.Secret != "" || cl.SecretHash != "":
				cl.AuthMethod = oauth.AuthClientSecretBasic
			case cl.JWKSFile != "":
				cl.AuthMethod = oauth.AuthPrivateKeyJWT
			default:
				cl.AuthMethod = oauth.AuthNone
			}
		}
		if cl.IDTokenSignedResponseAlg == "" {
			cl.IDTokenSignedResponseAlg = c.Signing.IDTokenAlgorithm
		}
	}
	for i := range c.Exchange.Policies {
		p := &c.Exchange.Policies[i]
		if p.Name == "" {
			p.Name = "policies[" + strconv.Itoa(i) + "]"
		}
		if len(p.SubjectIssuers) == 0 {
			p.SubjectIssuers = []string{SubjectIssuerSelf}
		}
		if len(p.SubjectTokenTypes) == 0 {
			p.SubjectTokenTypes = []string{oauth.TokenTypeAccessToken.ShortName()}
		}
		if p.Mode == "" {
			p.Mode = ModeDelegation
		}
		if p.MaxChain == 0 {
			p.MaxChain = DefaultMaxChain
		}
		if len(p.RequestedTokenTypes) == 0 {
			p.RequestedTokenTypes = []string{oauth.TokenTypeAccessToken.ShortName()}
		}
	}
	for i := range c.UpstreamIdPs {
		u := &c.UpstreamIdPs[i]
		if u.Type == UpstreamOIDC {
			if u.SubjectClaim == "" {
				u.SubjectClaim = DefaultSubjectClaim
			}
			if len(u.Scopes) == 0 {
				u.Scopes = []string{"openid", "profile", "email"}
			}
		}
	}
	for i := range c.TrustedIssuers {
		t := &c.TrustedIssuers[i]
		if t.SubjectClaim == "" {
			t.SubjectClaim = DefaultSubjectClaim
		}
		if len(t.Algorithms) == 0 {
			t.Algorithms = []string{DefaultTrustedIssuerAlgorithm}
		}
		if t.Skew == 0 {
			t.Skew = Duration(DefaultTrustedIssuerSkew)
		}
	}
	for i := range c.SAMLIdPs {
		if c.SAMLIdPs[i].Audience == "" {
			c.SAMLIdPs[i].Audience = c.Issuer
		}
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// unspecifiedHost reports whether a listen host means "every interface", which no
// client can use in a URL.
func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// BuiltinScopeDescriptions describe the OpenID Connect scopes (OIDC Core §5.4,
// §11) on the consent page unless scopes[] describes them otherwise.
var BuiltinScopeDescriptions = map[string]string{
	"openid":         "Know who you are (your user id)",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"offline_access": "Keep access while you are away",
}

// ScopeDescription is the description of scope name shown on the consent page:
// scopes[]'s, else the built-in one, else "".
func (c *Config) ScopeDescription(name string) string {
	for _, s := range c.Scopes {
		if s.Name == name {
			return s.Description
		}
	}
	return BuiltinScopeDescriptions[name]
}

// ScopeDescriptions maps every described scope to its description (see
// [Config.ScopeDescription]).
func (c *Config) ScopeDescriptions() map[string]string {
	m := maps.Clone(BuiltinScopeDescriptions)
	for _, s := range c.Scopes {
		m[s.Name] = s.Description
	}
	return m
}

// BrowserOrigins are the origins allowed to call the token, userinfo and
// revocation endpoints from a browser: cors.allowed_origins and the origin of
// every client's http(s) redirect URI, as browsers send them in Origin (lower
// case, without a default port), sorted.
func (c *Config) BrowserOrigins() []string {
	set := map[string]bool{}
	for _, o := range c.CORS.AllowedOrigins {
		if v, ok := WebOrigin(o); ok {
			set[v] = true
		}
	}
	for _, cl := range c.Clients {
		for _, u := range cl.RedirectURIs {
			if v, ok := WebOrigin(u); ok {
				set[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// WebOrigin is the origin of an http(s) URL as a browser serialises it
// (scheme://host[:port], lower case, the default port left out); false for other
// schemes, such as a native app's private-use scheme, which have no web origin.
func WebOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return scheme + "://" + host, true
	}
	return scheme + "://" + host + ":" + port, true
}
