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
// within refetchInterval. Safe for concurrent use.
type discovery struct {
	url    string
	issuer string
	client *http.Client

	mu      sync.Mutex // held during a fetch: nothing can proceed without the document
	doc     *metadata
	lastTry time.Time
	lastErr error
}

func newDiscovery(issuer string, client *http.Client) *discovery {
	return &discovery{url: strings.TrimSuffix(issuer, "/") + metadataPath, issuer: issuer, client: client}
}

// get returns the metadata, fetching it when it has not been fetched yet.
func (d *discovery) get(ctx context.Context, now time.Time) (*metadata, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.doc != nil {
		return d.doc, nil
	}
	if !d.lastTry.IsZero() && now.Sub(d.lastTry) < refetchInterval {
		return nil, d.lastErr
	}
	prev := d.lastTry
	d.lastTry = now
	fetchCtx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	doc, err := d.fetch(fetchCtx)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up: that says nothing about deputy, so the next
			// request may try again at once.
			d.lastTry = prev
		}
		d.lastErr = err
		return nil, err
	}
	d.doc, d.lastErr = doc, nil
	return doc, nil
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
