package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/oauth"
)

// Config is the whole configuration file.
type Config struct {
	Issuer         string          `yaml:"issuer"`
	Listen         string          `yaml:"listen"`
	TLS            TLS             `yaml:"tls"`
	Storage        Storage         `yaml:"storage"`
	Signing        Signing         `yaml:"signing"`
	Tokens         Tokens          `yaml:"tokens"`
	Audit          Audit           `yaml:"audit"`
	Audiences      []Audience      `yaml:"audiences"`
	Clients        []Client        `yaml:"clients"`
	Exchange       Exchange        `yaml:"exchange"`
	TxnTokens      TxnTokens       `yaml:"txn_tokens"` // README "Transaction tokens"
	TrustedIssuers []TrustedIssuer `yaml:"trusted_issuers"`
	SAMLIdPs       []SAMLIdP       `yaml:"saml_idps"`
	Users          []User          `yaml:"users"`
	UpstreamIdPs   []UpstreamIdP   `yaml:"upstream_idps"`
	Limits         Limits          `yaml:"limits"`
	// CORS opens the token, userinfo and revocation endpoints to web apps of other
	// origins (discovery and the JWKS are open to every origin).
	CORS CORS `yaml:"cors"`
	// Scopes describe scopes to the people asked to approve them on the consent
	// page; openid, profile, email and offline_access have built-in descriptions.
	Scopes []Scope `yaml:"scopes"`
	// TrustedProxies are the reverse proxies (CIDRs, or single addresses) whose
	// X-Forwarded-For and Forwarded headers are believed: only for a connection
	// from one of them does deputy take the client's address from those headers,
	// for throttling and the audit trail. Default none: the headers are ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TrustedProxyHeader is the header the trusted proxies write the client's
	// address in: X-Forwarded-For (default) or Forwarded (RFC 7239). The other
	// header is never read: a proxy passes it on from the client untouched.
	TrustedProxyHeader string `yaml:"trusted_proxy_header"`
	// HTTP bounds what one connection may hold of the server.
	HTTP HTTP `yaml:"http"`
	// Shutdown is what SIGTERM and SIGINT do: drain, then stop.
	Shutdown Shutdown `yaml:"shutdown"`
	// DPoP configures the checking of DPoP proofs (RFC 9449) at the token and
	// userinfo endpoints.
	DPoP DPoP `yaml:"dpop"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `yaml:"metrics"`
	// Log configures deputy serve's log on standard error.
	Log Log `yaml:"log"`
	// Tracing configures OpenTelemetry tracing.
	Tracing Tracing `yaml:"tracing"`
}

// Tracing configures where spans are exported (README "Operating deputy ›
// Tracing"); everything else comes from the standard OTEL_* variables.
type Tracing struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver (an OpenTelemetry
	// Collector's port 4318), like OTEL_EXPORTER_OTLP_ENDPOINT, which it overrides;
	// "/v1/traces" is appended to its path. Empty: the OTEL_EXPORTER_OTLP_*
	// variables decide, and without them nothing is exported.
	Endpoint string `yaml:"endpoint"`
}

// Log configures the log: one line per request, and the server's own events.
type Log struct {
	// Format is text (logfmt-style key=value, log/slog's TextHandler) or json
	// (one JSON object a line, log/slog's JSONHandler).
	Format string `yaml:"format"`
	// Level is the least level written: debug, info, warn or error. At debug the
	// probes (/healthz, /readyz, /metrics) are logged too.
	Level string `yaml:"level"`
}

// Values of log.format and log.level.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"
)

// Metrics configures where /metrics is served.
type Metrics struct {
	// Listen, when set, is a separate host:port that serves /metrics (plain
	// HTTP), and the main listener no longer does; empty serves it on listen.
	Listen string `yaml:"listen"`
}

// DPoP configures DPoP proofs (RFC 9449).
type DPoP struct {
	// MaxAge is how old a proof's iat may be (a 5 s skew is allowed on top, and
	// for an iat in the future); its jti is remembered that long, on every node.
	MaxAge Duration `yaml:"max_age"`
	// RequireNonce makes every proof carry a nonce deputy issued (RFC 9449 §8):
	// a proof without one is answered use_dpop_nonce with a DPoP-Nonce header.
	// Nonces are signed with deputy's keys, so every node accepts them; each is
	// valid 5 minutes.
	RequireNonce bool `yaml:"require_nonce"`
}

// CORS configures cross-origin requests from browsers (the Fetch standard's CORS
// protocol) to /token, /userinfo and /revoke.
type CORS struct {
	// AllowedOrigins are origins (scheme://host[:port]) allowed besides those of every
	// client's http(s) redirect_uris; "*" is refused.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Scope describes one scope for the consent page.
type Scope struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// HTTP holds the HTTP server's timeouts and limits (see net/http.Server), so that a
// slow client cannot hold the server.
type HTTP struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end of the
	// response.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection waits for its next request.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header section.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// Shutdown configures the end of `deputy serve` on SIGTERM or SIGINT: /readyz
// answers 503 at once while requests are still served for Drain (so a load balancer
// stops sending new ones); then the listener closes and requests in flight get
// Timeout to finish.
type Shutdown struct {
	// Drain is how long requests are still served after the signal, /readyz 503.
	Drain Duration `yaml:"drain"`
	// Timeout is how long requests in flight may take to finish after the drain;
	// at least http.read_timeout.
	Timeout Duration `yaml:"timeout"`
}

// TLS configures HTTPS; both files or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM file of the CAs that issue client certificates for
	// tls_client_auth (RFC 8705 §2.1). With it the HTTPS listener asks for (never
	// demands) a client certificate; the chain is verified only where a client
	// authenticates with it, so a certificate from another CA is a failed client
	// authentication, not a failed handshake.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientCertHeader is the header a TLS-terminating proxy in front of deputy puts
	// the client's certificate in, URL-encoded PEM (as nginx's
	// $ssl_client_escaped_cert). Read only from a peer in TrustedProxies.
	ClientCertHeader string `yaml:"client_cert_header"`
	// TrustedProxies are the proxies (CIDRs or addresses) whose ClientCertHeader is
	// believed; from any other peer the header is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Storage selects the database.
type Storage struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
	// Timeout bounds every wait for the database on a request's path (a
	// connection from the pool, a query, the audit writer's commit): past it the
	// request is answered 503 temporarily_unavailable, and a commit that fails or
	// hangs makes /readyz 503 until one succeeds.
	Timeout Duration `yaml:"timeout"`
}

// Signing configures token signing keys.
type Signing struct {
	Algorithm string `yaml:"algorithm"` // ES256 | EdDSA | RS256 | PS256
	// RetireAfter is how long a rotated-out key stays published in the JWKS.
	RetireAfter Duration `yaml:"retire_after"`
	// IDTokenAlgorithm is the algorithm of ID tokens for clients that set no
	// id_token_signed_response_alg (OpenID Connect Core §15.1: RS256 is the one
	// every relying party supports). Access tokens keep Algorithm.
	IDTokenAlgorithm string `yaml:"id_token_algorithm"`
	// KeyEncryptionKeyFile names a file holding a 256-bit key-encryption key (32
	// bytes in base64 or hex; readable by its owner only) that encrypts the private
	// signing keys in the database (AES-256-GCM). Unset: they are stored in the clear.
	KeyEncryptionKeyFile string `yaml:"key_encryption_key_file"`
	// KeyEncryptionKey is that key itself, for the environment
	// (DEPUTY_SIGNING_KEY_ENCRYPTION_KEY); at most one of the two may be set (the
	// keys are read, and this checked, where they are opened: internal/server's
	// KeyOptions). It is never printed or logged.
	KeyEncryptionKey string `yaml:"key_encryption_key"`
}

// Tokens configures lifetimes.
type Tokens struct {
	AccessTokenTTL  Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"`
	IDTokenTTL      Duration `yaml:"id_token_ttl"`
	// CodeTTL is how long an authorization code can be redeemed.
	CodeTTL Duration `yaml:"code_ttl"`
	// SessionTTL is how long a browser sign-in session lasts.
	SessionTTL Duration `yaml:"session_ttl"`
}

