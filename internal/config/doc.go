// Package config is deputy's typed configuration: the YAML schema of design §3,
// strict loading, DEPUTY_… environment overrides, defaults, and a table of
// validation checks that name the key at fault.
//
// [Load] is the one entry point for a configuration file. It
//
//  1. decodes the YAML strictly: unknown keys, duplicate keys, wrong types (a list
//     where a key is expected, 1.5 or "12" for an integer, yes for a boolean), bad
//     durations and unresolvable aliases are errors that name the file, line, column
//     and key path ("deputy.yaml:12:5: clients[1].secrett: unknown key; did you mean
//     \"secret\"?"). Scalars given for text keys are taken as written, so
//     `secret: 0123` is the text "0123", not the number 83. Anchors, aliases and
//     merge keys (<<) work; top-level keys starting with "x-" are ignored so they can
//     hold anchors. A file holds one YAML document;
//  2. applies DEPUTY_<PATH> environment overrides (see [Config.ApplyEnv]);
//  3. fills in defaults (see [Config.SetDefaults] and the Default… constants);
//  4. validates (see [Config.Validate]), collecting every problem rather than the
//     first.
//
// Every problem is a [Problem]; several are returned together as an [*Error], one per
// line. Secrets and password hashes are never echoed in messages.
//
// [Dev] is the development setup `deputy serve` runs without a configuration file.
//
// Relative file paths written in a configuration file (every key named *_file:
// tls.cert_file, tls.key_file, clients[].jwks_file, trusted_issuers[].jwks_file,
// saml_idps[] and upstream_idps[] certificate_file and metadata_file; and
// storage.dsn for SQLite) are relative to that file's directory: [Load] makes them
// absolute. Paths set by environment variables, the default storage.dsn and those
// of [Dev] are relative to the working directory of the process. This package
// does not open them.
//
// Imports: the standard library, github.com/goccy/go-yaml (its parser only: the
// decoding into the schema is done here, so that messages can name key paths and
// text keys keep what was written), deputy's oauth vocabulary and
// internal/policy/condition, which type-checks exchange.policies[].condition while
// the file's positions are at hand (it imports cel-go and nothing of deputy's).
// Nothing else; in particular no other deputy package, so that every package may
// depend on this one. config_test.go enforces it.
package config
