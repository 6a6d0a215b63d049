package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
)

// TestShutdownAnswersEveryRequestItHandles: a request that arrives on a kept-alive
// connection just as a step of the shutdown begins is either handled and answered
// in whole, or never handled at all (its client sees the connection close, and
// nothing was issued); never handled and then cut, which would lose a token whose
// issuance is on record. The connection's read of that request is held between
// the bytes arriving and net/http getting them — when http.Server still counts the
// connection idle — while the shutdown starts, and let go once the shutdown has
// closed the connection or has had time to.
func TestShutdownAnswersEveryRequestItHandles(t *testing.T) {
	tests := []struct {
		name  string
		drain time.Duration
		// want: the held request is handled and answered; otherwise neither.
		want bool
	}{
		// The drain serves every request, on connections old and new.
		{"ok/request-read-as-the-drain-begins", 500 * time.Millisecond, true},
		// Once the listener closes, http.Server.Shutdown handles no request
		// whose read ends after it began.
		{"ok/request-read-as-the-listener-closes", time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			hl := &holdingListener{Listener: ln, conns: make(chan *holdingConn, 1)}
			var mu sync.Mutex
			handled := map[string]bool{}
			// Stands for the token endpoint: the issuance is on record before
			// the answer is written.
			endpoint := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id := r.Header.Get("X-Request-Id")
				mu.Lock()
				handled[id] = true
				mu.Unlock()
				_, _ = io.WriteString(w, "answer to "+id)
			})
			handler := &drainHandler{next: endpoint}
			idle := make(chan struct{}, 1)
			srv := &http.Server{
				Handler:           handler,
				ReadHeaderTimeout: 5 * time.Second,
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateIdle {
						select {
						case idle <- struct{}{}:
						default:
						}
					}
				},
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(hl) }()
			t.Cleanup(func() { _ = srv.Close() })

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			send := func(id string) {
				t.Helper()
				if _, err := fmt.Fprintf(c, "POST /token HTTP/1.1\r\nHost: deputy\r\nX-Request-Id: %s\r\n"+
					"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1", id); err != nil {
					t.Fatal(err)
				}
			}
			// answer is the body of the next response, and whether it says
			// Connection: close.
			answer := func() (body string, closing bool, err error) {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return "", false, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), resp.Close, err
			}

			send("first")
			if got, closing, err := answer(); err != nil || got != "answer to first" || closing {
				t.Fatalf("first answer %q (Connection: close %v), %v; want it kept alive", got, closing, err)
			}
			<-idle // the server waits for the next request on this connection
			hc := <-hl.conns
			hc.armed.Store(true)
			send("second")
			<-hc.held

			done := make(chan struct{})
			go func() {
				defer close(done)
				sd := config.Shutdown{Drain: config.Duration(tt.drain), Timeout: config.Duration(5 * time.Second)}
				shutdown(srv, sd, slog.New(slog.NewTextHandler(t.Output(), nil)), handler)
			}()
			select {
			case <-hc.closed:
			case <-time.After(200 * time.Millisecond):
			}
			close(hc.release)

			got, closing, err := answer()
			answered := err == nil && got == "answer to second"
			if answered && !closing {
				t.Errorf("the answer during the drain does not say Connection: close")
			}
			<-done
			if err := <-served; err != http.ErrServerClosed {
				t.Errorf("Serve: %v, want %v", err, http.ErrServerClosed)
			}
			mu.Lock()
			wasHandled := handled["second"]
			mu.Unlock()
			if wasHandled && !answered {
				t.Fatalf("the request was handled (its token on record) but not answered: %q, %v", got, err)
			}
			if wasHandled != tt.want || answered != tt.want {
				t.Errorf("handled %v, answered %v (%q, %v); want both %v", wasHandled, answered, got, err, tt.want)
			}
		})
	}
}

// TestDrainHandler: Connection: close on HTTP/1 responses once draining, never
// on HTTP/2 (where the header is not allowed, RFC 9113 section 8.2.2).
func TestDrainHandler(t *testing.T) {
	tests := []struct {
		name       string
		draining   bool
		protoMajor int
		want       string
	}{
		{"ok/http1-serving", false, 1, ""},
		{"ok/http1-draining", true, 1, "close"},
		{"ok/http2-draining", true, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &drainHandler{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "served")
			})}
			if tt.draining {
				h.SetDraining()
			}
			r := httptest.NewRequest(http.MethodPost, "/token", nil)
			r.ProtoMajor = tt.protoMajor
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := w.Header().Get("Connection"); got != tt.want || w.Body.String() != "served" {
				t.Errorf("Connection %q, body %q; want %q, served", got, w.Body.String(), tt.want)
			}
		})
	}
}

// holdingListener hands out its connections as holdingConns, each also sent on
// conns.
type holdingListener struct {
	net.Listener
	conns chan *holdingConn
}

func (l *holdingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &holdingConn{Conn: c, held: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	l.conns <- hc
	return hc, nil
}

// holdingConn, once armed, holds the first read that returns bytes: held is closed
// then, and the bytes are returned once release is closed. closed is closed by
// the first Close.
type holdingConn struct {
	net.Conn
	armed     atomic.Bool
	held      chan struct{}
	release   chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *holdingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.armed.CompareAndSwap(true, false) {
		close(c.held)
		<-c.release
	}
	return n, err
}

func (c *holdingConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
