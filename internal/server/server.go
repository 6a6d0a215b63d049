// Package server assembles a deputy node from its configuration: storage, keys,
// the revoked-token set, the audit writer, clients, exchange policies, grants and the
// HTTP handler. cmd/deputy and the tests use it, so both run the same wiring.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/httpapi"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/internal/upstream"
	"github.com/deputy-auth/deputy/oauth"
)

// Server is one assembled deputy node.
type Server struct {
	// Config is the configuration the node started with. A reload (ReloadFile)
	// replaces the reloadable keys that serve requests, not this.
	Config  *config.Config
	Store   *sqlstore.DB
	Keys    *keys.Set
	Revoked *token.Revoked
	Audit   *audit.Writer
	Handler http.Handler
	// Metrics serves /metrics: on metrics.listen when that is set (Handler then
	// does not), else Handler serves it too.
	Metrics http.Handler
	log     *slog.Logger
	// disp and throttled sum up unauthenticated denials (token endpoint and the
	// like; sign-ins refused by throttling); Maintain and Close flush them.
	disp      *grant.Dispatcher
	throttled *audit.Aggregator

	// cur is the generation of the reloadable configuration that serves new
	// requests (see generation); reloadMu serialises reloads.
	cur      atomic.Pointer[generation]
	reloadMu sync.Mutex
	// What every generation is built on: they are the node's, not the
	// configuration's.
	tokens     *token.Service
	met        *nodeMetrics
	fetches    *jwksFetches
	reg        *prometheus.Registry
	now        func() time.Time
	upstreams  []upstream.Provider
	linked     map[string]bool // upstream providers linked to local accounts
	remembered *claimCache

	// revSeq is the number of the last revocation read from the store (see
	// SyncRevocations); only Maintain's goroutine uses it after New.
	revSeq int64
	// stopUpstreams ends the background discovery of upstream providers.
	stopUpstreams context.CancelFunc
	// syncedAt is when SyncRevocations last succeeded (unix nanoseconds), 0 until
	// Maintain runs; Ready fails once it is older than staleAfter.
	syncedAt   atomic.Int64
	staleAfter time.Duration
}

// OpenStore opens and migrates the configured database.
func OpenStore(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
	st, err := sqlstore.Open(ctx, cfg.Storage.Driver, cfg.Storage.DSN)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("storage: migrate: %w", err)
	}
	return st, nil
}

// KeyOptions are the options of the signing keys under cfg, for every process
// that opens them (serve, keys rotate): a key per algorithm deputy signs with,
// signing.algorithm the default, and the key-encryption key when one is
// configured. Its errors name the key and never hold the key-encryption key.
func KeyOptions(cfg *config.Config) (keys.Options, error) {
	algs := cfg.SigningAlgorithms()
	opts := keys.Options{Algorithm: algs[0], MoreAlgorithms: algs[1:], RetireAfter: cfg.Signing.RetireAfter.D()}
	var err error
	switch {
	case cfg.Signing.KeyEncryptionKeyFile != "" && cfg.Signing.KeyEncryptionKey != "":
		return opts, errors.New("signing.key_encryption_key: set either signing.key_encryption_key_file or signing.key_encryption_key, not both")
	case cfg.Signing.KeyEncryptionKeyFile != "":
		if opts.KEK, err = keys.LoadKEK(cfg.Signing.KeyEncryptionKeyFile); err != nil {
			return opts, fmt.Errorf("signing.key_encryption_key_file: %w", err)
		}
	case cfg.Signing.KeyEncryptionKey != "":
		if opts.KEK, err = keys.ParseKEK([]byte(cfg.Signing.KeyEncryptionKey)); err != nil {
			return opts, fmt.Errorf("signing.key_encryption_key: %w", err)
		}
	}
	return opts, nil
}