// TxnTokens configures transaction tokens (draft-ietf-oauth-transaction-tokens;
// README "Transaction tokens").
type TxnTokens struct {
	// TrustDomain is the aud of every transaction token: the trust domain its
	// services belong to. Required when a policy lists txn_token.
	TrustDomain string `yaml:"trust_domain"`
	// TTL is a transaction token's lifetime, capped by its subject token's.
	TTL Duration `yaml:"ttl"`
}

// Audit configures the audit writer.
type Audit struct {
	// MaxBatch is the most events one commit carries.
	MaxBatch int `yaml:"max_batch"`
}

// Limits bounds request sizes and the load one node accepts.
type Limits struct {
	MaxBodyBytes  int64 `yaml:"max_body_bytes"`  // token endpoint form body
	MaxTokenBytes int   `yaml:"max_token_bytes"` // one subject or actor token
	// MaxInFlight is the most requests served at once; beyond it a request is
	// refused at once with 503 and Retry-After (health, readiness and metrics
	// never are).
	MaxInFlight int `yaml:"max_in_flight"`
	// Rate limits /token, /introspect, /revoke and /calls per authenticated
	// client, and per address for requests that did not authenticate.
	Rate Rate `yaml:"rate"`
}

// Rate is a token bucket: PerSecond requests a second on average, Burst at once.
type Rate struct {
	PerSecond int `yaml:"per_second"`
	Burst     int `yaml:"burst"`
}

