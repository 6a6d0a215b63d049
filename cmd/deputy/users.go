package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/account"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
)

const usersUsage = `Usage:
  deputy users add USERNAME (--password-stdin | --password-file FILE) [--claim KEY=VALUE ...]
                   [--role ROLE ...]
  deputy users list [--json]
  deputy users roles USERNAME [--add ROLE ...] [--remove ROLE ...]
  deputy users disable USERNAME
  deputy users enable USERNAME
  deputy users delete USERNAME

Disabling or deleting an account revokes every session it signed in and
everything issued in them (codes, access, refresh and ID tokens, and the tokens
exchanged from them); its codes and refresh tokens are refused from then on even
where the revocation has not reached yet. Enabling it again does not bring them
back.

Roles grant more than signing in: auditor opens the audit explorer (/audit/ui).
users roles without --add or --remove prints the account's roles. A role change
counts at the account's next request.

These manage the local accounts stored in the database. Accounts listed under users:
in the configuration file are managed there, and take precedence over a stored
account of the same name. All take --config FILE.
`

// maxPasswordBytes bounds a password read from stdin or a file.
const maxPasswordBytes = 4096

// cmdUsers runs `deputy users …`; stdin is where --password-stdin reads from.
func cmdUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "add":
			return cmdUsersAdd(ctx, args[1:], stdin, stdout)
		case "list":
			return cmdUsersList(ctx, args[1:], stdout)
		case "roles":
			return cmdUsersRoles(ctx, args[1:], stdout)
		case "disable":
			return cmdUsersSetDisabled(ctx, "disable", args[1:], stdout)
		case "enable":
			return cmdUsersSetDisabled(ctx, "enable", args[1:], stdout)
		case "delete":
			return cmdUsersSetDisabled(ctx, "delete", args[1:], stdout)
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usersUsage)
			return nil
		}
	}
	fmt.Fprint(stderr, usersUsage)
	return exitError(2)
}

// claimFlags collects repeated --claim KEY=VALUE.
type claimFlags map[string]string

func (c claimFlags) String() string { return "" }

func (c claimFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	if _, dup := c[k]; dup {
		return fmt.Errorf("claim %q given twice", k)
	}
	c[k] = val
	return nil
}

// roleFlags collects a repeated role flag; an unknown role, or one given twice,
// is a usage error.
type roleFlags []string

func (r *roleFlags) String() string { return strings.Join(*r, ",") }

func (r *roleFlags) Set(v string) error {
	if err := account.CheckRoles(append(slices.Clone(*r), v)); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "account: "))
	}
	*r = append(*r, v)
	return nil
}

func cmdUsersAdd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs, file := flags("users add")
	claims := claimFlags{}
	fs.Var(claims, "claim", "identity claim KEY=VALUE of the account (repeatable), e.g. email=alice@example")
	var roles roleFlags
	fs.Var(&roles, "role", "role of the account (repeatable): "+strings.Join(config.KnownRoles(), ", "))
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	passwordFile := fs.String("password-file", "", "read the password from this file")
	if err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if fs.NArg() != 1 {
		return errors.New("users add needs one USERNAME")
	}
	username := fs.Arg(0)
	password, err := readPassword(*fromStdin, *passwordFile, stdin)
	if err != nil {
		return err
	}
	return withStore(ctx, *file, func(cfg *config.Config, st *sqlstore.DB) error {
		u, err := account.NewStoredUser(cfg, username, password, claims, roles, time.Now())
		if err != nil {
			return err
		}
		var users store.Users = st
		e := adminEvent(username, "user added")
		if len(u.Roles) > 0 {
			e = rolesEvent(username, "user added as "+strings.Join(u.Roles, ", "), u.Roles)
		}
		if err := users.InsertUser(ctx, u, e, audit.Seal); errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user %q exists already", username)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s added\n", username)
		return nil
	})
}

