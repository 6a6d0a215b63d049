package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/exchange"
	"github.com/deputy-auth/deputy/internal/keys"
	"github.com/deputy-auth/deputy/internal/policy/policytest"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/subject"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
)

// The policy commands (README "Token exchange rules") answer questions about the
// exchange policies of a configuration with the server's own decision code
// (internal/exchange, through internal/policy/policytest): they never decide
// anything themselves. They write nothing: explain reads the signing keys and
// revocations of a SQLite database read-only (openReadOnly), and uses no
// network but a PostgreSQL database's connection. Exit status 2 is
// bad usage — flags, a configuration that does not load, a client, audience or
// token that cannot be the subject of a request —, so that 1 means only a
// denial (explain), a failed case (test) or a finding (lint --strict).

const policyUsage = `usage:
  deputy policy explain --client C (--subject-token T | --subject-claims JSON
                        [--subject-issuer NAME] [--subject-type TYPE]) [--actor SUB]
                        [--audience A]… [--resource R]… [--scope "S…"]
                        [--requested-token-type T] [--binding-jkt THUMBPRINT |
                        --binding-x5t THUMBPRINT] [--now TIME] [--json] [--config FILE]
  deputy policy test FILE… [--config FILE]
  deputy policy lint [--strict] [--config FILE]
`

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "explain":
			return cmdPolicyExplain(ctx, args[1:], stdout, stderr)
		case "test":
			return cmdPolicyTest(args[1:], stdout, stderr)
		case "lint":
			return cmdPolicyLint(args[1:], stdout, stderr)
		}
	}
	fmt.Fprint(stderr, policyUsage)
	return exitError(2)
}

// badUsage prints what is wrong with the command line or its input and ends with
// exit status 2.
func badUsage(stderr io.Writer, cmd string, err error) error {
	fmt.Fprintf(stderr, "deputy policy %s: %v\n", cmd, err)
	return exitError(2)
}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdPolicyExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, file := flags("policy explain")
	fs.SetOutput(stderr)
	var in policytest.Input
	var audiences, resources stringList
	fs.StringVar(&in.Client, "client", "", "the client that asks for the exchange")
	raw := fs.String("subject-token", "", "a subject token to verify (deputy's own, or a trusted issuer's with jwks_file)")
	claims := fs.String("subject-claims", "", `the subject token described by its claims, as JSON ({"sub":"alice","scope":"a b",…})`)
	fs.StringVar(&in.Subject.Issuer, "subject-issuer", "", "with --subject-claims: the subject_issuers name of its issuer (default self)")
	fs.StringVar(&in.Subject.Type, "subject-type", "", "the subject token's type: access_token (default), jwt, id_token, refresh_token, saml2 or txn_token")
	fs.StringVar(&in.Actor, "actor", "", "the subject of an actor token (it must be the client)")
	fs.Var(&audiences, "audience", "a requested audience (repeatable)")
	fs.Var(&resources, "resource", "a requested resource (repeatable)")
	fs.StringVar(&in.Scope, "scope", "", "the requested scopes, space-separated")
	fs.StringVar(&in.RequestedTokenType, "requested-token-type", "", "access_token (default), jwt, id_token, refresh_token or txn_token")
	jkt := fs.String("binding-jkt", "", "the request proves this DPoP key (its base64url SHA-256 JWK thumbprint, RFC 9449)")
	x5t := fs.String("binding-x5t", "", "the request proves this client certificate (its base64url SHA-256 thumbprint, x5t#S256, RFC 8705)")
	at := fs.String("now", "", "decide at this RFC 3339 time (conditions see it as now; token expiry is checked against it); default the current time")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	in.Audiences, in.Resources = audiences, resources
	switch {
	case fs.NArg() > 0:
		return badUsage(stderr, "explain", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case in.Client == "":
		return badUsage(stderr, "explain", errors.New("--client is required"))
	case (*raw == "") == (*claims == ""):
		return badUsage(stderr, "explain", errors.New("give the subject as either --subject-token or --subject-claims"))
	case *raw != "" && in.Subject.Issuer != "":
		return badUsage(stderr, "explain", errors.New("--subject-issuer goes with --subject-claims; a token names its issuer"))
	case *jkt != "" && *x5t != "":
		return badUsage(stderr, "explain", errors.New("a request proves one key: give --binding-jkt or --binding-x5t, not both"))
	}
	var err error
	switch {
	case *jkt != "":
		in.Binding, err = policytest.NewBinding("jkt", *jkt)
	case *x5t != "":
		in.Binding, err = policytest.NewBinding("x5t#S256", *x5t)
	}
	if err != nil {
		return badUsage(stderr, "explain", err)
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return badUsage(stderr, "explain", fmt.Errorf("--now %q is not an RFC 3339 time (2026-12-07T10:00:00Z)", *at))
		}
	}
	cfg, _, err := loadConfig(*file)
	if err != nil {
		return badUsage(stderr, "explain", err)
	}
	env, err := policytest.NewEnv(cfg)
	if err != nil {
		return badUsage(stderr, "explain", err)
	}
	if cfg.Client(in.Client) == nil {
		return badUsage(stderr, "explain", fmt.Errorf("unknown client %q: it is not in clients", in.Client))
	}
	for _, t := range slices.Concat(in.Audiences, in.Resources) {
		if cfg.Audience(t) == nil {
			return badUsage(stderr, "explain", fmt.Errorf("unknown audience %q: it is not in audiences (the server would answer invalid_target)", t))
		}
	}
	if *raw != "" {
		p, err := verifySubjectToken(ctx, cfg, *raw, in.Subject.Type, now)
		if err != nil {
			return badUsage(stderr, "explain", err)
		}
		in.Verified = &p
	} else {
		in.Subject.Claims = json.RawMessage(*claims)
	}
	req, err := env.Request(in, now)
	if err != nil {
		return badUsage(stderr, "explain", err)
	}
	out := env.Run(req, now)
	if *asJSON {
		err = writeExplainJSON(stdout, req, &out)
	} else {
		err = writeExplainText(stdout, req, &out)
	}
	if err != nil {
		return err
	}
	if !out.Allowed {
		return exitError(1)
	}
	return nil
}

