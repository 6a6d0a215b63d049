package sqlstore

import (
	"strings"
)

// redacted replaces a password wherever RedactDSN finds one.
const redacted = "xxxxx"

// RedactDSN returns dsn with every password replaced by "xxxxx", for printing and
// logging: the password of a URL's user information (postgres://user:pw@host/db), a
// password query parameter, and the password of a keyword/value string
// (host=db password=pw, password = 'p w'). Anything else is left as written; a SQLite
// path has no password. It is the one place deputy prints a dsn through.
func RedactDSN(dsn string) string {
	out := dsn
	for _, pw := range dsnPasswords(dsn) {
		out = strings.ReplaceAll(out, pw, redacted)
	}
	return out
}

// redactError hides the passwords of dsn in err's message, keeping err for
// errors.Is and errors.As: pgx's parse errors quote the connection string, and it
// removes only the passwords it recognises.
func redactError(err error, dsn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	pws := dsnPasswords(dsn)
	for _, pw := range pws {
		msg = strings.ReplaceAll(msg, pw, redacted)
	}
	if len(pws) == 0 && msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// dsnPasswords lists the passwords written in dsn, longest first (so that one that
// contains another is replaced whole), each as it is written there and, when that
// differs, as it reads once decoded.
func dsnPasswords(dsn string) []string {
	var pws []string
	add := func(pw string) {
		if pw != "" && pw != redacted {
			pws = append(pws, pw)
		}
	}
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && !strings.ContainsAny(scheme, " =") {
		// user:password@host…: the last '@' of the authority ends the user
		// information, whatever characters a careless password holds.
		authority := rest
		if i := strings.IndexAny(authority, "?#"); i >= 0 {
			authority = authority[:i]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
				add(pw)
				add(unescape(pw))
			}
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for kv := range strings.SplitSeq(query, "&") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(unescape(k), "password") {
					add(v)
					add(unescape(v))
				}
			}
		}
	} else {
		for k, v := range keywordValues(dsn) {
			if k == "password" {
				add(v.raw)
				add(v.value)
			}
		}
	}
	// Longest first: "pw" inside "pw2" must not leave "2" behind.
	for i := range pws {
		for j := i + 1; j < len(pws); j++ {
			if len(pws[j]) > len(pws[i]) {
				pws[i], pws[j] = pws[j], pws[i]
			}
		}
	}
	return pws
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					b.WriteByte(h<<4 | l)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

type kvValue struct{ raw, value string }

// keywordValues reads a libpq keyword/value string (key = value, values optionally
// in single quotes with backslash escapes), leniently: it is for finding secrets,
// not for validating, so it reads as far as it can.
func keywordValues(s string) func(yield func(string, kvValue) bool) {
	return func(yield func(string, kvValue) bool) {
		i := 0
		skip := func() {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
				i++
			}
		}
		for {
			skip()
			start := i
			for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
				i++
			}
			key := s[start:i]
			skip()
			if i >= len(s) || s[i] != '=' {
				if i >= len(s) {
					return
				}
				continue // a word without '=': read on
			}
			i++
			skip()
			vstart := i
			var v strings.Builder
			if i < len(s) && s[i] == '\'' {
				i++
				for i < len(s) && s[i] != '\'' {
					if s[i] == '\\' && i+1 < len(s) {
						i++
					}
					v.WriteByte(s[i])
					i++
				}
				if i < len(s) {
					i++
				}
			} else {
				for i < len(s) && s[i] != ' ' && s[i] != '\t' {
					if s[i] == '\\' && i+1 < len(s) {
						i++
					}
					v.WriteByte(s[i])
					i++
				}
			}
			raw := strings.Trim(s[vstart:i], "'")
			if !yield(key, kvValue{raw: raw, value: v.String()}) {
				return
			}
		}
	}
}