// Option changes how New assembles a node.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock makes the node's HTTP handler read the time of each request from now
// instead of time.Now (tests that must not depend on how long they run).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New assembles a node. Close releases it.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (_ *Server, err error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{Config: cfg, log: log, staleAfter: revocationsStale}
	if s.Store, err = OpenStore(ctx, cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	kopts, err := KeyOptions(cfg)
	if err != nil {
		return nil, err
	}
	s.Keys, err = keys.Open(ctx, s.Store, kopts)
	if err != nil {
		return nil, err
	}
	s.Revoked = token.NewRevoked()
	revs, err := s.Store.ListRevocations(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("storage: load revocations: %w", err)
	}
	s.Revoked.Add(revs)
	for _, r := range revs {
		s.revSeq = max(s.revSeq, r.Seq)
	}
	// Revocations recorded since (by other nodes) are read by the first sync.

	reg := httpapi.NewRegistry()
	met := newNodeMetrics(reg)
	s.Audit = audit.NewWriter(s.Store, s.Store, audit.WriterOptions{
		MaxBatch: cfg.Audit.MaxBatch,
		// An exchange whose subject token was revoked while it was being decided is
		// refused here, in the writer, serialised with the revocation itself.
		Admit: func(e *store.AuditEvent) error {
			if store.IssuesFromParent(e) && s.Revoked.Contains(e.ParentJTI) {
				return token.ErrRevoked
			}
			return nil
		},
		OnRevoked: func(revs []store.Revocation) {
			s.Revoked.Add(revs)
			met.revoked(revs)
		},
		StoreTimeout: cfg.Storage.Timeout.D(),
		OnCommit:     met.committed,
	})
	met.watchQueue(reg, s.Audit)
	met.watchSync(reg, func() float64 {
		if t := s.syncedAt.Load(); t != 0 {
			return time.Since(time.Unix(0, t)).Seconds()
		}
		return 0 // not started yet: New has just read them all
	})

	s.tokens = token.NewService(cfg.Issuer, s.Keys, s.Revoked, cfg.Limits.MaxTokenBytes)
	s.met, s.fetches, s.reg, s.now = met, newJWKSFetches(reg), reg, o.now
	// Upstream OpenID Providers are discovered in the background, for as long as
	// the node lives: one that is down does not stop the start.
	var upctx context.Context
	upctx, s.stopUpstreams = context.WithCancel(context.WithoutCancel(ctx))
	s.linked = map[string]bool{}
	for _, u := range cfg.UpstreamIdPs {
		p, err := upstream.New(upctx, u, cfg.Issuer, s.Store, log)
		if err != nil {
			return nil, err
		}
		s.upstreams = append(s.upstreams, p)
		s.linked[u.Name] = u.LinkLocalAccounts
	}
	s.remembered = newClaimCache(10000)
	s.throttled = audit.NewAggregator(s.Audit)
	g, err := s.build(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	s.cur.Store(g)
	s.disp = g.disp
	s.Handler = http.HandlerFunc(s.serveHTTP)
	s.Metrics = g.api.Metrics()
	return s, nil
}

// generation is one snapshot of the reloadable configuration — clients,
// audiences, exchange policies, users, trusted issuers and SAML IdPs — and of
// everything built from it, down to the HTTP handler that serves it (README
// "Drain and reload"). It is never changed: a reload builds a new one.
//
// Why one snapshot behind one atomic pointer, and not each part behind its own:
// a request reads the pointer once (serveHTTP), and everything it reaches after
// that — client authentication, the subject token's verification, the policies,
// the audiences' clients, the accounts — hangs off that generation's handler. So
// no request sees a new client with old policies, without the configuration
// being handed through every call or a context. The cost on the hot path is one
// atomic load; a reload builds a whole new handler graph beside the old one,
// which the requests already running finish on. What is the node's rather than
// the configuration's (rate limits and in-flight cap, sign-in throttling, the
// summaries of unauthenticated denials, learned client secrets, trusted
// issuers' JWKS caches, metrics, the drain) is shared between generations by
// the Reconfigure methods of httpapi, grant, client and account, and
// subject.Options.Previous.
type generation struct {
	// cfg is the running configuration: the one the node started with, with the
	// reloadable keys of the last file reloaded.
	cfg      *config.Config
	api      *httpapi.Server
	disp     *grant.Dispatcher
	clients  *client.Registry
	accounts *account.Directory
	subjects *subject.Verifier
}

// API is the HTTP handler of the configuration serving new requests now; its
// node-wide state (rate limits, in-flight cap, drain) is that of every
// configuration the node has run.
func (s *Server) API() *httpapi.Server { return s.cur.Load().api }

// serveHTTP serves r with the generation current when it arrives, from start to
// end.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.cur.Load().api.ServeHTTP(w, r)
}

