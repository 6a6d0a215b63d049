// Package demo runs the bank of examples/bank in one process — deputy, the web
// app, payments, ledger and fraud-check, each on its own loopback port — signs
// alice in, pays through the chain, and prints what each hop received and the
// audit trail. Each payment is one transaction: payments obtains a transaction
// token for it, and ledger and fraud-check see the same txn. `deputy demo`
// calls Run.
package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/examples/bank"
	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/internal/token"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/verify"
)

//go:embed demo.yaml
var configTemplate string

// Audiences of the bank's services.
const (
	PaymentsAudience = "https://payments.bank.example"
	LedgerAudience   = "https://ledger.bank.example"
	FraudAudience    = "https://fraud.bank.example"
	// TrustDomain is the bank's txn_tokens.trust_domain: the aud of its
	// transaction tokens.
	TrustDomain = "bank.example"
)

// Hop is what one service received: the token as the SDK verified it.
type Hop struct {
	Service   string
	Principal *verify.Principal
	Raw       string // the token itself, as a thief who read it would have it
	TraceID   string // the W3C trace id the request carried
	// Txn is the transaction token the request carried in its Txn-Token header,
	// as the SDK verified it; nil for payments, which starts the transaction.
	Txn *verify.TxnPrincipal
}

// Result is what a run saw, for tests: the hops of each scenario, in order, and
// the jti of each scenario's first token.
type Result struct {
	Password, SAML []Hop
	PasswordRoot   string // the first token of the password sign-in (T0)
	SAMLRoot       string // the token exchanged from the SAML assertion
	// PasswordTrace and SAMLTrace are each scenario's trace id, shared by every hop.
	PasswordTrace, SAMLTrace string
	AuditEvents              int64
	// Stolen is how the token lifted from the ledger fared: the HTTP status of each
	// attempt, by name ("fraud-check as Bearer", …).
	Stolen map[string]int
	// WithoutPayments is how the ledger's exchange of a token that did not come
	// through payments fared.
	WithoutPayments Refusal
	// Transaction are the hops of the fifth scenario's payment, and Txn the
	// transaction they share.
	Transaction []Hop
	Txn         string
}

// Refusal is a token request deputy refused: the HTTP status, the OAuth error
// code and the id of the denial's audit event.
type Refusal struct {
	Status  int
	Error   string
	EventID string
}

// Options are how Run runs the bank.
type Options struct {
	// Dir holds deputy's database and the corporate IdP's certificate; ""
	// makes (and removes) a temporary one.
	Dir string
	// FraudCheckNode, when set, is the path of a Node script that is the
	// fraud-check service (examples/bank/node/fraud-check.mjs, on the TypeScript
	// SDK): the demo runs it with `node` instead of the Go fraud-check.
	FraudCheckNode string
}

