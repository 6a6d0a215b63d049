package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/internal/store/sqlstore"
	"github.com/deputy-auth/deputy/internal/tracing"
)

// minProcs is the least GOMAXPROCS deputy serve runs with, whatever the CPUs.
const minProcs = 2

// The garbage collector's settings of deputy serve unless the environment sets
// GOGC or GOMEMLIMIT: a heap may grow to five times what is live, within a soft
// limit of 48 MiB for everything Go allocates (SQLite's caches and the binary come
// on top: about 80 MB resident at most under full load).
const (
	gcPercent   = 400
	memoryLimit = 48 << 20
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, file := flags("serve")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr); err != nil {
			return err
		}
	}
	// From now on SIGHUP no longer ends the process: one sent while deputy starts
	// is answered by a reload once it serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	cfg, dev, err := loadConfig(*file)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	// The audit writer blocks in fsync while requests wait for it; with a single P
	// (one CPU allowed) nothing else runs until the runtime notices the blocked
	// thread, up to milliseconds later. A few Ps keep the CPU busy meanwhile.
	if n := runtime.GOMAXPROCS(0); n < minProcs && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(minProcs)
	}
	// deputy's live heap is small (a few MB, plus the bounded verified-token
	// cache) while every request allocates: with Go's default GOGC=100 the
	// collector runs every few milliseconds under load. Fewer, larger cycles, kept
	// under a soft memory limit, cost a fifth less CPU per request. GOGC and
	// GOMEMLIMIT in the environment win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}

	// Spans still queued are exported after the audit writer's flush (the defers
	// run in reverse): its commit spans are among them.
	traces, err := tracing.Setup(ctx, tracing.Options{Endpoint: cfg.Tracing.Endpoint, Version: versionString(), Log: log})
	if err != nil {
		return err
	}
	defer flushTraces(traces, log)
	if traces.Enabled() {
		log.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", traces.Endpoint)
	}

	node, err := server.New(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			// Told to stop while starting: that is a stop, not a failure.
			log.Info("stopped during start-up", "err", err)
			return nil
		}
		return err
	}
	// The node's background work (revocation sync, key reload) runs until the end
	// of the shutdown, not merely until the signal: requests are still served while
	// draining.
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopNode()
		node.Close() // flushes the audit writer
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	handler := &drainHandler{next: node.Handler}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(),
		ReadTimeout:       cfg.HTTP.ReadTimeout.D(),
		WriteTimeout:      cfg.HTTP.WriteTimeout.D(),
		IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if cfg.TLS.CertFile != "" && cfg.WantsClientCertificates() {
		srv.TLSConfig = clientCertTLS()
	}

	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		msrv := &http.Server{Handler: metricsOnly(node.Metrics), ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(),
			ReadTimeout: cfg.HTTP.ReadTimeout.D(), WriteTimeout: cfg.HTTP.WriteTimeout.D(), IdleTimeout: cfg.HTTP.IdleTimeout.D(),
			MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() { _ = msrv.Serve(mln) }()
		// Scraped until the process ends, through the drain: the drain is when
		// an operator watches most.
		defer msrv.Close()
		log.Info("metrics serving", "listen", mln.Addr().String())
	}

	go node.Maintain(nodeCtx)
	go reloadOnHangup(nodeCtx, hup, node, *file, log)

	if dev {
		printDev(stdout, cfg)
	}
	log.Info("deputy serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "storage", cfg.Storage.Driver,
		"dsn", sqlstore.RedactDSN(cfg.Storage.DSN), "signing_key", node.Keys.Active().ID, "algorithm", string(node.Keys.Active().Algorithm), "version", versionString())

	errc := make(chan error, 1)
	go func() {
		if cfg.TLS.CertFile != "" {
			errc <- srv.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown(srv, cfg.Shutdown, log, node, handler)
	return nil
}

// shutdown ends serving in the steps of the README's "Stopping deputy": /readyz 503
// at once while requests are still served for sd.Drain, then the listener closes and
// requests in flight get sd.Timeout to finish; those still running then are cut.
// The caller then flushes the audit writer (node.Close) and exits 0: the process
// did what a stop asks, and a supervisor must not take it for a crash.
func shutdown(srv *http.Server, sd config.Shutdown, log *slog.Logger, drainers ...drainer) {
	log.Info("shutting down: draining, /readyz answers 503 (a second signal ends the drain)", "drain", sd.Drain.D(), "timeout", sd.Timeout.D())
	// /readyz 503, and clients are told to reconnect (Connection: close, by
	// drainHandler) rather than keep a connection to a node that is going away.
	// Not srv.SetKeepAlivesEnabled(false): see drainHandler.
	for _, d := range drainers {
		d.SetDraining()
	}
	// A second signal (Ctrl-C again) ends the drain at once.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	drain := time.NewTimer(sd.Drain.D())
	defer drain.Stop()
	select {
	case <-drain.C:
	case <-again:
		log.Info("shutting down: second signal, the drain is cut short")
	}
	log.Info("shutting down: no new connections; waiting for requests in flight")
	ctx, cancel := context.WithTimeout(context.Background(), sd.Timeout.D())
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		// Requests still running past the timeout are cut; what they had
		// recorded stays recorded, and nothing is issued unrecorded.
		log.Warn("shutting down: requests still running after shutdown.timeout were cut", "timeout", sd.Timeout.D(), "err", err)
		_ = srv.Close()
	}
	log.Info("shutting down: flushing the audit trail")
}

