package report

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestWireGolden pins the JSON of a report: member names, omitted empty members,
// times in UTC with microseconds.
func TestWireGolden(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	calls := []Call{
		{TokenJTI: "abc", Action: "read", Resource: "account/42", Outcome: "ok", Detail: "for alice via payments",
			Time: time.Date(2026, 11, 25, 23, 0, 0, 123456789, cet)},
		{TokenJTI: "def", Action: "write", Time: time.Date(2026, 11, 25, 22, 0, 1, 0, time.UTC)},
		{TokenJTI: "ghi", Action: "list", Resource: `a"b<c>&\`, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
	}
	reports, tooLarge := encodeReports(calls)
	if len(reports) != 1 || len(tooLarge) != 0 {
		t.Fatalf("%d reports, %d too large; want 1, 0", len(reports), len(tooLarge))
	}
	got := append(reports[0].body, '\n')
	golden := filepath.Join("testdata", "report.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report body\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

func TestUnsafeJTI(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := func(payload string) string {
		return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".sig"
	}
	for _, tc := range []struct {
		name, raw, jti string // jti "" when an error is wanted
	}{
		{"ok/jti", tok(`{"jti":"abc","sub":"alice"}`), "abc"},
		{"ok/empty-signature", tok(`{"jti":"abc"}`)[:len(tok(`{"jti":"abc"}`))-3], "abc"},
		{"ok/padded-payload", enc([]byte("{}")) + "." + base64.URLEncoding.EncodeToString([]byte(`{"jti":"ab"}`)) + ".s", "ab"},
		{"fail/no-jti", tok(`{"sub":"alice"}`), ""},
		{"fail/empty-jti", tok(`{"jti":""}`), ""},
		{"fail/jti-number", tok(`{"jti":7}`), ""},
		{"fail/payload-not-object", tok(`"abc"`), ""},
		{"fail/payload-not-json", tok(`jti=abc`), ""},
		{"fail/payload-not-base64url", "e30.!!!.sig", ""},
		{"fail/two-parts", "e30.e30", ""},
		{"fail/jwe-five-parts", "a.b.c.d.e", ""},
		{"fail/opaque", "2YotnFZFEjr1zCsicMWpAA", ""},
		{"fail/empty", "", ""},
		{"fail/too-large", tok(`{"jti":"abc","pad":"` + strings.Repeat("x", maxToken) + `"}`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jti, err := unsafeJTI(tc.raw)
			if tc.jti == "" {
				if err == nil {
					t.Errorf("unsafeJTI = %q, want an error", jti)
				}
				return
			}
			if err != nil || jti != tc.jti {
				t.Errorf("unsafeJTI = %q, %v; want %q", jti, err, tc.jti)
			}
		})
	}
}

// FuzzUnsafeJTI feeds the parser of the tokens services receive: it must not panic,
// and a success always yields a jti.
func FuzzUnsafeJTI(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(`{"jti":"abc"}`)) + ".sig",
		"a.b.c", "..", "a.b.c.d.e", "", "e30." + enc([]byte(`{"jti":null}`)) + ".",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		jti, err := unsafeJTI(raw)
		if err == nil && jti == "" {
			t.Fatalf("unsafeJTI(%q) succeeded without a jti", raw)
		}
	})
}
