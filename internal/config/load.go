package config

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Load reads the YAML file (file "" means no file: start from an empty
// configuration), applies the DEPUTY_… overrides found in env (an os.Environ-style
// list of "KEY=value"), fills in defaults and validates the result.
//
// Relative file paths written in the file (every *_file key, and storage.dsn for
// SQLite) are made relative to the file's directory; those from env and the
// defaults stay relative to the working directory.
//
// Problems with the configuration are returned as an [*Error] listing all of them:
// every decoding problem, else every override problem, else every validation
// problem. Failing to read the file is returned as it is.
func Load(file string, env []string) (*Config, error) {
	c, _, err := LoadSum(file, env)
	return c, err
}

// LoadSum is Load that also returns the SHA-256 of the file as it was read (zero
// without a file, or when it cannot be read), so that a reload records the very
// bytes it applied or refused.
func LoadSum(file string, env []string) (_ *Config, sum [sha256.Size]byte, _ error) {
	c, o, sum, err := read(file, env)
	if err != nil {
		return nil, sum, err
	}
	if ps := c.validate(o); len(ps) > 0 {
		return nil, sum, &Error{Problems: ps}
	}
	return c, sum, nil
}

// Inspection is a configuration as read, with its validation problems instead of
// being refused for them: for a tool that reports on a configuration the server
// would refuse (deputy policy lint).
type Inspection struct {
	Config *Config
	// Problems are the validation problems Load would have refused it for.
	Problems []Problem
	origins  origins
}

// Where is where the value at path came from ("deputy.yaml:12:5"), or the closest
// enclosing key's; "" when unknown.
func (in *Inspection) Where(path string) string { return in.origins.of(path) }

// Inspect reads file as Load does, but returns an invalid configuration with its
// validation problems rather than refusing it. Decoding and override problems are
// still an [*Error]: there is then no configuration to report on.
func Inspect(file string, env []string) (*Inspection, error) {
	c, o, _, err := read(file, env)
	if err != nil {
		return nil, err
	}
	return &Inspection{Config: c, Problems: c.validate(o), origins: o}, nil
}

// read is Load without the validation: the file decoded, the overrides applied,
// paths resolved and defaults filled in, with where each value came from.
func read(file string, env []string) (_ *Config, _ origins, sum [sha256.Size]byte, _ error) {
	c := &Config{}
	origins := origins{}
	if file != "" {
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, sum, fmt.Errorf("config: %w", err)
		}
		sum = sha256.Sum256(src)
		if ps := decodeYAML(file, src, c, origins); len(ps) > 0 {
			return nil, nil, sum, &Error{Problems: ps}
		}
	}
	if ps := c.applyEnv(env, origins); len(ps) > 0 {
		return nil, nil, sum, &Error{Problems: ps}
	}
	if file != "" {
		dir, err := filepath.Abs(filepath.Dir(file))
		if err != nil {
			return nil, nil, sum, fmt.Errorf("config: %w", err)
		}
		c.resolvePaths(dir, origins)
	}
	c.SetDefaults()
	return c, origins, sum, nil
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Where is the value's origin when it is known: "deputy.yaml:12:5" for a file,
	// "$DEPUTY_ISSUER" for an environment variable. A problem with a key that is not
	// set points at the closest enclosing key that is.
	Where string
	// Path is the key path, like "clients[1].auth_method" or "users[0].claims.email";
	// "" for the whole document.
	Path string
	// Message says what is wrong; it never repeats a secret.
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is an invalid configuration: every problem found, in the order of the keys.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// origins maps key paths to where their values came from (see Problem.Where).
type origins map[string]string

// TextSuffix, appended to a condition's key path in origins, gives where each
// character of its text came from (see textOrigin).
const TextSuffix = "\x00text"

// within returns the position of line and column (1-based, the column counted in
// characters, as CEL counts them) in text, the value at path: "deputy.yaml:14:22"
// for a value from a file, "$DEPUTY_…:1:5" for one from the environment, where the
// text begins when its characters could not be followed, or the key's own origin
// when that is unknown too.
func (o origins) within(path, text string, line, col int) string {
	if w := o[path]; strings.HasPrefix(w, "$") {
		return fmt.Sprintf("%s:%d:%d", w, line, col)
	}
	w, ok := o[path+TextSuffix]
	if !ok {
		return o.of(path)
	}
	file, table, ok := strings.Cut(w, "\x00")
	if !ok {
		return w // where the text begins
	}
	off := runeOffset(text, line, col)
	var at position
	for r := range strings.SplitSeq(table, "\x00") {
		var run textRun
		if _, err := fmt.Sscanf(r, "%d:%d:%d", &run.off, &run.at.line, &run.at.col); err != nil || run.off > off {
			break
		}
		at = position{run.at.line, run.at.col + off - run.off}
	}
	if at.line == 0 {
		return o.of(path) // not a table textOrigin.String wrote
	}
	return fmt.Sprintf("%s:%d:%d", file, at.line, at.col)
}

// runeOffset is the offset in characters of line and column (1-based) in text,
// whose lines end with "\n"; a place past the end of a line or of text is the end.
func runeOffset(text string, line, col int) int {
	off := 0
	for l := range strings.SplitAfterSeq(text, "\n") {
		n := utf8.RuneCountInString(strings.TrimSuffix(l, "\n"))
		if line--; line < 1 {
			return off + min(max(col-1, 0), n)
		}
		off += utf8.RuneCountInString(l)
	}
	return off
}

// of returns the origin of path, or of its closest enclosing path that has one.
func (o origins) of(path string) string {
	for {
		if w, ok := o[path]; ok {
			return w
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return o[""]
		}
		path = path[:i]
	}
}