// build assembles the generation of cfg: the first (prev nil) at start, or the
// one that replaces prev on reload. On reload every part is built, so every
// problem is reported (joined), before any is returned.
func (s *Server) build(ctx context.Context, cfg *config.Config, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg}
	var errs []error
	var err error
	if prev == nil {
		if g.clients, err = client.NewRegistry(cfg.Clients, cfg.Issuer, cfg.Issuer+httpapi.PathToken, s.Store); err != nil {
			return nil, err
		}
		if cfg.TLS.ClientCAFile != "" {
			pool, err := client.LoadCAFile(cfg.TLS.ClientCAFile)
			if err != nil {
				return nil, err
			}
			g.clients.TrustClientCAs(pool)
		}
	} else if g.clients, err = prev.clients.Reconfigure(cfg.Clients); err != nil {
		errs = append(errs, err)
	}
	xchg, err := exchange.New(cfg.Exchange.Policies, cfg.Audiences, exchange.Options{
		IssuerURL: cfg.Issuer, AccessTTL: cfg.Tokens.AccessTokenTTL.D(),
		IDTokenTTL: cfg.Tokens.IDTokenTTL.D(), RefreshTTL: cfg.Tokens.RefreshTokenTTL.D(),
		TrustDomain: cfg.TxnTokens.TrustDomain, TxnTTL: cfg.TxnTokens.TTL.D(),
	})
	if err != nil {
		errs = append(errs, err)
	}
	if prev == nil {
		g.accounts, err = account.NewDirectory(cfg.Users, s.Store, account.Options{})
	} else {
		g.accounts, err = prev.accounts.Reconfigure(cfg.Users)
	}
	if err != nil {
		errs = append(errs, err)
	}
	var previous *subject.Verifier
	if prev != nil {
		previous = prev.subjects
	}
	g.subjects, err = subject.New(ctx, s.tokens, subject.Options{
		TrustedIssuers: cfg.TrustedIssuers, SAMLIdPs: cfg.SAMLIdPs, Nonces: s.Store, Refresh: s.Store,
		OnJWKSFetch: s.fetches.of(cfg), Previous: previous, TrustDomain: cfg.TxnTokens.TrustDomain,
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	accounts, remembered, linked := g.accounts, s.remembered, s.linked
	profiles := func(ctx context.Context, subject, idp string) map[string]string {
		return profileOf(ctx, accounts, remembered, linked, subject, idp)
	}
	users := &grant.UserTokens{
		Tokens: s.tokens, Refresh: s.Store, Profiles: profileSource(profiles), Accounts: localAccounts{accounts},
		AccessTTL: cfg.Tokens.AccessTokenTTL.D(), IDTokenTTL: cfg.Tokens.IDTokenTTL.D(), RefreshTTL: cfg.Tokens.RefreshTokenTTL.D(),
	}
	exchangeGrant := &grant.TokenExchange{Tokens: s.tokens, Subjects: g.subjects, Exchange: s.met.decider(xchg, cfg), Refresh: s.Store}
	grants := map[string]grant.Grant{
		oauth.GrantClientCredentials: &grant.ClientCredentials{Tokens: s.tokens, TTL: cfg.Tokens.AccessTokenTTL.D()},
		oauth.GrantTokenExchange:     exchangeGrant,
		// Entra's on-behalf-of flow: the same exchange, the same policies.
		oauth.GrantJWTBearer:         &grant.OnBehalfOf{Exchange: exchangeGrant},
		oauth.GrantAuthorizationCode: &grant.AuthorizationCode{Codes: s.Store, Revoker: s.Audit, Users: users, Trail: s.Store},
		oauth.GrantRefreshToken:      &grant.RefreshToken{Store: s.Store, Revoker: s.Audit, Users: users, Trail: s.Store},
	}
	if prev == nil {
		g.disp = grant.NewDispatcher(g.clients, s.Audit, grants, s.log)
	} else {
		g.disp = prev.disp.Reconfigure(g.clients, grants)
	}
	signIn := &signin.Service{
		Sessions: s.Store, Codes: s.Store, Audit: s.Audit, IsRevoked: s.tokens.IsRevoked, Accounts: accounts,
		Throttled:  s.throttled,
		SessionTTL: cfg.Tokens.SessionTTL.D(), CodeTTL: cfg.Tokens.CodeTTL.D(),
		CheckPassword: func(ctx context.Context, username, password, remoteAddr string, now time.Time) error {
			_, err := accounts.Authenticate(ctx, username, password, remoteAddr, now)
			return err
		},
	}

	audClients := map[string]string{}
	for _, a := range cfg.Audiences {
		audClients[a.ID] = a.Client
	}
	acfg := httpapi.Config{
		Issuer: cfg.Issuer, Dispatcher: g.disp, Tokens: s.tokens, Keys: s.Keys, Revoker: s.Audit,
		AudienceClients: audClients, Scopes: scopes(cfg), Ready: s.Ready, RequestTimeout: cfg.Storage.Timeout.D(),
		IDTokenAlgorithms: cfg.IDTokenAlgorithms(),
		MaxBodyBytes:      cfg.Limits.MaxBodyBytes, Log: s.log,
		SignIn: signIn, Clients: g.clients, SessionTTL: cfg.Tokens.SessionTTL.D(), Profiles: profiles,
		Upstreams: s.upstreams, RememberClaims: remembered.put, Refresh: s.Store,
		CORSOrigins: cfg.BrowserOrigins(), ScopeDescriptions: cfg.ScopeDescriptions(),
		Calls:          &audit.Reporter{Log: s.Store, Writer: s.Audit, AudienceClients: audClients},
		AuditLog:       s.Store,
		LinkedIdPs:     linked,
		TrustedProxies: cfg.TrustedProxyPrefixes(), ForwardedHeader: cfg.TrustedProxyHeader, Now: s.now,
		DPoP:               httpapi.DPoP{MaxAge: cfg.DPoP.MaxAge.D(), RequireNonce: cfg.DPoP.RequireNonce, Replay: s.Audit},
		ClientCertificates: cfg.WantsClientCertificates() || cfg.TLS.ClientCertHeader != "",
		ClientCertHeader:   cfg.TLS.ClientCertHeader, CertProxies: cfg.CertProxyPrefixes(),
		Registry:         s.reg,
		MetricsElsewhere: cfg.Metrics.Listen != "",
		MaxInFlight:      cfg.Limits.MaxInFlight,
		RatePerSecond:    cfg.Limits.Rate.PerSecond, RateBurst: cfg.Limits.Rate.Burst, Throttled: s.throttled,
	}
	// The audit explorer reads local accounts' roles (users[].roles).
	acfg.Roles = accounts
	if prev == nil {
		g.api, err = httpapi.New(acfg)
	} else {
		g.api, err = prev.api.Reconfigure(acfg)
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// profileOf returns the identity claims of subject as signed in through idp,
// for ID tokens and userinfo: a local account's (configured or stored) for a
// local sign-in, or for a provider linked to local accounts
// (link_local_accounts) when such an account exists; otherwise only what that
// provider released for that subject. A local account's claims never go to a
// subject of an unlinked provider, nor to a subject whose sign-in is unknown
// (a client's own token, a trusted issuer's subject), whatever its name.
func profileOf(ctx context.Context, accounts *account.Directory, remembered *claimCache, linked map[string]bool, subject, idp string) map[string]string {
	if idp == "" {
		return nil
	}
	if idp == signin.IdPLocal || linked[idp] {
		if a, err := accounts.Lookup(ctx, subject); err == nil {
			return a.Claims
		}
		if idp == signin.IdPLocal {
			return nil
		}
	}
	return remembered.get(idp, subject)
}

// Ready reports whether the node can serve: the database answers, and the audit
// writer can commit (its last commit did not fail, or a probe commit since
// succeeded; none is stuck past storage.timeout). A node that would fail every
// token request (full disk, read-only or hung database) is not ready, so a load
// balancer sends its traffic elsewhere.
//
// Once Maintain runs, the node must also have read the revocations other nodes
// (and `deputy users disable`) recorded within revocationsStale: one that cannot
// would go on accepting tokens revoked elsewhere.
func (s *Server) Ready(ctx context.Context) error {
	if err := s.Store.Ping(ctx); err != nil {
		return err
	}
	if t := s.syncedAt.Load(); t != 0 {
		if age := time.Since(time.Unix(0, t)); age > s.staleAfter {
			return fmt.Errorf("revocations recorded elsewhere not read for %v: %w", age.Round(100*time.Millisecond), store.ErrUnavailable)
		}
	}
	return s.Audit.Healthy(ctx)
}

// SetDraining marks the node as shutting down: /readyz answers 503 from now on,
// while requests are still served.
func (s *Server) SetDraining() { s.cur.Load().api.SetDraining() }

// claimCache keeps the claims upstream providers released at sign-in, per node and
// bounded, for ID tokens and userinfo of upstream users; keyed by provider and
// subject, so two providers' subjects of one name keep their own.
type claimCache struct {
	mu  sync.Mutex
	max int
	m   map[string]map[string]string
}

func newClaimCache(max int) *claimCache {
	return &claimCache{max: max, m: map[string]map[string]string{}}
}

func (c *claimCache) put(idp, subject string, claims map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // forget an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[idp+"\x00"+subject] = claims
}

func (c *claimCache) get(idp, subject string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[idp+"\x00"+subject]
}

// localAccounts adapts the account directory to grant.Accounts: users who signed
// in with a local account must still have it, enabled; others are not deputy's.
type localAccounts struct{ d *account.Directory }

func (a localAccounts) Usable(ctx context.Context, subject, idp string) error {
	if idp != signin.IdPLocal {
		return nil
	}
	return a.d.Usable(ctx, subject)
}

// profileSource adapts a claims lookup to grant.Profiles.
type profileSource func(ctx context.Context, subject, idp string) map[string]string

func (f profileSource) Claims(ctx context.Context, subject, idp string) map[string]string {
	return f(ctx, subject, idp)
}

// scopes is every scope an audience or client names, for discovery.
func scopes(cfg *config.Config) []string {
	set := map[string]bool{}
	for _, a := range cfg.Audiences {
		for _, sc := range a.Scopes {
			set[sc] = true
		}
	}
	for _, c := range cfg.Clients {
		for _, sc := range c.Scopes {
			set[sc] = true
		}
	}
	out := make([]string, 0, len(set))
	for sc := range set {
		out = append(out, sc)
	}
	sort.Strings(out)
	return out
}

// How often Maintain reads what other processes changed, when no notification
// came (SQLite has none; on PostgreSQL it is the safety net of LISTEN/NOTIFY).
const (
	revocationPoll = time.Second
	// revocationsStale is how long a node may fail to read revocations before
	// it reports itself not ready.
	revocationsStale = 10 * revocationPoll
	keyPoll          = 5 * time.Second
	// maintainStepTimeout bounds each database call of Maintain.
	maintainStepTimeout = 5 * time.Second
)

// Maintain keeps the in-memory state current until ctx ends: revocations recorded
// by other nodes and keys rotated by `deputy keys rotate` (or another node) are
// picked up — at once where the store notifies (PostgreSQL), within
// revocationPoll and keyPoll otherwise — and expired revocations and nonces are
// forgotten.
func (s *Server) Maintain(ctx context.Context) {
	s.syncedAt.Store(time.Now().UnixNano()) // New read them all
	// Notifications only mark what to read again; a burst of them costs one read.
	revsChanged, keysChanged := make(chan struct{}, 1), make(chan struct{}, 1)
	mark := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	go func() {
		err := s.Store.Watch(ctx, func(topic string) {
			switch topic {
			case "revocations":
				mark(revsChanged)
			case "keys":
				mark(keysChanged)
			default: // (re)connected: anything may have been missed
				mark(revsChanged)
				mark(keysChanged)
			}
		})
		if err != nil {
			s.log.Warn("storage: listening for other nodes' changes failed", "err", err)
		}
	}()
	revPoll := time.NewTicker(revocationPoll)
	reload := time.NewTicker(keyPoll)
	purge := time.NewTicker(time.Minute)
	defer revPoll.Stop()
	defer reload.Stop()
	defer purge.Stop()
	// Each step gets a deadline: a connection that hangs (a half-open socket after
	// a failover) must not stop the node from learning of revocations for long.
	step := func(what string, fn func(ctx context.Context) error) {
		sctx, cancel := context.WithTimeout(ctx, maintainStepTimeout)
		defer cancel()
		if err := fn(sctx); err != nil && ctx.Err() == nil {
			s.log.Warn(what+" failed", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-revsChanged:
			step("revocations: sync", s.SyncRevocations)
		case <-revPoll.C:
			step("revocations: sync", s.SyncRevocations)
		case <-keysChanged:
			step("keys: reload", s.Keys.Reload)
		case <-reload.C:
			step("keys: reload", s.Keys.Reload)
		case now := <-purge.C:
			s.Revoked.Purge(now)
			step("nonces: purge", func(ctx context.Context) error { return s.Store.PurgeNonces(ctx, now) })
			step("audit: summaries of unauthenticated denials", func(ctx context.Context) error { return s.flushDenials(ctx, now) })
			step("sign-in state: purge", func(ctx context.Context) error { return s.Store.PurgeExpired(ctx, now) })
		}
	}
}

// SyncRevocations adds to the revoked set every revocation recorded since the
// last one it read, by any node. Maintain calls it; it must not run concurrently
// with itself.
func (s *Server) SyncRevocations(ctx context.Context) error {
	const page = 1000
	for {
		revs, err := s.Store.RevocationsAfter(ctx, s.revSeq, page)
		if err != nil {
			return err
		}
		if len(revs) == 0 {
			s.syncedAt.Store(time.Now().UnixNano())
			return nil
		}
		s.Revoked.Add(revs)
		s.revSeq = revs[len(revs)-1].Seq
		if len(revs) < page {
			s.syncedAt.Store(time.Now().UnixNano())
			return nil
		}
	}
}

// flushDenials records the summaries of unauthenticated denials whose windows are
// over by now (all of them when now is zero).
func (s *Server) flushDenials(ctx context.Context, now time.Time) error {
	err := s.disp.FlushDenials(ctx, now)
	if s.throttled != nil {
		err = errors.Join(err, s.throttled.Flush(ctx, now))
	}
	return err
}

// Close records the summaries of unauthenticated denials still counted, flushes
// the audit writer and closes the store.
func (s *Server) Close() error {
	if s.stopUpstreams != nil {
		s.stopUpstreams()
	}
	if s.disp != nil && s.Audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), maintainStepTimeout)
		if err := s.flushDenials(ctx, time.Time{}); err != nil {
			s.log.Warn("audit: summaries of unauthenticated denials not recorded", "err", err)
		}
		cancel()
	}
	if s.Audit != nil {
		s.Audit.Close()
	}
	if s.Store != nil {
		return s.Store.Close()
	}
	return nil
}