// Audience is a service tokens can be addressed to.
type Audience struct {
	ID     string   `yaml:"id"`
	Scopes []string `yaml:"scopes"`
	Client string   `yaml:"client"`
}

// Client is a registered OAuth client.
type Client struct {
	ID           string   `yaml:"id"`
	Secret       string   `yaml:"secret"`
	SecretHash   string   `yaml:"secret_hash"`
	AuthMethod   string   `yaml:"auth_method"`
	JWKSFile     string   `yaml:"jwks_file"`
	GrantTypes   []string `yaml:"grant_types"`
	RedirectURIs []string `yaml:"redirect_uris"`
	Scopes       []string `yaml:"scopes"`
	Audiences    []string `yaml:"audiences"`
	MayAct       []string `yaml:"may_act"`
	// Name is shown to people on the sign-in, consent and sign-out pages; default
	// the id.
	Name string `yaml:"name"`
	// PostLogoutRedirectURIs are where the end-session endpoint may send the browser
	// after signing out (OIDC RP-Initiated Logout 1.0 §3), compared exactly.
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	// IDTokenSignedResponseAlg is the algorithm of this client's ID tokens (OpenID
	// Connect Dynamic Client Registration §2); default signing.id_token_algorithm.
	IDTokenSignedResponseAlg string `yaml:"id_token_signed_response_alg"`
	// DPoPBoundAccessTokens makes every token request of the client carry a DPoP
	// proof (RFC 9449 §5.2): without one it is refused with invalid_dpop_proof.
	DPoPBoundAccessTokens bool `yaml:"dpop_bound_access_tokens"`
	// TLSClientAuthSubjectDN, …SANDNS, …SANURI, …SANEmail, …SANIP: for auth_method
	// tls_client_auth, exactly one is set, and the client certificate must carry it
	// (RFC 8705 §2.1.2): the subject DN as RFC 4514 writes it, or one
	// subjectAltName entry of that type.
	TLSClientAuthSubjectDN string `yaml:"tls_client_auth_subject_dn"`
	TLSClientAuthSANDNS    string `yaml:"tls_client_auth_san_dns"`
	TLSClientAuthSANURI    string `yaml:"tls_client_auth_san_uri"`
	TLSClientAuthSANEmail  string `yaml:"tls_client_auth_san_email"`
	TLSClientAuthSANIP     string `yaml:"tls_client_auth_san_ip"`
	// TLSClientCertificateBoundAccessTokens binds the client's tokens to the TLS
	// client certificate of the token request (RFC 8705 §3): a token request
	// without a certificate is refused.
	TLSClientCertificateBoundAccessTokens bool `yaml:"tls_client_certificate_bound_access_tokens"`
}

