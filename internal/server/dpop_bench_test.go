package server_test

import (
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// BenchmarkExchangeDPoP is the exchange of BenchmarkExchange sender-constrained
// (RFC 9449), as deputy-bench's exchange-dpop scenario sends it: web-app's
// DPoP-bound subject token, exchanged by api1 with a fresh ES256 proof of api1's
// own key on every request, for a DPoP-bound token. The proofs are signed before
// the timer starts — making them is the client's work, not the server's — so
// what is measured is the server's: the proof check, the jti's replay record
// (RFC 9449 §11.1), the exchange and its durable audit append. "bearer" is the
// same exchange of a bearer subject token without DPoP on the same node, for
// the ratio the README states.
//
//	go test -run - -bench ExchangeDPoP -count 6 ./internal/server
func BenchmarkExchangeDPoP(b *testing.B) {
	s := node(b)
	htu := s.Config.Issuer + "/token"
	subjectKey, clientKey := newKey(b), newKey(b)
	t0 := accessToken(b, tokenWithProofs(s.Handler, "web-app", "web-app-secret", ccForm, newProof(b, subjectKey, htu)))
	if cnf, _ := claimsOf(b, t0)["cnf"].(map[string]any); cnf["jkt"] == nil {
		b.Fatalf("the subject token is not DPoP-bound: %v", claimsOf(b, t0))
	}
	bearer := accessToken(b, post(s.Handler, "web-app", "web-app-secret", ccForm))
	for _, mode := range []string{"bearer", "dpop"} {
		form := exchangeForm(bearer, "https://api2.example")
		if mode == "dpop" {
			form = exchangeForm(t0, "https://api2.example")
		}
		proofs := func(n int) []string {
			if mode == "bearer" {
				return nil
			}
			out := make([]string, n)
			for i := range out {
				out[i] = newProof(b, clientKey, htu)
			}
			return out
		}
		want := oauth.TokenTypeBearer
		if mode == "dpop" {
			want = oauth.TokenTypeDPoP
		}
		b.Run(mode+"/serial", func(b *testing.B) {
			ps := proofs(b.N)
			defer cpuPerOp(b)()
			for i := 0; i < b.N; i++ {
				if err := exchangeOnce(s.Handler, form, ps, i, want); err != "" {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode+"/parallel", func(b *testing.B) {
			ps := proofs(b.N)
			var next atomic.Int64
			b.SetParallelism(16)
			defer cpuPerOp(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := exchangeOnce(s.Handler, form, ps, int(next.Add(1)-1), want); err != "" {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// cpuPerOp resets b's timer and returns a func that reports the process's CPU
// time (user and system, every goroutine: the audit writer's commits too) per
// operation since, as cpu-µs/op: on a machine shared with other work that is
// steadier than ns/op, which also counts the waits for the disk and the CPU.
func cpuPerOp(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start := cpu()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkDPoPProofSign is what making one proof costs the client
// (sdk/dpop.NewProof, ES256): BenchmarkExchangeDPoP signs its proofs before its
// timer starts; this is the figure to subtract where a run signs them inside.
func BenchmarkDPoPProofSign(b *testing.B) {
	k := newKey(b)
	for b.Loop() {
		if _, err := dpop.NewProof(k, jose.ES256, http.MethodPost, "https://deputy.example/token", "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// newProof is a fresh proof of k (a new jti, iat now) for a POST to htu.
func newProof(tb testing.TB, k crypto.Signer, htu string) string {
	tb.Helper()
	p, err := dpop.NewProof(k, jose.ES256, http.MethodPost, htu, "", "")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// exchangeOnce posts api1's exchange form with proofs[i] as its DPoP header (none
// when proofs is nil) and returns what is wrong with the answer ("" when it is a
// token of type want).
func exchangeOnce(h http.Handler, form url.Values, proofs []string, i int, want string) string {
	var w *httptest.ResponseRecorder
	if proofs == nil {
		w = post(h, "api1", "api1-secret", form)
	} else {
		w = tokenWithProofs(h, "api1", "api1-secret", form, proofs[i])
	}
	if w.Code != 200 {
		return w.Result().Status + " " + w.Body.String()
	}
	var resp struct {
		TokenType string `json:"token_type"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.TokenType != want {
		return "token_type " + resp.TokenType + ", want " + want
	}
	return ""
}
