package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/verify"
)

// nodeService is a service of the bank written in Node on deputy's TypeScript
// SDK (examples/bank/node), run as a child process. It tells what it accepted on
// its standard output, one JSON object per line; the first line says where it
// listens.
type nodeService struct {
	name   string
	cmd    *exec.Cmd
	url    string
	stdin  io.WriteCloser // held open: the service stops when it closes (STOP_AT_STDIN_EOF)
	stderr tail
	exited chan struct{} // closed when the process has exited

	mu      sync.Mutex
	badLine error // why the last line that looked like a request could not be read
}

// nodeEnv is what the service gets of the demo's environment: what Node itself
// needs, not deputy's settings.
func nodeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "TMPDIR", name == "LANG", name == "TZ",
			name == "SYSTEMROOT", strings.HasPrefix(name, "NODE_"):
			env = append(env, kv)
		}
	}
	return env
}

// startNodeService runs `node script` with env added to the demo's environment
// and returns once the service listens. Each request it accepts is passed to
// observe as a Hop.
func startNodeService(ctx context.Context, name, script string, env []string, observe func(Hop)) (*nodeService, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%s in Node: no node on PATH (Node.js 20 or later): %w", name, err)
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s in Node: %w", name, err)
	}
	s := &nodeService{name: name, exited: make(chan struct{})}
	// Not CommandContext: the service is stopped with SIGTERM (close), so that
	// it sends the call reports it still holds. Should the demo die without
	// close, its end of the service's standard input closes and the service
	// stops (STOP_AT_STDIN_EOF).
	s.cmd = exec.Command(node, script)
	s.cmd.Env = append(append(nodeEnv(), "STOP_AT_STDIN_EOF=1"), env...)
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s in Node: %w", name, err)
	}
	listening := make(chan string, 1)
	go func() {
		defer close(s.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l nodeLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				if len(sc.Bytes()) > 0 && sc.Bytes()[0] == '{' {
					s.mu.Lock()
					s.badLine = err
					s.mu.Unlock()
				}
				continue // not a line of the service's: a stray log line, or one awaitHop will name
			}
			switch {
			case l.Listening != "":
				select {
				case listening <- l.Listening:
				default: // said twice: the first is where the demo calls it
				}
			case l.Service != "" && l.Principal != nil:
				observe(l.hop())
			}
		}
		_, _ = io.Copy(io.Discard, stdout) // a line too long ends the scan, not the service
		_ = s.cmd.Wait()
	}()
	select {
	case s.url = <-listening:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("%s in Node exited before it listened (%s)%s", name, s.cmd.ProcessState, s.said())
	case <-time.After(20 * time.Second):
		s.close()
		return nil, fmt.Errorf("%s in Node did not listen within 20 s%s", name, s.said())
	case <-ctx.Done():
		s.close()
		return nil, fmt.Errorf("%s in Node: %w", name, ctx.Err())
	}
}

// trouble says why a hop of the service may be missing: it exited, or a line of
// it could not be read; nil when neither.
func (s *nodeService) trouble() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s in Node exited (%s)%s", s.name, s.cmd.ProcessState, s.said())
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.badLine != nil {
		return fmt.Errorf("%s in Node printed a line the demo cannot read: %w", s.name, s.badLine)
	}
	return nil
}

// said is what the service wrote on its standard error, for an error message.
func (s *nodeService) said() string {
	t := strings.TrimSpace(s.stderr.String())
	if t == "" {
		return ""
	}
	if strings.Contains(t, "ERR_MODULE_NOT_FOUND") && strings.Contains(t, "dist") {
		t += "\n(build the TypeScript SDK first: cd sdk/ts && npm ci && npm run build)"
	}
	return ":\n" + t
}

