// Package config is deputy's typed configuration: the YAML schema of design §3,
// strict loading (unknown keys are errors), DEPUTY_… environment overrides, defaults,
// and a table of validation checks that name the key at fault.
package config

import (
	"time"
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
	TrustedIssuers []TrustedIssuer `yaml:"trusted_issuers"`
	SAMLIdPs       []SAMLIdP       `yaml:"saml_idps"`
	Users          []User          `yaml:"users"`
	UpstreamIdPs   []UpstreamIdP   `yaml:"upstream_idps"`
	Limits         Limits          `yaml:"limits"`
}

// TLS configures HTTPS; both files or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Storage selects the database.
type Storage struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
}

// Signing configures token signing keys.
type Signing struct {
	Algorithm string `yaml:"algorithm"` // ES256 | EdDSA | RS256 | PS256
	// RetireAfter is how long a rotated-out key stays published in the JWKS.
	RetireAfter Duration `yaml:"retire_after"`
}

// Tokens configures lifetimes.
type Tokens struct {
	AccessTokenTTL  Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"`
	IDTokenTTL      Duration `yaml:"id_token_ttl"`
}

// Audit configures the audit writer.
type Audit struct {
	// MaxBatch is the most events one commit carries.
	MaxBatch int `yaml:"max_batch"`
}

// Limits bounds request sizes.
type Limits struct {
	MaxBodyBytes  int64 `yaml:"max_body_bytes"`  // token endpoint form body
	MaxTokenBytes int   `yaml:"max_token_bytes"` // one subject or actor token
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
}

// SAMLIdP is a SAML 2.0 identity provider whose assertions may be exchanged.
type SAMLIdP struct {
	Name            string `yaml:"name"`
	EntityID        string `yaml:"entity_id"`
	CertificateFile string `yaml:"certificate_file"`
	MetadataFile    string `yaml:"metadata_file"`
	Audience        string `yaml:"audience"`
}

// User is a local account.
type User struct {
	Username     string            `yaml:"username"`
	PasswordHash string            `yaml:"password_hash"`
	Password     string            `yaml:"password"`
	Claims       map[string]string `yaml:"claims"`
}

// UpstreamIdP is an identity provider users can sign in through.
type UpstreamIdP struct {
	Name         string `yaml:"name"`
	Type         string `yaml:"type"` // oidc | saml
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
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
