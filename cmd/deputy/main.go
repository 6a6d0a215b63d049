// Command deputy is an OAuth 2.0 authorization server built around token exchange
// (RFC 8693) with a tamper-evident audit trail. This package only parses flags,
// loads configuration and wires concrete types; the logic lives in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/deputy-auth/deputy/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `deputy — an OAuth 2.0 authorization server for token exchange (RFC 8693)

Usage:
  deputy serve          [--config FILE]   run the server (no config: a development setup)
  deputy demo           [--dir DIR]       sign-in to the last API of a bank, in one process:
                                          each hop's token and the audit trail
  deputy migrate        [--config FILE]   apply storage migrations
  deputy keys rotate    [--config FILE] [--publish-for 1m]
                                          new signing key, published before it signs
  deputy audit verify   [--config FILE]   check the audit log's hash chain
  deputy audit trace ID [--config FILE] [--json]
                                          a token's whole delegation chain (jti, event id or txn)
  deputy audit query    [--config FILE] [--subject S] [--actor A] [--client C]
                        [--audience AUD] [--since T] [--until T] [--type T] [--trace-id ID]
                        [--limit N] [--json]
  deputy policy explain --client C (--subject-token T | --subject-claims JSON
                        [--subject-issuer NAME] [--subject-type TYPE]) [--actor SUB]
                        [--audience A]… [--resource R]… [--scope "S…"]
                        [--requested-token-type T] [--json]
                                          what the exchange policies decide for a
                                          request, and why (exit 0 allowed, 1 denied)
  deputy policy test FILE…                run policy test cases (exit 1 on a failure)
  deputy policy lint    [--strict]        policies that can never decide, and other mistakes
  deputy users add USERNAME (--password-stdin | --password-file FILE) [--claim K=V ...]
                        [--role ROLE ...]
  deputy users list     [--json]          local accounts stored in the database
  deputy users roles USERNAME [--add ROLE ...] [--remove ROLE ...]
                                          roles: auditor opens the audit explorer
  deputy users disable USERNAME | enable USERNAME | delete USERNAME
  deputy version

Every command reads --config FILE, or DEPUTY_CONFIG; every config key can be set by
an environment variable DEPUTY_<PATH>, e.g. DEPUTY_STORAGE_DSN.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "deputy:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status after the command printed its own report.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout)
	case "keys":
		if len(rest) > 0 && rest[0] == "rotate" {
			return cmdKeysRotate(ctx, rest[1:], stdout)
		}
	case "audit":
		if len(rest) > 0 {
			switch rest[0] {
			case "verify":
				return cmdAuditVerify(ctx, rest[1:], stdout)
			case "trace":
				return cmdAuditTrace(ctx, rest[1:], stdout)
			case "query":
				return cmdAuditQuery(ctx, rest[1:], stdout)
			}
		}
	case "policy":
		return cmdPolicy(ctx, rest, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, currentVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// flags returns a FlagSet with the --config flag every command takes.
func flags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("deputy "+name, flag.ContinueOnError)
	file := fs.String("config", os.Getenv("DEPUTY_CONFIG"), "configuration file (YAML)")
	return fs, file
}

// loadConfig reads the configuration; with no file it is the development setup
// (dev reports which).
func loadConfig(file string) (cfg *config.Config, dev bool, err error) {
	if file == "" {
		cfg = config.Dev(".")
		// Environment overrides apply to the development setup too, and are
		// checked as they would be with a file.
		if err := cfg.ApplyEnv(os.Environ()); err != nil {
			return nil, false, err
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return nil, false, err
		}
		return cfg, true, nil
	}
	cfg, err = config.Load(file, os.Environ())
	return cfg, false, err
}