// readPassword reads the password from stdin or a file, without the line break
// that ends it.
func readPassword(fromStdin bool, file string, stdin io.Reader) (string, error) {
	var r io.Reader
	switch {
	case fromStdin && file != "":
		return "", errors.New("give either --password-stdin or --password-file, not both")
	case fromStdin:
		r = stdin
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		defer f.Close()
		r = f
	default:
		return "", errors.New("users add needs the password: --password-stdin or --password-file FILE")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPasswordBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	switch {
	case len(b) > maxPasswordBytes:
		return "", fmt.Errorf("the password is longer than %d bytes", maxPasswordBytes)
	case len(b) == 0:
		return "", errors.New("the password is empty")
	case bytes.Contains(b, []byte("\n")):
		return "", errors.New("the password holds a line break; give one line")
	}
	return string(b), nil
}

// userJSON is one line of `users list --json`.
type userJSON struct {
	Username  string            `json:"username"`
	Disabled  bool              `json:"disabled"`
	Claims    map[string]string `json:"claims"`
	Roles     []string          `json:"roles"` // [] when none
	CreatedAt time.Time         `json:"created_at"`
}

func cmdUsersList(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("users list")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() != 0 {
		return errors.New("users list takes no arguments")
	}
	return withStore(ctx, *file, func(_ *config.Config, st *sqlstore.DB) error {
		var users store.Users = st
		us, err := users.ListUsers(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, u := range us {
				claims := u.Claims
				if claims == nil {
					claims = map[string]string{}
				}
				roles := u.Roles
				if roles == nil {
					roles = []string{}
				}
				if err := enc.Encode(userJSON{u.Username, u.Disabled, claims, roles, u.CreatedAt.UTC()}); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tDISABLED\tCREATED\tROLES\tCLAIMS")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\n", u.Username, u.Disabled, u.CreatedAt.UTC().Format(time.RFC3339), formatRoles(u.Roles), formatClaims(u.Claims))
		}
		return tw.Flush()
	})
}

// formatClaims writes claims as KEY=VALUE in key order, quoting values that would
// not read back.
func formatClaims(claims map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(claims)) {
		v := claims[k]
		if v == "" || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || !strconv.IsPrint(r) }) {
			v = strconv.Quote(v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// formatRoles writes roles comma-separated, "-" when none (a column is never
// empty).
func formatRoles(roles []string) string {
	if len(roles) == 0 {
		return "-"
	}
	return strings.Join(roles, ",")
}

// cmdUsersRoles runs users roles: it prints a stored account's roles, or adds
// and removes some, the change committed with its user.changed event.
func cmdUsersRoles(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := flags("users roles")
	var add, remove roleFlags
	known := strings.Join(config.KnownRoles(), ", ")
	fs.Var(&add, "add", "give the account this role (repeatable): "+known)
	fs.Var(&remove, "remove", "take this role from the account (repeatable)")
	if err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if fs.NArg() != 1 {
		return errors.New("users roles needs one USERNAME")
	}
	for _, r := range add {
		if slices.Contains(remove, r) {
			fmt.Fprintf(fs.Output(), "role %q is both added and removed\n", r)
			return exitError(2)
		}
	}
	username := fs.Arg(0)
	return withStore(ctx, *file, func(cfg *config.Config, st *sqlstore.DB) error {
		if err := notConfigured(cfg, username); err != nil {
			return err
		}
		var users store.Users = st
		u, err := users.UserByName(ctx, username)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no stored user %q", username)
		}
		if err != nil {
			return err
		}
		roles := slices.DeleteFunc(slices.Concat(u.Roles, add), func(r string) bool { return slices.Contains(remove, r) })
		roles = slices.Compact(slices.Sorted(slices.Values(roles)))
		if slices.Equal(roles, u.Roles) {
			if len(add)+len(remove) > 0 {
				fmt.Fprintf(stdout, "user %s roles unchanged: %s\n", username, formatRoles(roles))
			} else {
				fmt.Fprintf(stdout, "user %s roles: %s\n", username, formatRoles(roles))
			}
			return nil
		}
		what := "roles set to " + strings.Join(roles, ", ")
		if len(roles) == 0 {
			what = "roles removed"
		}
		err = users.SetUserRoles(ctx, username, roles, rolesEvent(username, what, roles), audit.Seal)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no stored user %q", username)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s roles: %s\n", username, formatRoles(roles))
		return nil
	})
}

// notConfigured refuses to change a user of the configuration file in the
// database: the file is where it is managed.
func notConfigured(cfg *config.Config, username string) error {
	for _, u := range cfg.Users {
		if u.Username == username {
			return fmt.Errorf("user %q is in the configuration file (users:); change it there", username)
		}
	}
	return nil
}

// cmdUsersSetDisabled runs users disable, enable and delete.
func cmdUsersSetDisabled(ctx context.Context, verb string, args []string, stdout io.Writer) error {
	fs, file := flags("users " + verb)
	if err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("users %s needs one USERNAME", verb)
	}
	username := fs.Arg(0)
	return withStore(ctx, *file, func(cfg *config.Config, st *sqlstore.DB) error {
		if err := notConfigured(cfg, username); err != nil {
			return err
		}
		var users store.Users = st
		// Each change commits with its user.changed event.
		what := "user disabled"
		if verb == "enable" {
			what = "user enabled"
		}
		err := users.SetUserDisabled(ctx, username, verb != "enable", adminEvent(username, what), audit.Seal)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no stored user %q", username)
		}
		if err != nil {
			return err
		}
		note := ""
		if verb != "enable" {
			// Disabled first, so no sign-in, code or refresh succeeds meanwhile
			// (they check the account when used); then everything already issued
			// goes, down the lineage; a deleted account goes last, so that after
			// a failure the command can be run again: every step is idempotent.
			w := audit.NewWriter(st, st, audit.WriterOptions{StoreTimeout: cfg.Storage.Timeout.D()})
			n, err := account.RevokeSignIns(ctx, st, w, username, "user "+verb+"d with deputy users", time.Now())
			w.Close()
			if err != nil {
				return fmt.Errorf("user %s is disabled, but revoking its tokens failed (run the command again): %w", username, err)
			}
			note = fmt.Sprintf(" (%d sessions and tokens revoked)", n)
		}
		if verb == "delete" {
			if err := users.DeleteUser(ctx, username, adminEvent(username, "user deleted"), audit.Seal); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "user %s %sd%s\n", username, verb, note)
		return nil
	})
}

// adminEvent is the user.changed event of an account change, stored in the
// change's own transaction.
func adminEvent(username, what string) *store.AuditEvent {
	return userEvent(username, what, "")
}

// rolesEvent is adminEvent with the account's roles after the change as its
// detail, {"roles":[…]}.
func rolesEvent(username, what string, roles []string) *store.AuditEvent {
	if roles == nil {
		roles = []string{}
	}
	d, _ := json.Marshal(struct {
		Roles []string `json:"roles"`
	}{roles}) // a list of strings always encodes
	return userEvent(username, what, string(d))
}

func userEvent(username, what, detail string) *store.AuditEvent {
	e := &store.AuditEvent{Type: store.EventUserChanged, Decision: store.DecisionAllow, Subject: username,
		Reason: what + " with deputy users", Detail: detail}
	audit.Prepare(e)
	return e
}
