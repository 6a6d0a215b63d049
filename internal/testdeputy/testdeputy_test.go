package testdeputy_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/internal/testdeputy"
)

func TestStartIssuesTokensForItsURL(t *testing.T) {
	d := testdeputy.Start(t, nil)
	raw := d.ClientCredentials("web-app", "payments:read")
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Iss, Sub, Aud string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Iss != d.URL || c.Sub != "web-app" || c.Aud != "https://api1.example" {
		t.Errorf("claims %+v, want iss %s", c, d.URL)
	}
}
