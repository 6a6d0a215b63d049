package config

import (
	"cmp"
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment variable that overrides a key.
const EnvPrefix = "DEPUTY_"

// Environment variables that start with EnvPrefix but are not configuration keys.
const (
	// EnvConfig names the configuration file (the CLI's --config).
	EnvConfig = "DEPUTY_CONFIG"
	// EnvTestPrefix starts variables reserved for tests and tooling.
	EnvTestPrefix = "DEPUTY_TEST_"
)

// ApplyEnv sets keys from DEPUTY_<PATH> variables in env (an os.Environ-style list of
// "NAME=value"). The rules:
//
//   - every key that holds a value can be set; its PATH is the key path upper-cased
//     with "_" between the segments: DEPUTY_ISSUER, DEPUTY_STORAGE_DSN,
//     DEPUTY_TOKENS_ACCESS_TOKEN_TTL, DEPUTY_EXCHANGE_POLICIES_0_MAX_CHAIN;
//   - an element of a list is chosen by its index: DEPUTY_CLIENTS_0_SECRET sets
//     clients[0].secret. The index may be one past the end of the list, which adds an
//     element (DEPUTY_CLIENTS_2_ID=x with two clients configured); further variables
//     may then fill that element in, in any order;
//   - a list of text is given comma-separated: DEPUTY_CLIENTS_0_SCOPES=a,b (spaces
//     around items are dropped); an empty value empties the list;
//   - an entry of a mapping (users[].claims) is named by its key in lower case:
//     DEPUTY_USERS_0_CLAIMS_EMAIL sets users[0].claims.email;
//   - durations are Go durations (90s, 5m, 24h); integers are decimal; booleans are
//     exactly true or false. An empty value resets any key to unset, so its default
//     applies;
//   - a variable starting with DEPUTY_ that names no key, or names a section rather
//     than a key (DEPUTY_TOKENS), is an error, so that a typo is not silently
//     ignored. DEPUTY_CONFIG and names starting with DEPUTY_TEST_ are not keys and are
//     left alone, and so are the service links Kubernetes sets for a Service named
//     deputy or deputy-… (DEPUTY_SERVICE_HOST, DEPUTY_PORT_8080_TCP_ADDR, …; see
//     linkServiceHost for the exact names and values).
//
// All problems are returned together as an [*Error].
func (c *Config) ApplyEnv(env []string) error {
	if ps := c.applyEnv(env, origins{}); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// override is one environment variable, parsed.
type override struct {
	name  string // DEPUTY_CLIENTS_0_SECRET
	value string
	path  []segment
}

// segment is one step of a key path: a key, or an index into a list.
type segment struct {
	key   string // yaml key, or map key; "" for an index
	index int
}

func (s segment) isIndex() bool { return s.key == "" }

func pathString(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.isIndex() {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

func (c *Config) applyEnv(env []string, origins origins) []Problem {
	var problems []Problem
	var overrides []override
	root := reflect.TypeFor[Config]()
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig || strings.HasPrefix(name, EnvTestPrefix) {
			continue
		}
		path, err := envPath(root, strings.TrimPrefix(name, EnvPrefix))
		if err != "" && serviceLink(name, value) {
			continue // set by Kubernetes for a Service named deputy…, not for us
		}
		if err != "" {
			problems = append(problems, Problem{Where: "$" + name, Message: err})
			continue
		}
		overrides = append(overrides, override{name: name, value: value, path: path})
	}
	// Apply in path order, indexes compared as numbers, so that list elements are
	// added one after another whatever the order of env.
	slices.SortStableFunc(overrides, func(a, b override) int { return comparePaths(a.path, b.path) })
	v := reflect.ValueOf(c).Elem()
	for _, o := range overrides {
		path := pathString(o.path)
		if msg := setPath(v, o.path, o.value); msg != "" {
			problems = append(problems, Problem{Where: "$" + o.name, Path: path, Message: msg})
			continue
		}
		origins[path] = "$" + o.name
		// A list element the variable added is located by it too.
		for n, seg := range o.path {
			if seg.isIndex() {
				if p := pathString(o.path[:n+1]); origins[p] == "" {
					origins[p] = "$" + o.name
				}
			}
		}
	}
	return problems
}

func comparePaths(a, b []segment) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i].key, b[i].key); c != 0 {
			return c
		}
		if c := cmp.Compare(a[i].index, b[i].index); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// envPath finds the key path that name (without the prefix) spells in type t, by
// trying each yaml key of t, upper-cased, as a prefix. It returns a message when
// name spells no key, or more than one.
func envPath(t reflect.Type, name string) ([]segment, string) {
	paths := matchEnv(t, name)
	switch len(paths) {
	case 1:
		return paths[0], ""
	case 0:
		return nil, unknownEnv(name)
	}
	var alts []string
	for _, p := range paths {
		alts = append(alts, pathString(p))
	}
	return nil, "ambiguous: could be any of " + strings.Join(alts, ", ")
}

// matchEnv lists every path through t that name spells. A path ending in a
// section (a struct, a list of structs) is reported as a one-segment path whose
// key starts with "!", for unknownEnv to explain.
func matchEnv(t reflect.Type, name string) [][]segment {
	switch {
	case isLeaf(t):
		if name == "" {
			return [][]segment{nil}
		}
		return nil
	case t.Kind() == reflect.Map:
		if name == "" {
			return nil
		}
		return [][]segment{{{key: strings.ToLower(name)}}}
	case t.Kind() == reflect.Slice:
		digits, rest, _ := strings.Cut(name, "_")
		i, err := strconv.Atoi(digits)
		if err != nil || i < 0 || strconv.Itoa(i) != digits {
			return nil
		}
		var out [][]segment
		for _, p := range matchEnv(t.Elem(), rest) {
			out = append(out, append([]segment{{index: i}}, p...))
		}
		return out
	case t.Kind() == reflect.Struct:
		var out [][]segment
		for i := range t.NumField() {
			key := yamlKey(t.Field(i))
			if key == "" {
				continue
			}
			upper := strings.ToUpper(key)
			rest, ok := strings.CutPrefix(name, upper)
			if !ok || (rest != "" && rest[0] != '_') {
				continue
			}
			rest = strings.TrimPrefix(rest, "_")
			for _, p := range matchEnv(t.Field(i).Type, rest) {
				out = append(out, append([]segment{{key: key}}, p...))
			}
		}
		return out
	}
	return nil
}

// isLeaf reports whether values of t are set by one variable.
func isLeaf(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// unknownEnv explains a name that spells no key, proposing the closest one.
func unknownEnv(name string) string {
	// Compare with every variable name the schema has, list indexes written as N.
	norm := strings.Split(name, "_")
	var indexes []string
	for i, seg := range norm {
		if n, err := strconv.Atoi(seg); err == nil {
			if n < 0 || strconv.Itoa(n) != seg {
				return fmt.Sprintf("names no configuration key: write the list index %s as a plain decimal number, like 0 or 12", seg)
			}
			indexes = append(indexes, seg)
			norm[i] = "N"
		}
	}
	given := strings.Join(norm, "_")
	// spell writes a schema name with the indexes of the given one.
	spell := func(known string) string {
		for _, i := range indexes {
			known = strings.Replace(known, "<N>", i, 1)
		}
		return EnvPrefix + known
	}
	best, bestDist := "", len(given)/4+2
	for _, known := range EnvNames() {
		known = strings.TrimPrefix(known, EnvPrefix)
		plain := strings.NewReplacer("<N>", "N", "<KEY>", "KEY").Replace(known)
		if strings.HasPrefix(plain, given+"_") {
			return "names a section, not a key; set its keys, like " + spell(known)
		}
		if d := editDistance(given, plain); d < bestDist {
			best, bestDist = known, d
		}
	}
	if best != "" {
		return "names no configuration key; did you mean " + spell(best) + "?"
	}
	return "names no configuration key"
}

// EnvNames lists the name of every environment variable that can override a key, in
// the order of the schema, with "<N>" for a list index and "<KEY>" for a mapping key
// (DEPUTY_CLIENTS_<N>_SECRET, DEPUTY_USERS_<N>_CLAIMS_<KEY>).
func EnvNames() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		switch {
		case isLeaf(t):
			out = append(out, prefix)
		case t.Kind() == reflect.Map:
			out = append(out, prefix+"_<KEY>")
		case t.Kind() == reflect.Slice:
			walk(t.Elem(), prefix+"_<N>")
		case t.Kind() == reflect.Struct:
			for i := range t.NumField() {
				if key := yamlKey(t.Field(i)); key != "" {
					walk(t.Field(i).Type, prefix+"_"+strings.ToUpper(key))
				}
			}
		}
	}
	walk(reflect.TypeFor[Config](), strings.TrimSuffix(EnvPrefix, "_"))
	return out
}