// Run runs the scenarios — two payments, a stolen token, a token that did not
// come through payments, one transaction followed through the bank — and
// writes the story to out.
func Run(ctx context.Context, out io.Writer, opts Options) (res *Result, err error) {
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "deputy-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	corp, err := newCorpIdP(dir)
	if err != nil {
		return nil, err
	}
	env := &world{out: out, observed: make(chan struct{})}
	defer env.close()
	defer func() {
		if err != nil && env.fraudNode != nil {
			err = fmt.Errorf("%w%s", err, env.fraudNode.said())
		}
	}()
	if err := env.start(ctx, dir, opts.FraudCheckNode); err != nil {
		return nil, err
	}
	res = &Result{}
	p := newPrinter(out)
	p.title("deputy demo — a payment from alice: web app → payments → ledger → fraud-check")
	p.line("deputy %s   web app %s   payments %s   ledger %s   fraud-check %s",
		env.issuer, env.webURL, env.paymentsURL, env.ledgerURL, env.fraudURL)
	if env.fraudNode != nil {
		p.line("fraud-check is the Node service %s, on deputy's TypeScript SDK", opts.FraudCheckNode)
	}

	// Scenario 1: alice signs in with her password.
	p.section("1. alice signs in at the web app (OpenID Connect, code flow with PKCE) and pays 42.00 EUR to bob")
	env.takeHops()
	receipt, err := env.signInAndPay(ctx, "alice", "alice-password", bank.Payment{To: "bob", Amount: "42.00"})
	if err != nil {
		return nil, fmt.Errorf("scenario 1: %w", err)
	}
	if res.Password, res.PasswordRoot, res.PasswordTrace, err = env.show(ctx, p, receipt); err != nil {
		return nil, fmt.Errorf("scenario 1: %w", err)
	}

	// Scenario 2: the same chain, starting from a SAML assertion of the corporate IdP.
	p.section("2. the corporate IdP's SAML assertion for alice@corp.example, exchanged by the web app, pays 12,500.00 EUR to carol")
	assertion, err := corp.assertion("alice@corp.example", env.issuer)
	if err != nil {
		return nil, err
	}
	// The demo is the web app here: it starts the payment's trace itself.
	ctx2, span := env.tracer.Start(ctx, "corporate payment", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	t0, err := env.exchangeSAML(ctx2, assertion)
	if err != nil {
		return nil, fmt.Errorf("scenario 2: %w", err)
	}
	env.takeHops()
	receipt, err = bank.Pay(ctx2, env.paymentsURL, t0, env.webKey, bank.Payment{To: "carol", Amount: "12500.00"})
	if err != nil {
		return nil, fmt.Errorf("scenario 2: %w", err)
	}
	if res.SAML, res.SAMLRoot, res.SAMLTrace, err = env.show(ctx, p, receipt); err != nil {
		return nil, fmt.Errorf("scenario 2: %w", err)
	}

	// Scenario 3: a token lifted from the ledger is useless.
	p.section("3. a thief copies the token the ledger sent to fraud-check (from a log line) and replays it")
	if res.Stolen, err = env.replayStolen(ctx, p, res.Password[len(res.Password)-1]); err != nil {
		return nil, fmt.Errorf("scenario 3: %w", err)
	}

	// Scenario 4: the ledger's exchange for fraud-check holds only for a token
	// that came from payments (policy ledger-to-fraud-check's condition).
	p.section("4. the ledger holds a token for alice that did not come through payments and asks for fraud-check")
	if res.WithoutPayments, err = env.withoutPayments(ctx, p); err != nil {
		return nil, fmt.Errorf("scenario 4: %w", err)
	}

	// Scenario 5: a payment is one transaction; every service sees its txn.
	p.section("5. one transaction: payments obtains a transaction token for alice's payment of 250.00 EUR to dave;\n   ledger and fraud-check receive it unchanged (Txn-Token) and see the same txn")
	env.takeHops()
	receipt, err = env.signInAndPay(ctx, "alice", "alice-password", bank.Payment{To: "dave", Amount: "250.00"})
	if err != nil {
		return nil, fmt.Errorf("scenario 5: %w", err)
	}
	if res.Transaction, res.Txn, err = env.transaction(ctx, p, receipt); err != nil {
		return nil, fmt.Errorf("scenario 5: %w", err)
	}

	// The trail is intact.
	rep, err := audit.Verify(ctx, env.node.Store)
	if err != nil {
		return nil, err
	}
	if rep.FirstBad != nil {
		return nil, fmt.Errorf("audit chain broken at #%d: %s", rep.FirstBad.Seq, rep.FirstBad.Reason)
	}
	res.AuditEvents = rep.Count
	p.section("audit trail")
	p.line("hash chain intact: %d events (deputy audit verify)", rep.Count)
	return res, p.err
}

// world is the running bank.
type world struct {
	out                                              io.Writer
	issuer, webURL, paymentsURL, ledgerURL, fraudURL string
	webKey                                           *ecdsa.PrivateKey // the web app's DPoP key
	tracer                                           trace.Tracer      // starts scenario 2's trace
	node                                             *server.Server
	services                                         []*bank.Service
	servers                                          []*http.Server
	fraudNode                                        *nodeService // fraud-check in Node; nil: in Go

	mu       sync.Mutex
	hops     []Hop
	observed chan struct{} // closed, and replaced, when a hop is added
}

func (w *world) observe(ctx context.Context, service, raw string, p *verify.Principal) {
	txn, _ := verify.TxnFromContext(ctx)
	w.addHop(Hop{Service: service, Principal: p, Raw: raw, TraceID: trace.SpanContextFromContext(ctx).TraceID().String(), Txn: txn})
}

func (w *world) addHop(h Hop) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hops = append(w.hops, h)
	close(w.observed)
	w.observed = make(chan struct{})
}