// close stops the service with SIGTERM — it sends the call reports it still
// holds, then exits — and kills it after 5 s.
func (s *nodeService) close() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.stdin.Close() // where there is no SIGTERM (Windows), this stops it
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// nodeLine is one line of a Node service's standard output: where it listens,
// or a request it accepted, as its SDK verified it (sdk/ts Principal and
// TxnPrincipal, without their claims).
type nodeLine struct {
	Listening string `json:"listening"`
	Service   string `json:"service"`
	Principal *struct {
		Subject   string              `json:"subject"`
		Issuer    string              `json:"issuer"`
		ClientID  string              `json:"clientId"`
		Audience  []string            `json:"audience"`
		Scopes    []string            `json:"scopes"`
		Actors    []string            `json:"actors"`
		Act       *oauth.Actor        `json:"act"`
		JTI       string              `json:"jti"`
		ExpiresAt time.Time           `json:"expiresAt"`
		Cnf       *oauth.Confirmation `json:"cnf"`
		Token     string              `json:"token"`
	} `json:"principal"`
	Txn *struct {
		Txn            string                `json:"txn"`
		Subject        string                `json:"subject"`
		Issuer         string                `json:"issuer"`
		Scopes         []string              `json:"scopes"`
		Context        map[string]any        `json:"context"`
		RequestContext verify.RequestContext `json:"requestContext"`
		IssuedAt       time.Time             `json:"issuedAt"`
		ExpiresAt      time.Time             `json:"expiresAt"`
		JTI            string                `json:"jti"`
		Token          string                `json:"token"`
	} `json:"txn"`
	Traceparent string `json:"traceparent"`
}

// hop is the line as the demo keeps what a Go service received.
func (l *nodeLine) hop() Hop {
	p := l.Principal
	h := Hop{
		Service: l.Service,
		Principal: &verify.Principal{
			Subject: p.Subject, Issuer: p.Issuer, ClientID: p.ClientID, Audience: p.Audience, Scopes: p.Scopes,
			Act: p.Act, Actors: p.Actors, JTI: p.JTI, ExpiresAt: p.ExpiresAt, Cnf: p.Cnf,
		},
		Raw: p.Token,
		TraceID: trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": l.Traceparent})).TraceID().String(),
	}
	if t := l.Txn; t != nil {
		h.Txn = &verify.TxnPrincipal{
			Txn: t.Txn, Subject: t.Subject, Issuer: t.Issuer, Scopes: t.Scopes, Context: t.Context,
			RequestContext: t.RequestContext, IssuedAt: t.IssuedAt, Expiry: t.ExpiresAt, JTI: t.JTI, Raw: t.Token,
		}
	}
	return h
}

// awaitHop waits until a hop of service has been observed since the last
// takeHops. A Go service observes before it answers; a Node service writes its
// line before it answers too, but the demo reads it from a pipe a moment later.
func (w *world) awaitHop(ctx context.Context, service string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		w.mu.Lock()
		seen := false
		for _, h := range w.hops {
			seen = seen || h.Service == service
		}
		ch := w.observed
		w.mu.Unlock()
		if seen {
			return nil
		}
		var exited <-chan struct{}
		if w.fraudNode != nil {
			exited = w.fraudNode.exited
		}
		select {
		case <-ch:
		case <-exited:
			return fmt.Errorf("%s did not say it received the request: %w", service, w.fraudNode.trouble())
		case <-ctx.Done():
			if w.fraudNode != nil {
				if err := w.fraudNode.trouble(); err != nil {
					return fmt.Errorf("%s did not say it received the request: %w", service, err)
				}
			}
			return fmt.Errorf("%s did not say it received the request: %w", service, ctx.Err())
		}
	}
}

// awaitReport waits until the call reports of a Node service on the token jti
// are in deputy's trail: its reporter sends them on its own, within 100 ms.
func (w *world) awaitReport(ctx context.Context, client, jti string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		events, err := w.node.Store.Query(ctx, store.AuditFilter{ClientID: client, Type: store.EventCallReported})
		if err != nil {
			return fmt.Errorf("reports of %s: %w", client, err)
		}
		for _, e := range events {
			if e.ParentJTI == jti {
				return nil
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%s reported no call on token %s: %w", client, jti, ctx.Err())
		}
	}
}

// tail keeps the last 16 KiB written to it.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if n := len(t.b) - 16<<10; n > 0 {
		t.b = append(t.b[:0], t.b[n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