// setPath sets the key at path in v (a Config) from text, adding a list element
// when an index is one past the end. It returns a message when it cannot.
func setPath(v reflect.Value, path []segment, text string) string {
	for n, s := range path {
		switch {
		case s.isIndex():
			switch {
			case s.index < v.Len():
			case s.index == v.Len():
				v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
			default:
				return fmt.Sprintf("index %d is past the end of %s, which has %d element(s); add elements in order, from %d", s.index, pathString(path[:n]), v.Len(), v.Len())
			}
			v = v.Index(s.index)
		case v.Kind() == reflect.Map:
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			if text == "" {
				v.SetMapIndex(reflect.ValueOf(s.key), reflect.Value{})
			} else {
				v.SetMapIndex(reflect.ValueOf(s.key), reflect.ValueOf(text))
			}
			return ""
		default:
			v = v.Field(fieldsOf(v.Type())[s.key])
		}
	}
	return setText(v, text)
}

// setText parses text into the leaf v. An empty text sets the zero value.
func setText(v reflect.Value, text string) string {
	if text == "" {
		v.SetZero()
		return ""
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if err := u.UnmarshalText([]byte(text)); err != nil {
			return fmt.Sprintf("%q is not %s: %v", text, describe(v.Type()), err)
		}
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		switch text {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return fmt.Sprintf("%q is not true or false", text)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := strconv.ParseInt(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Sprintf("%q is not a decimal integer in range", text)
		}
		v.SetInt(x)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(text, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		panic("config: no environment override for " + v.Type().String())
	}
	return ""
}