// show prints the hops of the payment just made, its receipt and the audit trace
// of its first token with the payment's trace id, once the services' reports are
// in; it returns the hops, that token's jti and the trace id, which every hop
// must share.
func (w *world) show(ctx context.Context, p *printer, receipt *bank.Receipt) ([]Hop, string, string, error) {
	if err := w.awaitHop(ctx, "fraud-check"); err != nil {
		return nil, "", "", err
	}
	hops := w.takeHops()
	if len(hops) == 0 {
		return nil, "", "", errors.New("no service saw the payment")
	}
	root, traceID := hops[0].Principal.JTI, hops[0].TraceID
	for _, h := range hops {
		if h.TraceID != traceID || h.TraceID == (trace.TraceID{}).String() {
			return nil, "", "", fmt.Errorf("%s saw trace %s, %s saw trace %s: the trace id did not travel", hops[0].Service, traceID, h.Service, h.TraceID)
		}
	}
	p.hops(hops)
	p.line("receipt: %s, ledger entry %s (%s → %s, %s EUR), fraud verdict %s",
		receipt.Status, receipt.Entry.ID, receipt.Entry.Debit, receipt.Entry.Credit, receipt.Entry.Amount, receipt.Entry.Verdict)
	if err := w.flushReports(ctx, hops); err != nil {
		return nil, "", "", err
	}
	return hops, root, traceID, p.trace(ctx, w.node, root, traceID)
}

// takeHops returns the hops seen since the last call and forgets them.
func (w *world) takeHops() []Hop {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hops
	w.hops = nil
	return h
}

// listen opens a loopback listener and returns its base URL.
func listen() (net.Listener, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return l, "http://" + l.Addr().String(), nil
}

func (w *world) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	w.servers = append(w.servers, srv)
	go func() { _ = srv.Serve(l) }()
}

