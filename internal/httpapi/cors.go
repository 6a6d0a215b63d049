package httpapi

import (
	"net/http"
)

// CORS (the Fetch standard's CORS protocol) lets a web app of another origin call
// the endpoints a single-page app needs: discovery and the JWKS, open to every
// origin since they are public documents; /token, /userinfo and /revoke (RFC 7009
// §2.1 and RFC 6749 leave CORS to the server), open to the allowed origins only.
//
// Never served with Access-Control-Allow-Credentials: these endpoints take no
// cookies, and the ones that do (authorize, login, consent, end-session, the
// upstream callbacks) are navigations, not CORS endpoints. Introspection and call
// reports are not CORS endpoints either: they authenticate confidential back ends,
// whose credentials must never be in a browser.

// corsHeaders are the request headers a cross-origin caller may send: client
// authentication, the form's type, and a DPoP proof (RFC 9449 §4.1).
const corsHeaders = "Authorization, Content-Type, DPoP"

// corsExposed are the response headers a cross-origin caller may read beyond the
// CORS-safelisted ones: the challenge of a 401 (RFC 6750 §3), a DPoP nonce
// (RFC 9449 §8), Retry-After and the request id.
const corsExposed = "WWW-Authenticate, DPoP-Nonce, Retry-After, X-Request-Id"

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = "600"

// corsPolicy decides which origins may call the credential-free API endpoints.
type corsPolicy struct {
	origins map[string]bool // serialised as browsers send Origin
}

func newCORSPolicy(origins []string) *corsPolicy {
	p := &corsPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		p.origins[o] = true
	}
	return p
}

// public serves a public document to every origin: Access-Control-Allow-Origin *,
// which a browser never combines with credentials.
func (p *corsPolicy) public(next http.Handler, methods string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			preflight(w, r, methods)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// api serves next to the allowed origins, echoing the one that asks; an origin not
// allowed gets no CORS header at all, so the browser keeps the answer from it.
func (p *corsPolicy) api(next http.Handler, methods string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin") // the answer differs by origin: caches must keep them apart
		origin := r.Header.Get("Origin")
		allowed := len(r.Header.Values("Origin")) == 1 && p.origins[origin]
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			if r.Method != http.MethodOptions {
				h.Set("Access-Control-Expose-Headers", corsExposed)
			}
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				// Answered here rather than by the endpoint, which would record a
				// refused request for every preflight.
				h.Set("Allow", methods+", OPTIONS")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			preflight(w, r, methods)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers an OPTIONS request; Access-Control-Allow-Origin is set already
// when the origin may call.
func preflight(w http.ResponseWriter, r *http.Request, methods string) {
	h := w.Header()
	h.Set("Allow", methods+", OPTIONS")
	if r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", corsHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}
