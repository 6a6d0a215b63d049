package bank

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/oauth2"
)

// WebApp is the bank's web front end: alice signs in at deputy (OpenID Connect
// authorization code flow with PKCE) and pays through it; it calls payments with
// her access token. It is a confidential client (golang.org/x/oauth2), not a
// service: it holds tokens, it does not verify them.
type WebApp struct {
	http.Handler
	oauth    oauth2.Config
	payments string // base URL of payments

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
	tok, err := a.oauth.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
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
	receipt, err := Pay(r.Context(), a.payments, tok.AccessToken, p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusOK, receipt)
}

// Pay sends a payment to payments with accessToken, as the web app does for a
// signed-in user (and the demo for a user from the corporate SAML IdP).
func Pay(ctx context.Context, paymentsURL, accessToken string, p Payment) (*Receipt, error) {
	b, _ := json.Marshal(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, paymentsURL+"/payments", strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
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

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
