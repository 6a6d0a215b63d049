package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// maxDocumentBytes bounds a metadata, JWKS or introspection response.
const maxDocumentBytes = 1 << 20

// getDocument GETs a JSON document (metadata, JWKS) and returns its body and headers;
// anything but 200 is an error.
func getDocument(ctx context.Context, client *http.Client, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	return do(client, req)
}

// do sends req and reads a bounded 200 response.
func do(client *http.Client, req *http.Request) ([]byte, http.Header, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err // *url.Error: method, URL and cause; never the body
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return nil, nil, fmt.Errorf("%s %s: HTTP %d", req.Method, req.URL.Redacted(), resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if len(b) > maxDocumentBytes {
		return nil, nil, fmt.Errorf("%s %s: response larger than %d bytes", req.Method, req.URL.Redacted(), maxDocumentBytes)
	}
	return b, resp.Header, nil
}

// checkEndpoint accepts an absolute http or https URL.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	return nil
}