// start runs deputy and the bank's services, fraud-check in Node when
// fraudCheckNode names its script.
func (w *world) start(ctx context.Context, dir, fraudCheckNode string) error {
	var ls [5]net.Listener
	urls := make([]string, 5)
	for i := range ls {
		var err error
		if ls[i], urls[i], err = listen(); err != nil {
			for _, l := range ls[:i] {
				l.Close()
			}
			return err
		}
	}
	w.issuer, w.webURL, w.paymentsURL, w.ledgerURL, w.fraudURL = urls[0], urls[1], urls[2], urls[3], urls[4]
	started := false
	defer func() {
		if !started { // those no server took over (closing one twice does no harm)
			for _, l := range ls {
				l.Close()
			}
		}
	}()

	yaml := strings.NewReplacer("%ISSUER%", w.issuer, "%DIR%", filepath.ToSlash(dir), "%WEBAPP%", w.webURL).Replace(configTemplate)
	cfgFile := filepath.Join(dir, "deputy-demo.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		return err
	}
	if w.node, err = server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	w.serve(ls[0], w.node.Handler)

	svc := func(id, audience, next string) bank.Config {
		return bank.Config{Issuer: w.issuer, ClientID: id, ClientSecret: id + "-secret", Audience: audience, Next: next, TrustDomain: TrustDomain, Observe: w.observe}
	}
	var fraud *bank.Service
	if fraudCheckNode == "" {
		if fraud, err = bank.NewFraudCheck(ctx, svc("fraud-check", FraudAudience, "")); err != nil {
			return err
		}
	} else {
		ls[4].Close() // the Node service opens its own port
		w.fraudNode, err = startNodeService(ctx, "fraud-check", fraudCheckNode, []string{
			"DEPUTY_ISSUER=" + w.issuer, "LISTEN=127.0.0.1:0", "AUDIENCE=" + FraudAudience,
			"CLIENT_ID=fraud-check", "CLIENT_SECRET=fraud-check-secret", "TRUST_DOMAIN=" + TrustDomain,
		}, w.addHop)
		if err != nil {
			return err
		}
		w.fraudURL = w.fraudNode.url
	}
	ledger, err := bank.NewLedger(ctx, svc("ledger", LedgerAudience, w.fraudURL), FraudAudience)
	if err != nil {
		return err
	}
	payments, err := bank.NewPayments(ctx, svc("payments", PaymentsAudience, w.ledgerURL), LedgerAudience)
	if err != nil {
		return err
	}
	w.services = []*bank.Service{payments, ledger}
	if fraud != nil {
		w.services = append(w.services, fraud)
	}
	w.tracer = sdktrace.NewTracerProvider().Tracer("github.com/deputy-auth/deputy/examples/bank/demo")
	if w.webKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	web := bank.NewWebApp(bank.WebAppConfig{
		DPoPKey: w.webKey,
		AuthURL: w.issuer + "/authorize", TokenURL: w.issuer + "/token",
		ClientID: "web-app", ClientSecret: "web-app-secret", RedirectURL: w.webURL + "/callback",
		Payments: w.paymentsURL, Scopes: []string{"openid", "payments:write", "ledger:write", "fraud:check"},
	})
	w.serve(ls[1], web)
	w.serve(ls[2], payments)
	w.serve(ls[3], ledger)
	if fraud != nil {
		w.serve(ls[4], fraud)
	}
	started = true
	return nil
}

// flushReports waits until the services' reports of the calls they made on
// hops are in deputy's trail: the Go services are flushed, the Node one's
// reports are looked for.
func (w *world) flushReports(ctx context.Context, hops []Hop) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, s := range w.services {
		if err := s.Flush(ctx); err != nil {
			return fmt.Errorf("reports: %w", err)
		}
	}
	if w.fraudNode == nil {
		return nil
	}
	for _, h := range hops {
		if h.Service == w.fraudNode.name {
			if err := w.awaitReport(ctx, h.Service, h.Principal.JTI); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *world) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range w.services {
		_ = s.Close(ctx)
	}
	for _, s := range w.servers {
		_ = s.Shutdown(ctx)
	}
	if w.fraudNode != nil {
		w.fraudNode.close() // before deputy: it sends its last reports
	}
	if w.node != nil {
		_ = w.node.Close()
	}
}

// exchangeSAML is the web app trading the assertion it received from the
// corporate IdP for a token addressed to payments (RFC 8693, subject_token_type
// saml2).
func (w *world) exchangeSAML(ctx context.Context, assertion string) (string, error) {
	form := strings.NewReader("grant_type=" + oauth.GrantTokenExchange +
		"&subject_token_type=" + string(oauth.TokenTypeSAML2) +
		"&subject_token=" + assertion +
		"&audience=" + PaymentsAudience)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.issuer+"/token", form)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web-app", "web-app-secret")
	resp, err := (&http.Client{Transport: &bank.ProofTransport{Key: w.webKey}}).Do(req) // bound to the web app's key
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tr struct {
		oauth.TokenResponse
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New("exchange of the SAML assertion refused: " + tr.Error + ": " + tr.Description)
	}
	return tr.AccessToken, nil
}

