package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

// withStore loads the configuration named by --config and runs fn on its opened,
// migrated store. The database must exist: a tool pointed at the wrong file must
// not create an empty one and report on that.
func withStore(ctx context.Context, file string, fn func(cfg *config.Config, st *sqlstore.DB) error) error {
	return openStore(ctx, file, false, fn)
}

// openStore is withStore; with create, a missing SQLite database is created.
func openStore(ctx context.Context, file string, create bool, fn func(cfg *config.Config, st *sqlstore.DB) error) error {
	cfg, _, err := loadConfig(file)
	if err != nil {
		return err
	}
	if !create {
		if err := requireDatabase(ctx, cfg); err != nil {
			return err
		}
	}
	st, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(cfg, st)
}

// requireDatabase fails when cfg's database does not exist: a SQLite file that is
// not there, or a database (a PostgreSQL schema, an empty SQLite file) without
// deputy's tables.
func requireDatabase(ctx context.Context, cfg *config.Config) error {
	where := sqlstore.RedactDSN(cfg.Storage.DSN)
	if cfg.Storage.Driver == config.DriverSQLite {
		path := sqlstore.SQLiteFile(cfg.Storage.DSN)
		if path == "" {
			return nil // in memory: nothing to find
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no database at %s (run deputy migrate or deputy serve first)", path)
		}
		where = path
	}
	st, err := sqlstore.Open(ctx, cfg.Storage.Driver, cfg.Storage.DSN)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer st.Close()
	ok, err := st.Migrated(ctx)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if !ok {
		return fmt.Errorf("no database at %s (run deputy migrate or deputy serve first)", where)
	}
	return nil
}

func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("migrate")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	return openStore(ctx, *file, true, func(cfg *config.Config, _ *sqlstore.DB) error {
		fmt.Fprintf(stdout, "migrations applied (%s %s)\n", cfg.Storage.Driver, sqlstore.RedactDSN(cfg.Storage.DSN))
		return nil
	})
}

func cmdKeysRotate(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("keys rotate")
	publishFor := fs.Duration("publish-for", time.Minute, "how long the new key is published before it signs")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	return withStore(ctx, *file, func(cfg *config.Config, st *sqlstore.DB) error {
		kopts, err := server.KeyOptions(cfg)
		if err != nil {
			return err
		}
		ks, err := keys.Open(ctx, st, kopts)
		if err != nil {
			return err
		}
		previous := map[jose.SignatureAlgorithm]string{}
		var replaced []string
		for _, alg := range ks.SigningAlgorithms() {
			if k := ks.ActiveFor(alg); k != nil {
				previous[alg] = k.ID
				replaced = append(replaced, k.ID)
			}
		}
		// The new keys, the retirements and one key.rotated event per new key
		// (as before there was more than one) are one transaction.
		made, err := ks.RotateRecorded(ctx, *publishFor, func(made []*keys.Key) []*store.AuditEvent {
			events := make([]*store.AuditEvent, 0, len(made))
			for _, k := range made {
				d := map[string]string{"kid": k.ID, "algorithm": string(k.Algorithm), "active_at": k.ActiveAt.UTC().Format(time.RFC3339)}
				if p := previous[k.Algorithm]; p != "" {
					d["previous_kid"] = p
				}
				detail, _ := json.Marshal(d)
				e := &store.AuditEvent{Type: store.EventKeyRotated, Decision: store.DecisionAllow, Reason: "keys rotate", Detail: string(detail)}
				audit.Prepare(e)
				events = append(events, e)
			}
			return events
		}, audit.Seal)
		if err != nil {
			return err
		}
		for _, k := range made {
			fmt.Fprintf(stdout, "new key %s (%s) published now, signs from %s\n", k.ID, k.Algorithm, k.ActiveAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(stdout, "keys replaced (%s) stay published until %s after the new keys sign\n", shownList(replaced), cfg.Signing.RetireAfter.D())
		return nil
	})
}

// shown is text read from the database as the audit trail's text renderers show
// it: what the database holds may have been written by whoever altered it, and
// must not reach the terminal raw (an ESC sequence that rewrites "BROKEN" as
// "intact").
func shown(s string) string { return audit.TextValue(s) }

// shownList is l joined by ", ", each item as shown.
func shownList(l []string) string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = shown(s)
	}
	return strings.Join(out, ", ")
}

func cmdAuditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("audit verify")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	return withStore(ctx, *file, func(_ *config.Config, st *sqlstore.DB) error {
		rep, err := audit.Verify(ctx, st)
		if err != nil {
			return err
		}
		if bad := rep.FirstBad; bad != nil {
			fmt.Fprintf(stdout, "audit chain BROKEN at record %d (position %d, id %s): %s\n%d records before it verified\n",
				bad.Seq, bad.Position, shown(bad.ID), bad.Reason, bad.Position-1)
			return exitError(1)
		}
		fmt.Fprintf(stdout, "audit chain intact: %d records verified\n", rep.Count)
		return nil
	})
}

func cmdAuditTrace(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("audit trace")
	asJSON := fs.Bool("json", false, "print the tree as JSON")
	if err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("audit trace needs one token jti, audit event id or transaction token txn")
	}
	return withStore(ctx, *file, func(_ *config.Config, st *sqlstore.DB) error {
		tree, err := audit.Trace(ctx, st, fs.Arg(0))
		if err != nil {
			return err
		}
		if *asJSON {
			return tree.WriteJSON(stdout)
		}
		return tree.WriteText(stdout)
	})
}

func cmdAuditQuery(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("audit query")
	var f store.AuditFilter
	fs.StringVar(&f.Subject, "subject", "", "events about this subject")
	fs.StringVar(&f.Actor, "actor", "", "events where this party is anywhere in the actor chain")
	fs.StringVar(&f.ClientID, "client", "", "events of this client")
	fs.StringVar(&f.Audience, "audience", "", "events for this audience")
	fs.StringVar(&f.Type, "type", "", "events of this type (token.issued, token.exchanged, token.revoked, request.denied, …)")
	fs.StringVar(&f.TraceID, "trace-id", "", "events of requests in this W3C trace (32 lowercase hex digits, as in traceparent)")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many events (0: all)")
	since := fs.String("since", "", "events at or after this RFC 3339 time")
	until := fs.String("until", "", "events at or before this RFC 3339 time")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if f.TraceID != "" && !audit.ValidTraceID(f.TraceID) {
		return fmt.Errorf("--trace-id: %s is not a W3C trace-id (32 lowercase hex digits, not all zero)", audit.TextValue(f.TraceID))
	}
	var err error
	if f.Since, err = parseTime("since", *since); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", *until); err != nil {
		return err
	}
	return withStore(ctx, *file, func(_ *config.Config, st *sqlstore.DB) error {
		events, err := st.Query(ctx, f)
		if err != nil {
			return err
		}
		write := audit.WriteEventText
		if *asJSON {
			write = audit.WriteEventJSON
		}
		for _, e := range events {
			if err := write(stdout, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %q is not an RFC 3339 time", name, v)
	}
	return t, nil
}

// parseInterspersed parses flags that may come after positional arguments
// ("trace ID --json").
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(pos)
}