// Exchange holds token-exchange policies.
type Exchange struct {
	Policies []Policy `yaml:"policies"`
}

// Policy allows one kind of exchange (design §5).
type Policy struct {
	Name                string   `yaml:"name"` // optional; defaults to "policies[i]"
	Client              string   `yaml:"client"`
	SubjectIssuers      []string `yaml:"subject_issuers"`
	SubjectTokenTypes   []string `yaml:"subject_token_types"`
	Audiences           []string `yaml:"audiences"`
	Scopes              []string `yaml:"scopes"`
	Mode                string   `yaml:"mode"`
	RequireMayAct       bool     `yaml:"require_may_act"`
	MaxChain            int      `yaml:"max_chain"`
	RequestedTokenTypes []string `yaml:"requested_token_types"`
	// RequireBinding makes the policy issue only sender-constrained tokens: a
	// request it decides must prove a key (a DPoP proof, RFC 9449, or a
	// certificate-bound client's TLS certificate, RFC 8705), else invalid_request.
	RequireBinding bool `yaml:"require_binding"`
	// Condition is a CEL expression (design §12) that must be true for the policy
	// to match; "" for none. It is type-checked when the configuration is loaded
	// (internal/policy/condition).
	Condition string `yaml:"condition"`
}

// TxnTokenType is the configuration name of transaction tokens in
// subject_token_types and requested_token_types.
const TxnTokenType = "txn_token"

// TxnOnly reports whether the policy issues transaction tokens only
// (requested_token_types is [txn_token]): such a policy consults no audiences.
func (p *Policy) TxnOnly() bool {
	return len(p.RequestedTokenTypes) > 0 && !slices.ContainsFunc(p.RequestedTokenTypes, func(t string) bool { return t != TxnTokenType })
}

// TrustedIssuer is an external issuer whose JWTs may be exchanged.
type TrustedIssuer struct {
	Name         string   `yaml:"name"`
	Issuer       string   `yaml:"issuer"`
	JWKSURI      string   `yaml:"jwks_uri"`
	JWKSFile     string   `yaml:"jwks_file"`
	Audiences    []string `yaml:"audiences"`
	SubjectClaim string   `yaml:"subject_claim"`
	Algorithms   []string `yaml:"algorithms"`
	// Claims maps claims of the issuer's tokens into the tokens deputy issues from
	// them: {deputy_claim: their_claim}, e.g. {tid: tid, email: preferred_username}.
	Claims map[string]string `yaml:"claims"`
	// RequiredClaims must be present with these values (a string claim equal to it, or
	// an array of strings holding it), e.g. {tid: <tenant id>, azp: <client id>}.
	RequiredClaims map[string]string `yaml:"required_claims"`
	// Skew is the clock skew tolerated on exp, nbf and iat; default 60s, at most 5m.
	Skew Duration `yaml:"skew"`
}

// SAMLIdP is a SAML 2.0 identity provider whose assertions may be exchanged.
type SAMLIdP struct {
	Name            string `yaml:"name"`
	EntityID        string `yaml:"entity_id"`
	CertificateFile string `yaml:"certificate_file"`
	MetadataFile    string `yaml:"metadata_file"`
	Audience        string `yaml:"audience"`
	// SubjectAttribute names the attribute (by Name or FriendlyName) whose one value
	// becomes the subject of exchanged tokens; default none: the NameID.
	SubjectAttribute string `yaml:"subject_attribute"`
}

