package jsonx

import (
	"encoding/json"
	"testing"
)

func sameString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Fatalf("AppendString(%q) = %s, want x%s", s, got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `"\`, "<a href='x'>&amp;</a>", "\b\f\n\r\t\x00\x1f\x7f",
		"\u2028\u2029", "é日本", "\xff", "a\xc3", "\xed\xa0\x80", "\U0001F600"} {
		sameString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("alice")
	f.Add("<&>\u2028\xff\x00")
	f.Fuzz(func(t *testing.T, s string) { sameString(t, s) })
}