// replayStolen plays a thief who has the token fraud-check received from the ledger
// (hop), and even the ledger's client secret, but not the ledger's DPoP key: the
// token is refused at fraud-check as Bearer and with a proof of the thief's own key,
// and at deputy when exchanged without a proof (RFC 9449 §7, the no-downgrade rule).
func (w *world) replayStolen(ctx context.Context, p *printer, hop Hop) (map[string]int, error) {
	thief, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	body := `{"account":"alice","amount":"99999.00"}`
	checks := w.fraudURL + "/checks"
	asBearer, err := http.NewRequestWithContext(ctx, http.MethodPost, checks, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	asBearer.Header.Set("Authorization", "Bearer "+hop.Raw)
	asDPoP, err := http.NewRequestWithContext(ctx, http.MethodPost, checks, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {hop.Raw},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)}, "audience": {FraudAudience}}
	atDeputy, err := http.NewRequestWithContext(ctx, http.MethodPost, w.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	atDeputy.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	atDeputy.SetBasicAuth("ledger", "ledger-secret")

	p.line("the token: issued to %s, cnf %s", hop.Principal.ClientID, short(hop.Principal.Cnf))
	got := map[string]int{}
	for _, a := range []struct {
		name   string
		req    *http.Request
		client *http.Client
	}{
		{"at fraud-check as Bearer", asBearer, http.DefaultClient},
		{"at fraud-check with a DPoP proof of the thief's key", asDPoP,
			&http.Client{Transport: &bank.ProofTransport{Key: thief, AccessToken: hop.Raw}}},
		{"at deputy, exchanged with the ledger's client secret but no proof", atDeputy, http.DefaultClient},
	} {
		resp, err := a.client.Do(a.req)
		if err != nil {
			return nil, err
		}
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		resp.Body.Close()
		got[a.name] = resp.StatusCode
		challenge := resp.Header.Get("WWW-Authenticate")
		if i := strings.Index(challenge, ", error_description"); i > 0 {
			challenge = challenge[:i]
		}
		if challenge != "" {
			challenge = " (" + challenge + ")"
		}
		p.line("%-66s → %d %s%s", a.name, resp.StatusCode, e.Error, challenge)
		if resp.StatusCode == http.StatusOK {
			return got, fmt.Errorf("the stolen token was accepted %s", a.name)
		}
	}
	return got, nil
}