// verifySubjectToken verifies raw, declared as typ (a short name, "" for
// access_token), as the server's subject verifier would at now: deputy's own
// tokens with the signing keys and revocations in the database, a trusted
// issuer's with its jwks_file. It writes nothing: the database is opened
// read-only (openReadOnly), the keys are read as they are (keys.Open would
// otherwise make one, or encrypt them), and tokens whose
// verification needs the network or a write — a trusted issuer's keys at
// jwks_uri, a SAML assertion (its id is recorded as used), a refresh token — are
// refused with the advice to describe them with --subject-claims.
func verifySubjectToken(ctx context.Context, cfg *config.Config, raw, typ string, now time.Time) (exchange.Principal, error) {
	t := oauth.TokenTypeAccessToken
	if typ != "" {
		var ok bool
		if t, ok = oauth.TokenTypeFromShort(typ); !ok {
			return exchange.Principal{}, fmt.Errorf("--subject-type %q is not one of access_token, jwt, id_token, refresh_token, saml2, txn_token", typ)
		}
	}
	switch t {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeTxnToken:
	default:
		return exchange.Principal{}, fmt.Errorf("a %s subject token cannot be verified offline without writing (SAML assertion ids and refresh tokens are recorded as used); describe it with --subject-claims JSON --subject-type %s", typ, typ)
	}
	if iss := subject.UnverifiedIssuer(raw); iss != "" && iss != cfg.Issuer {
		for _, ti := range cfg.TrustedIssuers {
			if ti.Issuer == iss && ti.JWKSURI != "" {
				return exchange.Principal{}, fmt.Errorf("the subject token is from trusted issuer %s, whose keys are fetched from %s: explain fetches no keys; describe the token with --subject-claims JSON --subject-issuer %s", ti.Name, ti.JWKSURI, ti.Name)
			}
		}
	}
	st, err := openReadOnly(ctx, cfg)
	if err != nil {
		return exchange.Principal{}, err
	}
	defer st.Close()
	kopts, err := server.KeyOptions(cfg)
	if err != nil {
		return exchange.Principal{}, err
	}
	ks, err := keys.Open(ctx, readOnlyKeys{st}, kopts)
	if err != nil {
		return exchange.Principal{}, err
	}
	revoked := token.NewRevoked()
	revs, err := st.ListRevocations(ctx, now)
	if err != nil {
		return exchange.Principal{}, fmt.Errorf("storage: load revocations: %w", err)
	}
	revoked.Add(revs)
	var trusted []config.TrustedIssuer
	for _, ti := range cfg.TrustedIssuers {
		if ti.JWKSURI == "" {
			trusted = append(trusted, ti)
		}
	}
	v, err := subject.New(ctx, token.NewService(cfg.Issuer, ks, revoked, cfg.Limits.MaxTokenBytes), subject.Options{TrustedIssuers: trusted, TrustDomain: cfg.TxnTokens.TrustDomain})
	if err != nil {
		return exchange.Principal{}, err
	}
	p, err := v.Verify(ctx, "subject", raw, t, now)
	if err != nil {
		var oe *oauth.Error
		if errors.As(err, &oe) && oe.Cause != nil {
			return p, fmt.Errorf("%s (%v); the server would refuse it with %s before any policy", oe.Description, oe.Cause, oe.Code)
		}
		return p, err
	}
	return p, nil
}

