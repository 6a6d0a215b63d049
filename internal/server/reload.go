package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// reloadable are the top-level keys a reload applies (README "Drain and
// reload"); every other key keeps the value the node started with until a
// restart.
var reloadable = []string{"audiences", "clients", "exchange", "trusted_issuers", "saml_idps", "users"}

// ErrReloadRefused: the file was not applied; the running configuration is
// unchanged.
var ErrReloadRefused = errors.New("configuration reload refused")

// ReloadFile applies the reloadable keys of the configuration file — clients,
// audiences, exchange policies, users, trusted issuers and SAML IdPs — read with
// env as at start (config.Load: relative paths from the file's directory, the
// DEPUTY_… overrides). The whole new configuration is checked and its parts
// built (certificate, JWKS and key files read) first; if anything is wrong,
// every problem is logged at error level, one line each naming its key, a
// config.reloaded event with decision deny records them, and nothing changes
// (ErrReloadRefused). Otherwise a config.reloaded event records the file's
// SHA-256 and what was added, removed and changed (names only), and then new
// requests are served by the new configuration while those already running
// finish on the old one.
//
// Keys that are not reloadable but differ from the running values are logged
// as needing a restart (and listed in the event), and the rest is applied: an
// operator removing a leaked client must not wait on an unrelated edit of
// listen. A reloadable change the running node cannot serve without a restart
// (a signing algorithm it has no key for, mutual TLS its listener does not ask
// for) is a problem that refuses the file.
//
// Tokens already issued are not touched: they keep the lifetime they had.
func (s *Server) ReloadFile(ctx context.Context, file string, env []string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.cur.Load()
	cfg, sum, err := config.LoadSum(file, env)
	d := reloadDetail{File: file}
	if sum != ([32]byte{}) {
		d.SHA256 = hex.EncodeToString(sum[:])
	}
	var next *generation
	if err == nil {
		run := running(cur.cfg, cfg)
		d.Problems = append(d.Problems, s.unservable(run)...)
		// The file is valid on its own; it may not be with the running values
		// of the keys that need a restart.
		err = run.Validate()
		if err == nil && len(d.Problems) == 0 {
			next, err = s.build(ctx, run, cur)
		}
	}
	d.Problems = append(d.Problems, problems(err)...)
	if len(d.Problems) > 0 {
		for _, p := range d.Problems {
			s.log.Error("reload: configuration refused", "file", file, "problem", p)
		}
		s.log.Error("reload: the running configuration is unchanged", "file", file, "problems", len(d.Problems), "sha256", d.SHA256)
		reason := fmt.Sprintf("configuration file refused, the running configuration is unchanged: %d problem(s)", len(d.Problems))
		if rerr := s.recordReload(ctx, store.DecisionDeny, reason, d); rerr != nil {
			s.log.Error("reload: the refusal could not be audited", "err", rerr)
		}
		return fmt.Errorf("%w: %d problem(s) in %s", ErrReloadRefused, len(d.Problems), file)
	}

	d.RestartRequired = restartRequired(s.Config, cfg)
	for _, k := range d.RestartRequired {
		s.log.Warn("reload: this key changed in the file but needs a restart to apply; the running value stays", "key", k)
	}
	d.diff(cur.cfg, next.cfg)
	// Recorded before it applies: the trail never misses a configuration that
	// served a request.
	if err := s.recordReload(ctx, store.DecisionAllow, "configuration file reloaded", d); err != nil {
		s.log.Error("reload: not applied, its audit record could not be written; the running configuration is unchanged", "file", file, "err", err)
		return fmt.Errorf("%w: audit: %w", ErrReloadRefused, err)
	}
	s.cur.Store(next)
	s.log.Info("configuration reloaded", "file", file, "sha256", d.SHA256,
		"added", summary(d.Added), "removed", summary(d.Removed), "changed", summary(d.Changed))
	return nil
}

// running is the configuration a reload runs: the running one with the
// reloadable keys of the file.
func running(cur, file *config.Config) *config.Config {
	run := *cur
	run.Audiences, run.Clients, run.Exchange = file.Audiences, file.Clients, file.Exchange
	run.TrustedIssuers, run.SAMLIdPs, run.Users = file.TrustedIssuers, file.SAMLIdPs, file.Users
	return &run
}

