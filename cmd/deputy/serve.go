package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/client"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/httpapi"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// openStore opens and migrates the configured database.
func openStore(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
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

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, file := flags("serve")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	cfg, dev, err := loadConfig(*file)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	ks, err := keys.Open(ctx, st, keys.Options{Algorithm: cfg.Signing.Algorithm, RetireAfter: cfg.Signing.RetireAfter.D()})
	if err != nil {
		return err
	}
	revoked := token.NewRevoked()
	revs, err := st.ListRevocations(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("storage: load revocations: %w", err)
	}
	revoked.Add(revs)

	writer := audit.NewWriter(st, st, audit.WriterOptions{
		MaxBatch: cfg.Audit.MaxBatch,
		// An exchange whose subject token was revoked while it was being decided is
		// refused here, in the writer, serialised with the revocation itself.
		Admit: func(e *store.AuditEvent) error {
			if e.Decision == store.DecisionAllow && e.ParentJTI != "" && e.TokenJTI != "" && revoked.Contains(e.ParentJTI) {
				return token.ErrRevoked
			}
			return nil
		},
		OnRevoked: revoked.Add,
	})
	defer writer.Close()

	tokens := token.NewService(cfg.Issuer, ks, revoked, cfg.Limits.MaxTokenBytes)
	clients, err := client.NewRegistry(cfg.Clients, cfg.Issuer, cfg.Issuer+httpapi.PathToken, st)
	if err != nil {
		return err
	}
	xchg, err := exchange.New(cfg.Exchange.Policies, cfg.Audiences, exchange.Options{
		IssuerURL: cfg.Issuer, AccessTTL: cfg.Tokens.AccessTokenTTL.D(),
		IDTokenTTL: cfg.Tokens.IDTokenTTL.D(), RefreshTTL: cfg.Tokens.RefreshTokenTTL.D(),
	})
	if err != nil {
		return err
	}
	disp := grant.NewDispatcher(clients, writer, map[string]grant.Grant{
		oauth.GrantClientCredentials: &grant.ClientCredentials{Tokens: tokens, TTL: cfg.Tokens.AccessTokenTTL.D()},
		oauth.GrantTokenExchange:     &grant.TokenExchange{Tokens: tokens, Subjects: subject.NewVerifier(tokens), Exchange: xchg},
	}, log)

	audClients := map[string]string{}
	scopeSet := map[string]bool{}
	for _, a := range cfg.Audiences {
		audClients[a.ID] = a.Client
		for _, s := range a.Scopes {
			scopeSet[s] = true
		}
	}
	for _, c := range cfg.Clients {
		for _, s := range c.Scopes {
			scopeSet[s] = true
		}
	}
	scopes := make([]string, 0, len(scopeSet))
	for s := range scopeSet {
		scopes = append(scopes, s)
	}
	sort.Strings(scopes)

	api, err := httpapi.New(httpapi.Config{
		Issuer: cfg.Issuer, Dispatcher: disp, Tokens: tokens, Keys: ks, Revoker: writer,
		AudienceClients: audClients, Scopes: scopes, Ready: st.Ping,
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, Log: log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	go maintain(ctx, log, ks, revoked, st)

	if dev {
		printDev(stdout, cfg)
	}
	log.Info("deputy serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "storage", cfg.Storage.Driver,
		"signing_key", ks.Active().ID, "algorithm", string(ks.Active().Algorithm), "version", versionString())

	errc := make(chan error, 1)
	go func() {
		if cfg.TLS.CertFile != "" {
			errc <- srv.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// maintain keeps the in-memory state current: keys rotated by `deputy keys rotate`
// (or another node) are picked up, and expired revocations and nonces forgotten.
func maintain(ctx context.Context, log *slog.Logger, ks *keys.Set, revoked *token.Revoked, st store.Store) {
	reload := time.NewTicker(5 * time.Second)
	purge := time.NewTicker(time.Minute)
	defer reload.Stop()
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload.C:
			if err := ks.Reload(ctx); err != nil {
				log.Warn("keys: reload failed", "err", err)
			}
		case now := <-purge.C:
			revoked.Purge(now)
			if err := st.PurgeNonces(ctx, now); err != nil {
				log.Warn("nonces: purge failed", "err", err)
			}
		}
	}
}

func printDev(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, `
deputy is running a DEVELOPMENT setup (no --config given). Do not use it in production.
  issuer   %s
  storage  %s (%s)
  clients (id / secret / grants):
`, cfg.Issuer, cfg.Storage.DSN, cfg.Storage.Driver)
	for _, c := range cfg.Clients {
		fmt.Fprintf(w, "    %-8s %-16s %v\n", c.ID, c.Secret, c.GrantTypes)
	}
	fmt.Fprintln(w, "  users:")
	for _, u := range cfg.Users {
		fmt.Fprintf(w, "    %-8s %s\n", u.Username, u.Password)
	}
	fmt.Fprintln(w, "  exchange policies:")
	for _, p := range cfg.Exchange.Policies {
		fmt.Fprintf(w, "    %-16s client %s → %v scopes %v (%s)\n", p.Name, p.Client, p.Audiences, p.Scopes, p.Mode)
	}
	fmt.Fprintf(w, "\n  try: curl -s -u web-app:web-app-secret -d grant_type=client_credentials %s/token\n\n", cfg.Issuer)
	_ = os.Stdout.Sync()
}