// User is a local account.
type User struct {
	Username     string            `yaml:"username"`
	PasswordHash string            `yaml:"password_hash"`
	Password     string            `yaml:"password"`
	Claims       map[string]string `yaml:"claims"`
	// Roles grant access to parts of deputy beyond signing in: each is one of
	// [KnownRoles], e.g. [RoleAuditor].
	Roles []string `yaml:"roles"`
}

// UpstreamIdP is an identity provider users can sign in through.
type UpstreamIdP struct {
	Name         string `yaml:"name"`
	Type         string `yaml:"type"` // oidc | saml
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Scopes requested from an OIDC IdP; default [openid, profile, email].
	Scopes []string `yaml:"scopes"`
	// SubjectClaim is the OIDC claim or SAML attribute that becomes the local
	// subject; default "sub" (oidc) or the NameID (saml, when empty).
	SubjectClaim string `yaml:"subject_claim"`
	// SubjectPrefix is put before the upstream subject, to keep upstream and local
	// accounts apart (e.g. "google:"); default none.
	SubjectPrefix string `yaml:"subject_prefix"`
	// SAML: the IdP's single sign-on URL (HTTP-Redirect binding) and signing
	// certificate (PEM) or metadata file.
	SSOURL          string `yaml:"sso_url"`
	CertificateFile string `yaml:"certificate_file"`
	MetadataFile    string `yaml:"metadata_file"`
	// LinkLocalAccounts lets an identity of this IdP sign in as the local account
	// (users[], or added with `deputy users add`) whose username is its subject
	// (after subject_prefix), with that account's claims. Default false: such a
	// sign-in is refused, so that whoever controls an upstream account "alice"
	// does not become the local alice.
	LinkLocalAccounts bool `yaml:"link_local_accounts"`
}

