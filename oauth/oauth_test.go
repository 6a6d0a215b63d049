package oauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/deputy-auth/deputy/oauth"
)

// TestImportsOnlyStandardLibrary enforces doc.go and design §8: oauth is shared with
// the sdk, so nothing it depends on, directly or not, is outside the standard library.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	// go test puts GOROOT/bin first on PATH (Go 1.19), so the go command is there.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-json=ImportPath,Standard", ".")
	cmd.Env = os.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	const self = "github.com/deputy-auth/deputy/oauth"
	var seen []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Standard   bool
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, p.ImportPath)
		if p.ImportPath == self {
			continue
		}
		first, _, _ := strings.Cut(p.ImportPath, "/")
		if strings.Contains(first, ".") || !p.Standard {
			t.Errorf("package oauth depends on %s, which is not in the standard library", p.ImportPath)
		}
	}
	if !slices.Contains(seen, self) || !slices.Contains(seen, "errors") {
		t.Fatalf("go list output not understood; packages seen: %v", seen)
	}
}

// TestErrorStatus: RFC 6749 §5.2 — 401 for invalid_client, 400 for the other client
// errors; 500 and 503 for the server's own.
func TestErrorStatus(t *testing.T) {
	for _, tt := range []struct {
		err  *oauth.Error
		code oauth.Code
		want int
	}{
		{oauth.InvalidRequest("d", nil), oauth.CodeInvalidRequest, http.StatusBadRequest},
		{oauth.InvalidClient("d", nil), oauth.CodeInvalidClient, http.StatusUnauthorized},
		{oauth.InvalidGrant("d", nil), oauth.CodeInvalidGrant, http.StatusBadRequest},
		{oauth.UnauthorizedClient("d", nil), oauth.CodeUnauthorizedClient, http.StatusBadRequest},
		{oauth.UnsupportedGrantType("d", nil), oauth.CodeUnsupportedGrantType, http.StatusBadRequest},
		{oauth.InvalidScope("d", nil), oauth.CodeInvalidScope, http.StatusBadRequest},
		{oauth.InvalidTarget("d", nil), oauth.CodeInvalidTarget, http.StatusBadRequest},
		{oauth.UnsupportedTokenType("d", nil), oauth.CodeUnsupportedTokenType, http.StatusBadRequest},
		{oauth.InvalidDPoPProof("d", nil), oauth.CodeInvalidDPoPProof, http.StatusBadRequest},
		{oauth.UseDPoPNonce("d", nil), oauth.CodeUseDPoPNonce, http.StatusBadRequest},
		{oauth.ServerError(nil), oauth.CodeServerError, http.StatusInternalServerError},
		{oauth.TemporarilyUnavailable("d", nil), oauth.CodeTemporarilyUnavail, http.StatusServiceUnavailable},
		{&oauth.Error{Code: oauth.CodeAccessDenied}, oauth.CodeAccessDenied, http.StatusBadRequest},
	} {
		t.Run(string(tt.code), func(t *testing.T) {
			if tt.err.Code != tt.code {
				t.Errorf("constructor made code %q", tt.err.Code)
			}
			if got := tt.err.Status(); got != tt.want {
				t.Errorf("Status() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestErrorCodesOnTheWire: the codes are exactly the strings of the RFCs.
func TestErrorCodesOnTheWire(t *testing.T) {
	want := map[oauth.Code]string{
		oauth.CodeInvalidRequest: "invalid_request", oauth.CodeInvalidClient: "invalid_client",
		oauth.CodeInvalidGrant: "invalid_grant", oauth.CodeUnauthorizedClient: "unauthorized_client",
		oauth.CodeUnsupportedGrantType: "unsupported_grant_type", oauth.CodeInvalidScope: "invalid_scope",
		oauth.CodeInvalidTarget: "invalid_target", oauth.CodeUnsupportedTokenType: "unsupported_token_type",
		oauth.CodeServerError: "server_error", oauth.CodeTemporarilyUnavail: "temporarily_unavailable",
		oauth.CodeAccessDenied: "access_denied",
	}
	for c, s := range want {
		if string(c) != s {
			t.Errorf("code %q, want %q", c, s)
		}
	}
}

// TestAsError: a protocol error found anywhere in a wrapped chain is returned as is;
// anything else becomes server_error that keeps the original as its cause.
func TestAsError(t *testing.T) {
	inner := oauth.InvalidTarget("audience not allowed", errors.New("policy p1"))
	wrapped := fmt.Errorf("grant: %w", fmt.Errorf("exchange: %w", inner))
	if got := oauth.AsError(wrapped); got != inner {
		t.Errorf("AsError(wrapped) = %v, want the inner error %v", got, inner)
	}
	if got := oauth.AsError(inner); got != inner {
		t.Errorf("AsError(protocol error) = %v", got)
	}

	plain := errors.New("disk on fire")
	got := oauth.AsError(fmt.Errorf("store: %w", plain))
	if got.Code != oauth.CodeServerError || got.Status() != http.StatusInternalServerError {
		t.Errorf("AsError(plain) = %+v, want server_error", got)
	}
	if !errors.Is(got, plain) {
		t.Error("AsError(plain) lost its cause")
	}
	if strings.Contains(got.Description, "fire") {
		t.Errorf("the description shows the cause: %q", got.Description)
	}
}

// TestErrorWrapsCause: Cause is reachable with errors.Is / errors.As, shows in
// Error() and Reason() (logs, audit), and is nil-safe.
func TestErrorWrapsCause(t *testing.T) {
	cause := errors.New("jti reused")
	e := oauth.InvalidClient("client authentication failed", cause)
	if !errors.Is(e, cause) || errors.Unwrap(e) != cause {
		t.Error("cause not reachable through Unwrap")
	}
	if got, want := e.Error(), "invalid_client: client authentication failed (jti reused)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := e.Reason(), "client authentication failed: jti reused"; got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
	bare := &oauth.Error{Code: oauth.CodeInvalidGrant}
	if bare.Error() != "invalid_grant" || bare.Reason() != "" || bare.Unwrap() != nil {
		t.Errorf("bare error: %q %q", bare.Error(), bare.Reason())
	}
	if got := (&oauth.Error{Code: oauth.CodeServerError, Cause: cause}).Reason(); got != "jti reused" {
		t.Errorf("Reason() without description = %q", got)
	}
}

// TestCauseNeverSerialised: the JSON of an error is RFC 6749 §5.2's error and
// error_description, never the cause.
func TestCauseNeverSerialised(t *testing.T) {
	const secret = "postgres://deputy:hunter2@db/deputy"
	for _, tt := range []struct {
		err  *oauth.Error
		want string
	}{
		{oauth.InvalidClient("client authentication failed", errors.New(secret)),
			`{"error":"invalid_client","error_description":"client authentication failed"}`},
		{oauth.ServerError(fmt.Errorf("open %s: refused", secret)),
			`{"error":"server_error","error_description":"internal error"}`},
		{oauth.AsError(errors.New(secret)),
			`{"error":"server_error","error_description":"internal error"}`},
		{&oauth.Error{Code: oauth.CodeInvalidGrant, Cause: errors.New(secret)},
			`{"error":"invalid_grant"}`},
	} {
		b, err := json.Marshal(tt.err)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("json.Marshal = %s, want %s", b, tt.want)
		}
		if strings.Contains(string(b), "hunter2") || strings.Contains(strings.ToLower(string(b)), "cause") {
			t.Errorf("the cause is serialised: %s", b)
		}
	}
}

// TestActorChain: Depth and Chain of the act claim (RFC 8693 §4.1): outermost actor
// first.
func TestActorChain(t *testing.T) {
	var none *oauth.Actor
	if none.Depth() != 0 || none.Chain() != nil {
		t.Errorf("nil actor: depth %d, chain %v", none.Depth(), none.Chain())
	}
	one := &oauth.Actor{Subject: "api1"}
	if one.Depth() != 1 || !slices.Equal(one.Chain(), []string{"api1"}) {
		t.Errorf("one actor: depth %d, chain %v", one.Depth(), one.Chain())
	}
	three := &oauth.Actor{Subject: "api3", Actor: &oauth.Actor{Subject: "api2", Actor: &oauth.Actor{Subject: "api1", Issuer: "https://idp.example"}}}
	if three.Depth() != 3 || !slices.Equal(three.Chain(), []string{"api3", "api2", "api1"}) {
		t.Errorf("three actors: depth %d, chain %v", three.Depth(), three.Chain())
	}

	b, err := json.Marshal(three)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"sub":"api3","act":{"sub":"api2","act":{"sub":"api1","iss":"https://idp.example"}}}`
	if string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
	var back oauth.Actor
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Chain(), three.Chain()) || back.Actor.Actor.Issuer != "https://idp.example" {
		t.Errorf("round trip: %+v", back)
	}
}

// TestTokenTypeNames: every RFC 8693 §3 token type URI has a short configuration name
// and back; unknown names and URIs are refused.
func TestTokenTypeNames(t *testing.T) {
	for _, tt := range []struct {
		typ   oauth.TokenType
		short string
	}{
		{oauth.TokenTypeAccessToken, "access_token"},
		{oauth.TokenTypeRefreshToken, "refresh_token"},
		{oauth.TokenTypeIDToken, "id_token"},
		{oauth.TokenTypeJWT, "jwt"},
		{oauth.TokenTypeSAML1, "saml1"},
		{oauth.TokenTypeSAML2, "saml2"},
		{oauth.TokenTypeTxnToken, "txn_token"},
	} {
		t.Run(tt.short, func(t *testing.T) {
			if want := "urn:ietf:params:oauth:token-type:" + tt.short; string(tt.typ) != want {
				t.Errorf("URI %q, want %q", tt.typ, want)
			}
			if got := tt.typ.ShortName(); got != tt.short {
				t.Errorf("ShortName() = %q, want %q", got, tt.short)
			}
			back, ok := oauth.TokenTypeFromShort(tt.short)
			if !ok || back != tt.typ {
				t.Errorf("TokenTypeFromShort(%q) = %q, %v", tt.short, back, ok)
			}
		})
	}
	for _, name := range []string{"", "Access_Token", "access-token", "urn:ietf:params:oauth:token-type:jwt", "saml"} {
		if typ, ok := oauth.TokenTypeFromShort(name); ok {
			t.Errorf("TokenTypeFromShort(%q) = %q, true", name, typ)
		}
	}
	for _, typ := range []oauth.TokenType{"", "jwt", "urn:ietf:params:oauth:token-type:other", "urn:ietf:params:oauth:token-type:JWT"} {
		if got := typ.ShortName(); got != "" {
			t.Errorf("ShortName(%q) = %q, want \"\"", typ, got)
		}
	}
}

// TestInactiveIntrospectionWire: RFC 7662 §2.2 — an inactive token is exactly
// {"active":false}.
func TestInactiveIntrospectionWire(t *testing.T) {
	b, err := json.Marshal(oauth.IntrospectionResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"active":false}` {
		t.Errorf("json %s", b)
	}
}

// TestTokenResponseWire: RFC 8693 §2.2.1 — scope is always present; the optional
// members are omitted when empty.
func TestTokenResponseWire(t *testing.T) {
	b, err := json.Marshal(oauth.TokenResponse{AccessToken: "t", TokenType: oauth.TokenTypeNA})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"access_token":"t","token_type":"N_A","scope":""}`; string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
}