// openReadOnly opens cfg's database to read its signing keys and revocations,
// and fails when there is none (or it has no tables). A SQLite file is opened
// read-only (mode=ro): SQLite writes nothing to it, and the store's connections
// that would write — a checkpoint, the pragmas of its writer — cannot. (Reading
// a database in WAL mode that no process has open makes SQLite create its -wal
// and -shm files, empty, as any reader does.) A PostgreSQL database is reached
// over its connection; nothing is written to it either.
func openReadOnly(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
	dsn, where := cfg.Storage.DSN, sqlstore.RedactDSN(cfg.Storage.DSN)
	if cfg.Storage.Driver == config.DriverSQLite {
		path := sqlstore.SQLiteFile(dsn)
		if path == "" {
			return nil, errors.New("the database is in memory (storage.dsn): it holds no signing keys to verify a token with; describe the token with --subject-claims")
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s (run deputy migrate or deputy serve first)", path)
		}
		var err error
		if dsn, err = readOnlySQLite(dsn); err != nil {
			return nil, err
		}
		where = path
	}
	st, err := sqlstore.Open(ctx, cfg.Storage.Driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	ok, err := st.Migrated(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("no database at %s (run deputy migrate or deputy serve first)", where)
	} else if err != nil {
		err = fmt.Errorf("storage: %w", err)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// readOnlySQLite is a SQLite dsn (a path or a "file:" URI, either with "?"
// parameters) as a URI that opens the same file read-only: mode=ro, the other
// parameters kept.
func readOnlySQLite(dsn string) (string, error) {
	name, query, _ := strings.Cut(dsn, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("storage: sqlite dsn parameters: %w", err)
	}
	if !strings.HasPrefix(name, "file:") {
		name = "file:" + (&url.URL{Path: name}).EscapedPath()
	}
	params.Set("mode", "ro")
	return name + "?" + params.Encode(), nil
}

// readOnlyKeys reads the signing keys and writes none: explain verifies tokens,
// it signs nothing, so a missing key is not made and a key stored in the clear
// is left for the server to encrypt.
type readOnlyKeys struct{ store.Keys }

func (readOnlyKeys) InsertKey(context.Context, store.Key) error { return nil }
func (readOnlyKeys) RetireKey(context.Context, string, time.Time) error {
	return errors.New("read only")
}
func (readOnlyKeys) ReplaceKeyPrivate(context.Context, string, []byte, []byte) error {
	return store.ErrConflict // as if another process had changed it
}
func (readOnlyKeys) EraseFreed(context.Context) error { return nil }
func (readOnlyKeys) RotateKeys(context.Context, store.KeyRotation, []*store.AuditEvent, store.SealFunc) error {
	return errors.New("read only")
}

// explainJSON is `policy explain --json`.
type explainJSON struct {
	Allowed          bool                  `json:"allowed"`
	Client           string                `json:"client"`
	Subject          string                `json:"subject"`
	SubjectIssuer    string                `json:"subject_issuer"`
	Rule             string                `json:"rule,omitempty"`
	Mode             string                `json:"mode,omitempty"`
	Audiences        []string              `json:"audiences,omitempty"`
	Scopes           []string              `json:"scopes,omitempty"`
	Act              *oauth.Actor          `json:"act,omitempty"`
	IssuedTokenType  string                `json:"issued_token_type,omitempty"`
	TokenType        string                `json:"token_type,omitempty"`
	ExpiresIn        int64                 `json:"expires_in,omitempty"`
	Exp              int64                 `json:"exp,omitempty"`
	Cnf              *oauth.Confirmation   `json:"cnf,omitempty"`
	Error            oauth.Code            `json:"error,omitempty"`
	ErrorDescription string                `json:"error_description,omitempty"`
	Reason           string                `json:"reason,omitempty"`
	Policies         []exchange.RuleResult `json:"policies"`
}

func writeExplainJSON(w io.Writer, req exchange.Request, o *policytest.Outcome) error {
	out := explainJSON{
		Allowed: o.Allowed, Client: req.ClientID, Subject: req.Subject.Subject, SubjectIssuer: req.Subject.Issuer,
		Policies: o.Policies,
	}
	if out.Policies == nil {
		out.Policies = []exchange.RuleResult{}
	}
	if o.Allowed {
		d := &o.Decision
		out.Rule, out.Mode, out.Audiences, out.Scopes, out.Act = d.Rule, string(d.Mode), d.Audiences, d.Scopes, d.Act
		out.IssuedTokenType, out.TokenType = d.IssuedType.ShortName(), d.TokenType
		out.ExpiresIn, out.Exp, out.Cnf = expiresIn(d.ExpiresAt, o.Now), d.ExpiresAt.Unix(), d.Cnf
	} else {
		out.Rule, out.Error, out.ErrorDescription, out.Reason = o.Rule, o.Err.Code, o.Err.Description, o.Reason()
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(printableJSON(b), '\n'))
	return err
}

// printableJSON is the JSON text j with every character a terminal would obey —
// DEL, C1 controls, bidi overrides, which JSON allows raw in strings — written
// as a \u escape; the JSON means the same. Outside strings JSON text is ASCII,
// so only strings change.
func printableJSON(j []byte) []byte {
	out := make([]byte, 0, len(j))
	for _, r := range string(j) {
		if r < utf8.RuneSelf && r != 0x7f || strconv.IsPrint(r) {
			out = utf8.AppendRune(out, r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			continue
		}
		out = fmt.Appendf(out, `\u%04x`, r)
	}
	return out
}

// expiresIn is the token response's expires_in: whole seconds from now to exp.
func expiresIn(exp, now time.Time) int64 { return exp.Unix() - now.Unix() }

func writeExplainText(w io.Writer, req exchange.Request, o *policytest.Outcome) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	sub := &req.Subject
	if o.Allowed {
		d := &o.Decision
		mode := string(d.Mode)
		if d.IssuedType == oauth.TokenTypeTxnToken {
			mode = "transaction token" // no act: neither delegation nor impersonation
		}
		fmt.Fprintf(tw, "allowed: policy %s decides (%s)\n", printable(d.Rule), mode)
		fmt.Fprintf(tw, "  subject\t%s (issuer %s, %s)\n", printable(d.Subject), printable(sub.Issuer), sub.TokenType.ShortName())
		fmt.Fprintf(tw, "  audiences\t%s\n", printable(strings.Join(d.Audiences, " ")))
		fmt.Fprintf(tw, "  scopes\t%s\n", orNone(printable(strings.Join(d.Scopes, " "))))
		fmt.Fprintf(tw, "  act\t%s\n", actText(d.Act))
		fmt.Fprintf(tw, "  issues\t%s, token_type %s\n", d.IssuedType.ShortName(), d.TokenType)
		if c := d.Cnf; c != nil {
			if c.JKT != "" {
				fmt.Fprintf(tw, "  bound to\tjkt %s (the request's DPoP key)\n", printable(c.JKT))
			} else {
				fmt.Fprintf(tw, "  bound to\tx5t#S256 %s (the request's client certificate)\n", printable(c.X5TS256))
			}
		}
		fmt.Fprintf(tw, "  lifetime\texpires_in %d (exp %s)\n", expiresIn(d.ExpiresAt, o.Now), d.ExpiresAt.UTC().Format(time.RFC3339))
		if !d.RefreshExpiresAt.IsZero() {
			fmt.Fprintf(tw, "  refresh token\tbeside it, for a client with the refresh_token grant, until %s\n", d.RefreshExpiresAt.UTC().Format(time.RFC3339))
		}
	} else {
		fmt.Fprintf(tw, "denied: %s\n", o.Err.Code)
		fmt.Fprintf(tw, "  error_description\t%s\n", printable(o.Err.Description))
		if o.Rule != "" {
			fmt.Fprintf(tw, "  policy\t%s\n", printable(o.Rule))
		}
		fmt.Fprintf(tw, "  reason\t%s\n", printable(o.Reason()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeRuleResults(w, req.ClientID, o.Policies)
}

// writeRuleResults prints what each policy of client made of the request.
func writeRuleResults(w io.Writer, client string, rs []exchange.RuleResult) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintf(w, "client %s has no exchange policy\n", printable(client))
		return err
	}
	fmt.Fprintf(w, "policies of client %s, in order:\n", printable(client))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		check := string(r.Check)
		if check == "" {
			check = "—"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(r.Rule), check, printable(r.Reason))
	}
	return tw.Flush()
}

// printable is s as the policy commands print it: as it is when every character
// is printable, else quoted in Go syntax (\x1b, \u202e), so that claims and
// names from a token never reach a terminal raw. Unlike the audit trail's
// renderers it leaves quotes alone: the messages quote names themselves.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) < 0 && utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

func orNone(s string) string {
	if s == "" {
		return "— (none)"
	}
	return s
}

// actText writes an act chain as the demo does: {sub: ledger, act: {sub: payments}}.
func actText(a *oauth.Actor) string {
	if a == nil {
		return "— (none)"
	}
	var b strings.Builder
	n := 0
	for ; a != nil; a = a.Actor {
		if n > 0 {
			b.WriteString(", act: ")
		}
		b.WriteString("{sub: " + printable(a.Subject))
		if a.Issuer != "" {
			b.WriteString(", iss: " + printable(a.Issuer))
		}
		n++
	}
	b.WriteString(strings.Repeat("}", n))
	return b.String()
}

func cmdPolicyTest(args []string, stdout, stderr io.Writer) error {
	fs, file := flags("policy test")
	fs.SetOutput(stderr)
	if err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if fs.NArg() == 0 {
		return badUsage(stderr, "test", errors.New("name at least one test file"))
	}
	cfg, _, err := loadConfig(*file)
	if err != nil {
		return badUsage(stderr, "test", err)
	}
	env, err := policytest.NewEnv(cfg)
	if err != nil {
		return badUsage(stderr, "test", err)
	}
	now := time.Now()
	type run struct {
		c   policytest.Case
		req exchange.Request
		now time.Time // the case's, or the time the command started
	}
	var runs []run
	var problems []string
	for _, name := range fs.Args() {
		src, err := os.ReadFile(name)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		cases, err := policytest.Parse(name, src)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, c := range cases {
			if cfg.Client(c.Client) == nil {
				problems = append(problems, fmt.Sprintf("%s: client %q is not configured", c.ClientWhere, c.Client))
				continue
			}
			at := now
			if !c.Now.IsZero() {
				at = c.Now
			}
			req, err := env.Request(c.Input, at)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: case %s: %v", c.Where, c.Name, err))
				continue
			}
			runs = append(runs, run{c, req, at})
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "deputy policy test: %s\n", p)
		}
		return exitError(2)
	}
	failed := 0
	for _, r := range runs {
		o := env.Run(r.req, r.now)
		if why := r.c.Expect.Check(o); why != "" {
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %s\n", printable(r.c.Name), printable(why))
			continue
		}
		fmt.Fprintf(stdout, "PASS %s\n", printable(r.c.Name))
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(runs)-failed, failed)
	if failed > 0 {
		return exitError(1)
	}
	return nil
}

func cmdPolicyLint(args []string, stdout, stderr io.Writer) error {
	fs, file := flags("policy lint")
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "exit 1 when there is any finding")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() > 0 {
		return badUsage(stderr, "lint", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	// A configuration the server would refuse is linted all the same: its
	// validation problems (unknown audiences, clients, issuers, may_act ids,
	// scopes no audience of the policy has, …) are findings. One that cannot be
	// read at all is bad usage.
	var findings []config.Problem
	var cfg *config.Config
	where := func(string) string { return "" }
	if *file == "" {
		c, _, err := loadConfig("")
		if err != nil {
			return badUsage(stderr, "lint", err)
		}
		cfg = c
	} else {
		in, err := config.Inspect(*file, os.Environ())
		if err != nil {
			return badUsage(stderr, "lint", err)
		}
		cfg, findings, where = in.Config, in.Problems, in.Where
	}
	findings = append(findings, lint(cfg, where)...)
	for _, f := range findings {
		fmt.Fprintln(stdout, printable(f.String()))
	}
	switch n := len(findings); {
	case n == 0:
		fmt.Fprintln(stdout, "no findings")
	case n == 1:
		fmt.Fprintln(stdout, "1 finding")
	default:
		fmt.Fprintf(stdout, "%d findings\n", n)
	}
	if *strict && len(findings) > 0 {
		return exitError(1)
	}
	return nil
}

// lint finds what the configuration's validation lets through but is surely a
// mistake in the exchange policies: a policy an earlier one shadows, a client
// holding the token-exchange grant that no policy names, impersonation without
// require_may_act. It reads the configuration as the server does (defaults
// filled in: subject_issuers [self], subject_token_types [access_token]).
func lint(cfg *config.Config, where func(string) string) []config.Problem {
	var out []config.Problem
	add := func(path, msg string) {
		out = append(out, config.Problem{Where: where(path), Path: path, Message: msg})
	}
	pols := cfg.Exchange.Policies
	for i, c := range cfg.Clients {
		j := slices.Index(c.GrantTypes, oauth.GrantTokenExchange)
		if j < 0 || slices.ContainsFunc(pols, func(p config.Policy) bool { return p.Client == c.ID }) {
			continue
		}
		add(fmt.Sprintf("clients[%d].grant_types[%d]", i, j),
			fmt.Sprintf("client %s holds the token-exchange grant, but no exchange policy names it: every exchange it asks for is refused (unauthorized_client)", c.ID))
	}
	for j, p := range pols {
		if p.Mode == config.ModeImpersonation && !p.RequireMayAct {
			add(fmt.Sprintf("exchange.policies[%d].mode", j),
				fmt.Sprintf("policy %s impersonates without require_may_act: client %s may become any subject whose token it holds; set require_may_act: true so that only tokens naming it in may_act are exchanged", p.Name, p.Client))
		}
		for i, q := range pols[:j] {
			if shadows(q, p) {
				add(fmt.Sprintf("exchange.policies[%d]", j),
					fmt.Sprintf("policy %s can never decide: policy %s (exchange.policies[%d]) comes first, has no condition, accepts every subject issuer and token type it accepts and allows every audience it allows", p.Name, q.Name, i))
				break
			}
		}
	}
	return out
}

// shadows reports whether policy first, earlier in the list, decides every
// request that later would: same client, no condition, and a superset of its
// subject issuers, subject token types and audiences. The deciding policy is the
// first whose subject and targets match and whose condition holds (README "Token
// exchange rules"), and a later one never stands in for it, so later can never
// decide. Only such certain cases are reported. A transaction token request is
// decided by the first such policy that lists txn_token (README "Transaction
// tokens"), so a later policy listing it is shadowed only by one that lists it
// too.
func shadows(first, later config.Policy) bool {
	return first.Client == later.Client && first.Condition == "" && len(later.Audiences) > 0 &&
		subset(later.SubjectIssuers, first.SubjectIssuers) &&
		subset(later.SubjectTokenTypes, first.SubjectTokenTypes) &&
		subset(later.Audiences, first.Audiences) &&
		(!slices.Contains(later.RequestedTokenTypes, config.TxnTokenType) || slices.Contains(first.RequestedTokenTypes, config.TxnTokenType))
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