// Duration is a time.Duration written as "5m" in YAML and environment variables.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults applied by [Config.SetDefaults] to keys left unset (zero). The README's
// configuration reference is copied from here.
const (
	// DefaultListen is listen's default: loopback only.
	DefaultListen = "127.0.0.1:8080"
	// DefaultStorageDriver is storage.driver's default: the embedded database.
	DefaultStorageDriver = DriverSQLite
	// DefaultStorageDSN is storage.dsn's default when the driver is sqlite: a file in
	// the working directory. PostgreSQL has no default DSN.
	DefaultStorageDSN = "deputy.db"
	// DefaultSigningAlgorithm is signing.algorithm's default.
	DefaultSigningAlgorithm = "ES256"
	// DefaultIDTokenAlgorithm is signing.id_token_algorithm's default: the
	// algorithm OpenID Connect Core §15.1 requires every provider to support, so
	// that every relying party can verify deputy's ID tokens.
	DefaultIDTokenAlgorithm = "RS256"
	// DefaultRetireAfter is signing.retire_after's default: how long a rotated-out key
	// stays in the JWKS, so tokens it signed still verify.
	DefaultRetireAfter = 24 * time.Hour
	// DefaultAccessTokenTTL is tokens.access_token_ttl's default.
	DefaultAccessTokenTTL = 5 * time.Minute
	// DefaultRefreshTokenTTL is tokens.refresh_token_ttl's default.
	DefaultRefreshTokenTTL = 24 * time.Hour
	// DefaultIDTokenTTL is tokens.id_token_ttl's default.
	DefaultIDTokenTTL = 5 * time.Minute
	// DefaultTxnTokenTTL is txn_tokens.ttl's default: a transaction token lives
	// as long as the call graph of one request, not a session.
	DefaultTxnTokenTTL = time.Minute
	// DefaultCodeTTL is tokens.code_ttl's default (RFC 6749 §4.1.2 recommends at
	// most 10 minutes).
	DefaultCodeTTL = time.Minute
	// DefaultSessionTTL is tokens.session_ttl's default.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultStorageTimeout is storage.timeout's default.
	DefaultStorageTimeout = 5 * time.Second
	// DefaultAuditMaxBatch is audit.max_batch's default.
	DefaultAuditMaxBatch = 256
	// DefaultMaxBodyBytes is limits.max_body_bytes's default (64 KiB).
	DefaultMaxBodyBytes = 65536
	// DefaultMaxTokenBytes is limits.max_token_bytes's default (16 KiB).
	DefaultMaxTokenBytes = 16384
	// DefaultMaxInFlight is limits.max_in_flight's default: about 2× the 256
	// concurrent clients the README's Performance section measures on 2 cores.
	DefaultMaxInFlight = 512
	// DefaultRatePerSecond and DefaultRateBurst are limits.rate's defaults: above
	// the ~7,000 req/s the README's Performance runs reach from one client (the
	// benchmark's clients are never limited); operators lower them.
	DefaultRatePerSecond = 10000
	DefaultRateBurst     = 20000
	// MaxClientIDBytes bounds clients[].id: the audit trail keeps at most this many
	// bytes of a client id (internal/audit's bound of the same name).
	MaxClientIDBytes = 256
	// DefaultMaxChain is exchange.policies[].max_chain's default (also when 0).
	DefaultMaxChain = 4
	// DefaultSubjectClaim is trusted_issuers[].subject_claim's default.
	DefaultSubjectClaim = "sub"
	// DefaultTrustedIssuerAlgorithm is trusted_issuers[].algorithms's default, the
	// algorithm every common OIDC provider signs with. The list is an allow-list:
	// nothing else is accepted from that issuer.
	DefaultTrustedIssuerAlgorithm = "RS256"
	// DefaultTrustedIssuerSkew is trusted_issuers[].skew's default.
	DefaultTrustedIssuerSkew = 60 * time.Second
	// MaxTrustedIssuerSkew bounds trusted_issuers[].skew.
	MaxTrustedIssuerSkew = 5 * time.Minute
	// DefaultReadHeaderTimeout is http.read_header_timeout's default.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout is http.read_timeout's default.
	DefaultReadTimeout = 15 * time.Second
	// DefaultWriteTimeout is http.write_timeout's default.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout is http.idle_timeout's default.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes is http.max_header_bytes's default (64 KiB).
	DefaultMaxHeaderBytes = 65536
	// DefaultShutdownDrain is shutdown.drain's default.
	DefaultShutdownDrain = 5 * time.Second
	// DefaultDPoPMaxAge is dpop.max_age's default (RFC 9449 §11.1 leaves it to the
	// server; a minute covers a client's clock and a retry).
	DefaultDPoPMaxAge = 60 * time.Second
	// DefaultShutdownTimeout is shutdown.timeout's default.
	DefaultShutdownTimeout = 20 * time.Second
)

// Other defaults, which depend on other keys:
//
//   - issuer: "http://" + listen, or "https://" + listen when tls is set; only when
//     listen names a host (not ":8080" or "0.0.0.0:8080", where clients could not use
//     it, so issuer must then be set);
//   - clients[].auth_method: client_secret_basic when secret or secret_hash is set,
//     else private_key_jwt when jwks_file is set, else none (a public client);
//   - exchange.policies[].name: "policies[i]", i its index;
//   - exchange.policies[].subject_issuers: [self];
//   - exchange.policies[].subject_token_types: [access_token];
//   - exchange.policies[].mode: delegation;
//   - exchange.policies[].requested_token_types: [access_token];
//   - saml_idps[].audience: the issuer (deputy's SAML entity id).

// Values of storage.driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Values of exchange.policies[].mode (design §5).
const (
	ModeDelegation    = "delegation"
	ModeImpersonation = "impersonation"
)

// SubjectIssuerSelf in exchange.policies[].subject_issuers names deputy itself.
const SubjectIssuerSelf = "self"

// Values of upstream_idps[].type.
const (
	UpstreamOIDC = "oidc"
	UpstreamSAML = "saml"
)

