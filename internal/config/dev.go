package config

import (
	"path/filepath"

	"github.com/deputy-auth/deputy/oauth"
)

// Dev returns the development setup `deputy serve` runs without a configuration
// file, with defaults applied; it passes [Config.Validate]. Its SQLite database is
// dir/deputy-dev.db. It sets up the flow of design §1:
//
//   - audiences https://api1.example (payments:read, payments:write; client api1),
//     https://api2.example (ledger:read, ledger:write, fraud:check; client api2) and
//     https://api3.example (fraud:check; client api3);
//   - client web-app (secret web-app-secret): authorization_code, refresh_token and
//     client_credentials, redirect URI http://127.0.0.1:9000/callback, tokens for
//     https://api1.example that api1 may act on (may_act);
//   - clients api1, api2, api3 (secrets api1-secret, …) and support
//     (support-secret): client_credentials and token exchange;
//   - client auditor (auditor-secret) with the deputy:audit scope: it reads the
//     audit trail over HTTP (/audit/events, /audit/trace);
//   - policies: api1 may exchange for https://api2.example (ledger:read,
//     ledger:write, fraud:check), api2 for https://api3.example (fraud:check), both by
//     delegation — api2 only for a token that came from api1 (a condition: the
//     outermost actor of its act chain is api1); support may impersonate for
//     https://api2.example (ledger:read);
//   - users alice (password alice-password) and bob (bob-password).
//
// The secrets and passwords are in the clear, for a demo: never use them elsewhere.
func Dev(dir string) *Config {
	exchangeGrants := func() []string { return []string{oauth.GrantClientCredentials, oauth.GrantTokenExchange} }
	api := func(n, audience string, scopes ...string) Client {
		return Client{
			ID:         "api" + n,
			Secret:     "api" + n + "-secret",
			GrantTypes: exchangeGrants(),
			Scopes:     scopes,
			Audiences:  []string{audience},
		}
	}
	c := &Config{
		Issuer:  "http://127.0.0.1:8080",
		Listen:  DefaultListen,
		Storage: Storage{Driver: DriverSQLite, DSN: filepath.Join(dir, "deputy-dev.db")},
		Audiences: []Audience{
			{ID: "https://api1.example", Scopes: []string{"payments:read", "payments:write"}, Client: "api1"},
			// A scope reaches the end of a chain only if every hop's audience accepts
			// it: the ledger passes fraud:check on to the fraud service.
			{ID: "https://api2.example", Scopes: []string{"ledger:read", "ledger:write", "fraud:check"}, Client: "api2"},
			{ID: "https://api3.example", Scopes: []string{"fraud:check"}, Client: "api3"},
		},
		Clients: []Client{
			{
				ID:           "web-app",
				Secret:       "web-app-secret",
				GrantTypes:   []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials},
				RedirectURIs: []string{"http://127.0.0.1:9000/callback"},
				Scopes:       []string{"openid", "profile", "payments:read", "payments:write", "ledger:read", "fraud:check"},
				Audiences:    []string{"https://api1.example"},
				MayAct:       []string{"api1"},
			},
			api("1", "https://api1.example", "payments:read", "payments:write"),
			api("2", "https://api2.example", "ledger:read", "ledger:write"),
			api("3", "https://api3.example", "fraud:check"),
			{ID: "support", Secret: "support-secret", GrantTypes: exchangeGrants()},
			{ID: "auditor", Secret: "auditor-secret", GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{"deputy:audit"}},
		},
		Exchange: Exchange{Policies: []Policy{
			{
				Name:      "api1-to-api2",
				Client:    "api1",
				Audiences: []string{"https://api2.example"},
				Scopes:    []string{"ledger:read", "ledger:write", "fraud:check"},
				Mode:      ModeDelegation,
				MaxChain:  4,
			},
			{
				Name:      "api2-to-api3",
				Client:    "api2",
				Audiences: []string{"https://api3.example"},
				Scopes:    []string{"fraud:check"},
				Mode:      ModeDelegation,
				MaxChain:  4,
				// The fraud service is reached only on behalf of api1: the ledger's
				// token must come from api1 (not, say, from support's impersonation).
				Condition: `size(subject.act) > 0 && subject.act[0].sub == "api1"`,
			},
			{
				Name:      "support-impersonate",
				Client:    "support",
				Audiences: []string{"https://api2.example"},
				Scopes:    []string{"ledger:read"},
				Mode:      ModeImpersonation,
			},
		}},
		Users: []User{
			{Username: "alice", Password: "alice-password", Claims: map[string]string{"email": "alice@example.com", "name": "Alice"}},
			{Username: "bob", Password: "bob-password", Claims: map[string]string{"email": "bob@example.com", "name": "Bob"}},
		},
	}
	c.SetDefaults()
	return c
}