// withoutPayments plays the ledger presenting a token for alice that did not come
// through payments — act {sub: web-app}, as if the web app had called the ledger
// directly. No policy of the demo issues such a token (the only way to the
// ledger is payments-to-ledger), so the demo signs one with deputy's own key, as
// a policy written too wide would issue it. The ledger, with its client secret,
// asks deputy to exchange it for fraud-check: policy ledger-to-fraud-check's
// condition refuses (invalid_request), and the audit trace of the denial says
// what each of the ledger's policies made of the request.
func (w *world) withoutPayments(ctx context.Context, p *printer) (Refusal, error) {
	now := time.Now()
	minted := &token.Claims{
		Subject: "alice", Audience: token.Audience{LedgerAudience}, ClientID: "web-app", Scope: "ledger:write fraud:check",
		Act: &oauth.Actor{Subject: "web-app"}, IssuedAt: now.Unix(), NotBef: now.Unix(), Expiry: now.Add(time.Minute).Unix(),
		ID: token.NewID(),
	}
	raw, err := token.NewService(w.issuer, w.node.Keys, w.node.Revoked, 16<<10).Mint(oauth.JWTTypeAccessToken, minted)
	if err != nil {
		return Refusal{}, err
	}
	form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {raw},
		"subject_token_type": {string(oauth.TokenTypeAccessToken)}, "audience": {FraudAudience}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Refusal{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ledger", "ledger-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Refusal{}, err
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
	resp.Body.Close()
	r := Refusal{Status: resp.StatusCode, Error: e.Error}

	p.line("policy ledger-to-fraud-check: fraud-check is reached only on behalf of a payment")
	p.line("  condition: size(subject.act) > 0 && subject.act[0].sub == \"payments\"")
	p.line("the token: sub %s, aud %s, act %s — the web app called the", minted.Subject, LedgerAudience, actString(minted.Act))
	p.line("ledger directly (no policy issues such a token: the demo signs it with deputy's key)")
	p.line("%-66s → %d %s", "at deputy, the ledger exchanges it for fraud-check", r.Status, r.Error)
	p.line("  %s", audit.TextValue(e.Description))
	if resp.StatusCode == http.StatusOK {
		return r, errors.New("the exchange of a token that did not come through payments was allowed")
	}

	denials, err := w.node.Store.Query(ctx, store.AuditFilter{ClientID: "ledger", Type: store.EventDenied})
	if err != nil {
		return r, err
	}
	for _, d := range denials {
		if d.ParentJTI == minted.ID {
			r.EventID = d.ID
		}
	}
	if r.EventID == "" {
		return r, errors.New("the refusal is not in the audit trail")
	}
	p.printf("\n")
	return r, p.auditTrace(ctx, w.node, r.EventID)
}

// signedTctx is the tctx claim of raw, a transaction token the ledger
// verified, as signed: key order and all, as the audit trace shows it
// (TxnPrincipal.Context, a map, would print its keys sorted).
func signedTctx(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("the transaction token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("transaction token payload: %w", err)
	}
	var c struct {
		Tctx json.RawMessage `json:"tctx"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("transaction token payload: %w", err)
	}
	return string(c.Tctx), nil
}

// transaction prints the transaction of the payment just made: the transaction
// token payments obtained, as the ledger received it, the txn each service saw
// — the same token, byte for byte, at the ledger and at fraud-check — and the
// audit trace of the txn, from the sign-in to the transaction token and the
// calls reported under it. It returns the hops and the txn.
func (w *world) transaction(ctx context.Context, p *printer, receipt *bank.Receipt) ([]Hop, string, error) {
	if err := w.awaitHop(ctx, "fraud-check"); err != nil {
		return nil, "", err
	}
	hops := w.takeHops()
	var carried []Hop
	for _, h := range hops {
		if h.Txn != nil {
			carried = append(carried, h)
		}
	}
	if len(carried) != 2 || carried[0].Service != "ledger" || carried[1].Service != "fraud-check" {
		return nil, "", fmt.Errorf("the transaction token reached %d services, want ledger and fraud-check", len(carried))
	}
	t := carried[0].Txn
	for _, h := range carried[1:] {
		if h.Txn.Raw != t.Raw {
			return nil, "", fmt.Errorf("%s received another transaction token than %s", h.Service, carried[0].Service)
		}
	}
	if t.Subject != hops[0].Principal.Subject {
		return nil, "", fmt.Errorf("the transaction is %s's, the payment %s's", t.Subject, hops[0].Principal.Subject)
	}
	tctx, err := signedTctx(t.Raw)
	if err != nil {
		return nil, "", err
	}
	p.line("payments asked deputy for a transaction token (token exchange, requested_token_type txn_token,")
	p.line("policy payments-transactions); the ledger received it, typ txntoken+jwt:")
	p.line("  txn    %s", t.Txn)
	p.line("  sub    %s", t.Subject)
	p.line("  aud    %s (the trust domain: no service's audience)", TrustDomain)
	p.line("  scope  %s (the transaction's purpose)", strings.Join(t.Scopes, " "))
	p.line("  tctx   %s", audit.RestOfLine(tctx))
	p.line("  rctx   req_wl %s, req_ip %s", t.RequestContext.RequestingWorkload, t.RequestContext.ReqIP)
	p.line("  cnf    — (never bound: it travels unchanged through the trust domain)")
	p.line("  exp    in %s", t.Expiry.Sub(t.IssuedAt))
	for _, h := range hops {
		if h.Txn == nil {
			p.line("%-12s started the transaction", h.Service)
			continue
		}
		p.line("%-12s saw txn %s (Txn-Token, the same token byte for byte) beside its own access token, act %s", h.Service, h.Txn.Txn, actString(h.Principal.Act))
	}
	p.line("receipt: %s, ledger entry %s (%s → %s, %s EUR), fraud verdict %s",
		receipt.Status, receipt.Entry.ID, receipt.Entry.Debit, receipt.Entry.Credit, receipt.Entry.Amount, receipt.Entry.Verdict)
	if err := w.flushReports(ctx, hops); err != nil {
		return nil, "", err
	}
	p.printf("\n")
	return hops, t.Txn, p.auditTrace(ctx, w.node, t.Txn)
}