// The values of trusted_proxy_header.
const (
	ProxyHeaderXForwardedFor = "X-Forwarded-For"
	ProxyHeaderForwarded     = "Forwarded"
)

// RoleAuditor is the role of a local account (users[].roles, `deputy users add
// --role`) that opens the audit explorer at /audit/ui.
const RoleAuditor = "auditor"

// KnownRoles returns the roles a local account may hold, in the order the help
// texts list them.
func KnownRoles() []string { return slices.Clone(roles) }

// UpstreamLocal is the idp of sign-ins with deputy's own accounts (sessions,
// tokens' idp claim); no upstream_idps entry may take the name.
const UpstreamLocal = "local"

// Client returns the client with the given id, or nil.
func (c *Config) Client(id string) *Client {
	for i := range c.Clients {
		if c.Clients[i].ID == id {
			return &c.Clients[i]
		}
	}
	return nil
}

// Audience returns the audience with the given id, or nil.
func (c *Config) Audience(id string) *Audience {
	for i := range c.Audiences {
		if c.Audiences[i].ID == id {
			return &c.Audiences[i]
		}
	}
	return nil
}

// SigningAlgorithms is every algorithm deputy signs with under this
// configuration: signing.algorithm (access tokens) first, then the ID token
// algorithms — RS256 always, as OpenID Connect Discovery requires it among
// id_token_signing_alg_values_supported, signing.id_token_algorithm and every
// client's id_token_signed_response_alg. Each has a signing key.
func (c *Config) SigningAlgorithms() []string {
	algs := []string{c.Signing.Algorithm}
	for _, a := range append([]string{c.Signing.IDTokenAlgorithm}, c.IDTokenAlgorithms()...) {
		if a != "" && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs
}

// IDTokenAlgorithms is what ID tokens may be signed with, for discovery's
// id_token_signing_alg_values_supported: RS256 (OpenID Connect Core §15.1),
// signing.id_token_algorithm and every client's id_token_signed_response_alg.
func (c *Config) IDTokenAlgorithms() []string {
	algs := []string{"RS256"}
	add := func(a string) {
		if a != "" && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	add(c.Signing.IDTokenAlgorithm)
	for _, cl := range c.Clients {
		add(cl.IDTokenSignedResponseAlg)
	}
	return algs
}

// HasGrantType reports whether the client may use the grant type (a value of
// grant_types, such as oauth.GrantTokenExchange).
func (c *Client) HasGrantType(grantType string) bool {
	return slices.Contains(c.GrantTypes, grantType)
}

// Public reports whether the client has no credentials (auth_method none).
func (c *Client) Public() bool { return c.AuthMethod == oauth.AuthNone }

// ProxyPrefix reads one trusted_proxies entry: a CIDR ("10.0.0.0/8",
// "2001:db8::/32") or a single address, which is its own /32 or /128.
func ProxyPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set past its /%d; write %s", s, p.Bits(), p.Masked())
	}
	if a := p.Addr(); a.Is4In6() {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96), nil
	}
	return p, nil
}

// CertProxyPrefixes is tls.trusted_proxies parsed; entries that do not parse
// (which Validate reports) are left out.
func (c *Config) CertProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TLS.TrustedProxies {
		if p, err := ProxyPrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// WantsClientCertificates reports whether the HTTPS listener asks clients for a
// certificate (RFC 8705): tls.client_ca_file is set, or a client authenticates
// with one or has certificate-bound tokens.
func (c *Config) WantsClientCertificates() bool {
	if c.TLS.ClientCAFile != "" {
		return true
	}
	for _, cl := range c.Clients {
		if cl.AuthMethod == oauth.AuthTLSClient || cl.AuthMethod == oauth.AuthSelfSignedTLSClient || cl.TLSClientCertificateBoundAccessTokens {
			return true
		}
	}
	return false
}

// TrustedProxyPrefixes is trusted_proxies parsed; entries that do not parse
// (which Validate reports) are left out.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := ProxyPrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
