package config

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// resolvePaths makes the relative file paths written in the configuration file
// relative to that file's directory dir: every key whose name ends in "_file"
// (tls.cert_file, clients[].jwks_file, trusted_issuers[].jwks_file,
// saml_idps[].certificate_file, …) and storage.dsn when the driver is sqlite.
// Values from environment variables (origins "$…") and defaults are left as they
// are, relative to the working directory.
func (c *Config) resolvePaths(dir string, origins origins) {
	fromFile := func(path string) bool {
		w, ok := origins[path]
		return ok && !strings.HasPrefix(w, "$")
	}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				key := yamlKey(t.Field(i))
				if key == "" {
					continue
				}
				p := key
				if path != "" {
					p = path + "." + key
				}
				f := v.Field(i)
				if f.Kind() == reflect.String && strings.HasSuffix(key, "_file") {
					if s := f.String(); s != "" && fromFile(p) {
						f.SetString(resolvePath(dir, s))
					}
					continue
				}
				walk(f, p)
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Struct {
				for i := range v.Len() {
					walk(v.Index(i), path+"["+strconv.Itoa(i)+"]")
				}
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	if (c.Storage.Driver == "" || c.Storage.Driver == DriverSQLite) && fromFile("storage.dsn") {
		c.Storage.DSN = resolveSQLiteDSN(dir, c.Storage.DSN)
	}
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// resolveSQLiteDSN resolves the file of a SQLite dsn: a path, or a "file:" URI
// (file:deputy.db?mode=rwc), each optionally with "?" parameters. In-memory
// databases have no file.
func resolveSQLiteDSN(dir, dsn string) string {
	name, query, hasQuery := strings.Cut(dsn, "?")
	prefix := ""
	if rest, ok := strings.CutPrefix(name, "file:"); ok {
		prefix, name = "file:", rest
		if strings.HasPrefix(name, "//") {
			return dsn // file://host/path: already absolute
		}
	}
	if name == "" || name == ":memory:" || strings.HasPrefix(name, ":memory:") {
		return dsn
	}
	if strings.Contains(query, "mode=memory") {
		return dsn
	}
	out := prefix + resolvePath(dir, name)
	if hasQuery {
		out += "?" + query
	}
	return out
}
