package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// metadataPath is where deputy serves its authorization server metadata (RFC 8414 §3),
// appended to the issuer.
const metadataPath = "/.well-known/oauth-authorization-server"

// metadata is the part of RFC 8414 §2 a verifier uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// discovery fetches deputy's metadata once and keeps it for the Verifier's life (an
// issuer's endpoints do not move while it runs). A failed fetch is not retried
// within refetchInterval. Safe for concurrent use: one fetch runs at a time, in its
// own goroutine bounded by fetchTimeout, with no lock held; requests that need the
// document wait for it, each until its own context ends.
type discovery struct {
	url    string
	issuer string
	client *http.Client

	mu       sync.Mutex
	doc      *metadata
	lastTry  time.Time
	lastErr  error
	inflight chan struct{} // closed when the running fetch ends; nil when none runs
}

func newDiscovery(issuer string, client *http.Client) *discovery {
	return &discovery{url: strings.TrimSuffix(issuer, "/") + metadataPath, issuer: issuer, client: client}
}

// get returns the metadata, fetching it when it has not been fetched yet.
func (d *discovery) get(ctx context.Context, now time.Time) (*metadata, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	waited := false
	for {
		d.mu.Lock()
		if d.doc != nil {
			doc := d.doc
			d.mu.Unlock()
			return doc, nil
		}
		recent := !d.lastTry.IsZero() && now.Sub(d.lastTry) < refetchInterval
		if waited || (d.inflight == nil && recent) {
			err := d.lastErr
			d.mu.Unlock()
			return nil, err
		}
		if d.inflight == nil {
			d.inflight = make(chan struct{})
			d.lastTry = now
			// Detached from ctx: others may wait for this fetch, and the request
			// that started it going away says nothing about deputy.
			go d.refresh(context.WithoutCancel(ctx), d.inflight)
		}
		wait := d.inflight
		d.mu.Unlock()
		select {
		case <-wait:
			waited = true
		case <-ctx.Done():
			return nil, fmt.Errorf("metadata: %w", ctx.Err())
		}
	}
}

// refresh fetches the document and records the outcome, then closes done.
func (d *discovery) refresh(ctx context.Context, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	doc, err := d.fetch(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.lastErr = err
	} else {
		d.doc, d.lastErr = doc, nil
	}
	d.inflight = nil
	close(done)
}

func (d *discovery) fetch(ctx context.Context) (*metadata, error) {
	b, _, err := getDocument(ctx, d.client, d.url)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("metadata %s: %v", d.url, err)
	}
	// RFC 8414 §3.3: the issuer in the document must be the one we asked.
	if m.Issuer != d.issuer {
		return nil, fmt.Errorf("metadata %s: issuer %q, want %q", d.url, m.Issuer, d.issuer)
	}
	for name, u := range map[string]string{"jwks_uri": m.JWKSURI, "introspection_endpoint": m.IntrospectionEndpoint} {
		if u == "" {
			continue // reported when the endpoint is needed
		}
		if err := checkEndpoint(u); err != nil {
			return nil, fmt.Errorf("metadata %s: %s %q: %v", d.url, name, u, err)
		}
	}
	return &m, nil
}
