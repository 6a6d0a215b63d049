package server_test

import (
	"net/url"
	"testing"
)

// BenchmarkClientCredentialsMint is BenchmarkClientCredentials with the node
// started outside the timed loop, serial and in parallel (group commit), so that
// what a request costs — client authentication, minting the token, the durable
// audit append — is what is measured, whatever b.N is.
func BenchmarkClientCredentialsMint(b *testing.B) {
	s := node(b)
	form := url.Values{"grant_type": {"client_credentials"}}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if w := post(s.Handler, "api1", "api1-secret", form); w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body.String())
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if w := post(s.Handler, "api1", "api1-secret", form); w.Code != 200 {
					b.Errorf("%d %s", w.Code, w.Body.String())
					return
				}
			}
		})
	})
}