// unservable lists what the reloadable keys of run ask of parts that are fixed
// at start: signing keys (one per algorithm) and the listener's request for TLS
// client certificates.
func (s *Server) unservable(run *config.Config) []string {
	var out []string
	have := s.Config.SigningAlgorithms()
	for i, c := range run.Clients {
		if a := c.IDTokenSignedResponseAlg; a != "" && !slices.Contains(have, a) {
			out = append(out, fmt.Sprintf("clients[%d].id_token_signed_response_alg: this node has no %s signing key; restart deputy to add this client", i, a))
		}
	}
	if run.WantsClientCertificates() && !s.Config.WantsClientCertificates() {
		for i, c := range run.Clients {
			if c.AuthMethod == oauth.AuthTLSClient || c.AuthMethod == oauth.AuthSelfSignedTLSClient || c.TLSClientCertificateBoundAccessTokens {
				out = append(out, fmt.Sprintf("clients[%d]: uses TLS client certificates, which this node's listener does not ask for; restart deputy to add this client", i))
			}
		}
	}
	return out
}

// problems lists err one problem a line: a configuration's problems each with
// their key, a build's joined errors each, any other error as it is.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		out := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			out[i] = p.String()
		}
		return out
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// restartRequired lists the top-level keys other than the reloadable ones whose
// values in the file differ from those the node started with.
func restartRequired(started, file *config.Config) []string {
	var out []string
	a, b := reflect.ValueOf(started).Elem(), reflect.ValueOf(file).Elem()
	t := a.Type()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" || slices.Contains(reloadable, key) {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}

// reloadDetail is the Detail of a config.reloaded event. It names what changed,
// never a secret, password hash or key.
type reloadDetail struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256,omitempty"`
	// Added, Removed and Changed name the entries by reloadable key: clients,
	// audiences, policies (by name, or "policies[i]"), users, trusted_issuers,
	// saml_idps.
	Added           map[string][]string `json:"added,omitempty"`
	Removed         map[string][]string `json:"removed,omitempty"`
	Changed         map[string][]string `json:"changed,omitempty"`
	RestartRequired []string            `json:"restart_required,omitempty"`
	// Problems are why a file was refused (decision deny), one per problem.
	Problems []string `json:"problems,omitempty"`
}

// diff fills Added, Removed and Changed from the running configuration old to
// new.
func (d *reloadDetail) diff(old, new *config.Config) {
	diffNamed(d, "clients", old.Clients, new.Clients, func(_ int, c config.Client) string { return c.ID })
	diffNamed(d, "audiences", old.Audiences, new.Audiences, func(_ int, a config.Audience) string { return a.ID })
	diffNamed(d, "policies", old.Exchange.Policies, new.Exchange.Policies, func(i int, p config.Policy) string { return policyName(p.Name, i) })
	diffNamed(d, "users", old.Users, new.Users, func(_ int, u config.User) string { return u.Username })
	diffNamed(d, "trusted_issuers", old.TrustedIssuers, new.TrustedIssuers, func(_ int, t config.TrustedIssuer) string { return t.Name })
	diffNamed(d, "saml_idps", old.SAMLIdPs, new.SAMLIdPs, func(_ int, p config.SAMLIdP) string { return p.Name })
}

func diffNamed[T any](d *reloadDetail, kind string, old, new []T, name func(int, T) string) {
	before := make(map[string]T, len(old))
	for i, v := range old {
		before[name(i, v)] = v
	}
	add := func(m *map[string][]string, n string) {
		if *m == nil {
			*m = map[string][]string{}
		}
		(*m)[kind] = append((*m)[kind], n)
	}
	seen := map[string]bool{}
	for i, v := range new {
		n := name(i, v)
		seen[n] = true
		switch was, ok := before[n]; {
		case !ok:
			add(&d.Added, n)
		case !reflect.DeepEqual(was, v):
			add(&d.Changed, n)
		}
	}
	for i, v := range old {
		if n := name(i, v); !seen[n] {
			add(&d.Removed, n)
		}
	}
}

// summary is a change list for the log: "clients: a, b; policies: p".
func summary(m map[string][]string) string {
	var parts []string
	for _, k := range []string{"clients", "audiences", "policies", "users", "trusted_issuers", "saml_idps"} {
		if len(m[k]) > 0 {
			parts = append(parts, k+": "+strings.Join(m[k], ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// recordReload records a config.reloaded event, waiting at most the storage
// timeout for its commit.
func (s *Server) recordReload(ctx context.Context, decision, reason string, d reloadDetail) error {
	detail, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if t := s.Config.Storage.Timeout.D(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	return s.Audit.Record(ctx, &store.AuditEvent{
		Type: store.EventConfigReloaded, Decision: decision, Reason: reason, Detail: string(detail),
	})
}