// drainer is told when the shutdown begins its drain (server.Server: /readyz 503;
// drainHandler: Connection: close).
type drainer interface{ SetDraining() }

// drainHandler serves next; once SetDraining was called, each HTTP/1 response says
// Connection: close, and net/http closes the connection after writing it (HTTP/2
// connections are told by the GOAWAY of http.Server.Shutdown).
//
// It stands in for http.Server.SetKeepAlivesEnabled(false), which also closes at
// once every connection the server counts idle, and net/http counts a kept-alive
// connection idle until it has read the whole of its next request. A request that
// had just arrived was read all the same from what was already buffered, and
// handled: its token issued and on record, its answer written to the closed
// connection, and the client got EOF. Here an idle connection stays open through
// the drain, its next request is served, and http.Server.Shutdown closes those
// still idle after the drain: it may close one whose request is being read too,
// but net/http checks for Shutdown between reading a request and handling it, so
// that request is never handled, and none is handled and then cut.
type drainHandler struct {
	next     http.Handler
	draining atomic.Bool
}

func (h *drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	h.next.ServeHTTP(w, r)
}

// SetDraining makes every HTTP/1 response from now on say Connection: close.
func (h *drainHandler) SetDraining() { h.draining.Store(true) }

// flushTraces exports the spans still queued, giving the collector a few seconds.
func flushTraces(t *tracing.Tracer, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not exported at exit", "err", err)
	}
}

// reloadOnHangup reloads the configuration file on each SIGHUP until ctx ends
// (README "Drain and reload"; server.ReloadFile logs and audits the outcome).
// Without a file, the development setup, there is nothing to reload. hup is never
// stopped: a SIGHUP while the audit trail is flushed at exit is dropped, rather
// than ending the process as SIGHUP does by default.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, node *server.Server, file string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if file == "" {
				log.Warn("SIGHUP: no configuration file (development setup, no --config): nothing to reload")
				continue
			}
			log.Info("SIGHUP: reloading the configuration file", "file", file)
			_ = node.ReloadFile(ctx, file, os.Environ())
		}
	}
}

// metricsOnly serves h at GET /metrics (metrics.listen) and nothing else.
func metricsOnly(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
}

// servePprof serves the runtime profiles on addr, which must be a loopback address:
// they are for the operator on the machine, never for the network.
func servePprof(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}

func printDev(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, `
deputy is running a DEVELOPMENT setup (no --config given). Do not use it in production.
  issuer   %s
  storage  %s (%s)
  clients (id / secret / grants):
`, cfg.Issuer, sqlstore.RedactDSN(cfg.Storage.DSN), cfg.Storage.Driver)
	for _, c := range cfg.Clients {
		fmt.Fprintf(w, "    %-8s %-16s %v\n", c.ID, c.Secret, c.GrantTypes)
	}
	fmt.Fprintln(w, "  users:")
	for _, u := range cfg.Users {
		fmt.Fprintf(w, "    %-8s %s\n", u.Username, u.Password)
	}
	fmt.Fprintln(w, "  exchange policies:")
	for _, p := range cfg.Exchange.Policies {
		fmt.Fprintf(w, "    %-16s client %s → %v scopes %v (%s)\n", p.Name, p.Client, p.Audiences, p.Scopes, p.Mode)
		if p.Condition != "" {
			fmt.Fprintf(w, "    %-16s when %s\n", "", p.Condition)
		}
	}
	fmt.Fprintf(w, "\n  try: curl -s -u web-app:web-app-secret -d grant_type=client_credentials %s/token\n\n", cfg.Issuer)
	_ = os.Stdout.Sync()
}

// clientCertTLS is the listener's TLS configuration with mutual TLS (RFC 8705): it
// asks every client for a certificate and never demands or verifies one, so that a
// certificate from an unknown CA fails the client authentication that uses it
// (401 invalid_client, verified in internal/client against tls.client_ca_file), not
// the handshake — and browsers and clients without a certificate still connect. No
// CA names are sent in the request: Go's crypto/tls client would then withhold a
// self-signed certificate (self_signed_tls_client_auth).
func clientCertTLS() *tls.Config {
	return &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
}
