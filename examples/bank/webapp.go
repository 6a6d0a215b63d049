package bank

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/deputy-auth/deputy/sdk/dpop"
)

// WebApp is the bank's web front end: alice signs in at deputy (OpenID Connect
// authorization code flow with PKCE) and pays through it; it calls payments with
// her access token. It is a confidential client (golang.org/x/oauth2), not a
// service: it holds tokens, it does not verify them. Its token requests carry a
// DPoP proof of its key (RFC 9449 §5), so alice's token is bound to the web app,
// and each call to payments carries a fresh proof (§7).
type WebApp struct {
	http.Handler
	oauth    oauth2.Config
	payments string        // base URL of payments
	key      crypto.Signer // the web app's DPoP key
	// tracer starts a trace for each payment (an OpenTelemetry SDK without an
	// exporter: the trace id travels, the spans are not kept).
	tracer trace.Tracer

	mu       sync.Mutex
	pending  map[string]string        // state → PKCE verifier
	sessions map[string]*oauth2.Token // session cookie → alice's tokens
}

// WebAppConfig names deputy's endpoints and the web app's client.
type WebAppConfig struct {
	AuthURL, TokenURL      string
	ClientID, ClientSecret string
	RedirectURL            string // <web app>/callback
	Payments               string
	Scopes                 []string
	// DPoPKey binds the web app's tokens (RFC 9449); nil: bearer tokens.
	DPoPKey crypto.Signer
}

// NewWebApp serves GET /login (starts sign-in), GET /callback (finishes it and
// sets a session cookie) and POST /pay (a Payment as JSON, paid as the user).
func NewWebApp(cfg WebAppConfig) *WebApp {
	a := &WebApp{
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL, Scopes: cfg.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
		},
		payments: cfg.Payments,
		key:      cfg.DPoPKey,
		tracer:   sdktrace.NewTracerProvider().Tracer("github.com/deputy-auth/deputy/examples/bank"),
		pending:  map[string]string{},
		sessions: map[string]*oauth2.Token{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.HandleFunc("POST /pay", a.pay)
	a.Handler = mux
	return a
}

func (a *WebApp) login(w http.ResponseWriter, r *http.Request) {
	state, verifier := randomID(), oauth2.GenerateVerifier()
	a.mu.Lock()
	a.pending[state] = verifier
	a.mu.Unlock()
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (a *WebApp) callback(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	a.mu.Lock()
	verifier, ok := a.pending[state]
	delete(a.pending, state)
	a.mu.Unlock()
	if !ok {
		http.Error(w, "unknown sign-in", http.StatusBadRequest)
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		http.Error(w, "sign-in refused: "+e, http.StatusForbidden)
		return
	}
	ctx := r.Context()
	if a.key != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &ProofTransport{Key: a.key}})
	}
	tok, err := a.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		http.Error(w, "sign-in failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	sid := randomID()
	a.mu.Lock()
	a.sessions[sid] = tok
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "bank-session", Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	_, _ = w.Write([]byte("signed in\n"))
}

func (a *WebApp) pay(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("bank-session")
	var tok *oauth2.Token
	if err == nil {
		a.mu.Lock()
		tok = a.sessions[c.Value]
		a.mu.Unlock()
	}
	if tok == nil {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	var p Payment
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, "malformed payment", http.StatusBadRequest)
		return
	}
	// A trace of its own for the payment: payments, ledger, fraud-check and
	// deputy's exchanges all join it.
	ctx, span := a.tracer.Start(r.Context(), "POST /pay", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	receipt, err := Pay(ctx, a.payments, tok.AccessToken, a.key, p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusOK, receipt)
}

// Pay sends a payment to payments with accessToken, as the web app does for a
// signed-in user (and the demo for a user from the corporate SAML IdP): with key,
// as a DPoP-bound token with a proof of key (RFC 9449 §7.1), else as Bearer. The
// trace of ctx goes with it (W3C traceparent).
func Pay(ctx context.Context, paymentsURL, accessToken string, key crypto.Signer, p Payment) (*Receipt, error) {
	b, _ := json.Marshal(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, paymentsURL+"/payments", strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	client := http.DefaultClient
	if key != nil {
		client = &http.Client{Transport: &ProofTransport{Key: key, AccessToken: accessToken}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, &PaymentError{Status: resp.StatusCode, Message: e.Error}
	}
	var rc Receipt
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil {
		return nil, err
	}
	return &rc, nil
}

// PaymentError is a payment payments refused.
type PaymentError struct {
	Status  int
	Message string
}

func (e *PaymentError) Error() string {
	return "payments answered " + http.StatusText(e.Status) + ": " + e.Message
}

// ProofTransport adds a DPoP proof of Key for each request it sends (RFC 9449 §4):
// for a token request when AccessToken is empty, else with AccessToken as
// "Authorization: DPoP" and its ath. Key is an ECDSA P-256 key (ES256). A service uses sdk/exchange, which does this
// (and nonces) itself; the web app needs it for golang.org/x/oauth2.
type ProofTransport struct {
	Key         crypto.Signer
	AccessToken string
}

func (t *ProofTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.RawQuery, u.Fragment = "", ""
	proof, err := dpop.NewProof(t.Key, jose.ES256, req.Method, u.String(), "", t.AccessToken)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set(dpop.Header, proof)
	if t.AccessToken != "" {
		out.Header.Set("Authorization", "DPoP "+t.AccessToken)
	}
	return http.DefaultTransport.RoundTrip(out)
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
