// Package upstream signs people in through other identity providers: an OpenID
// Provider (as a relying party, on coreos/go-oidc) or a SAML 2.0 IdP (as a service
// provider, on a maintained XML-DSig library). Each provider turns the browser's
// return into an Identity that internal/signin opens a session for; the sign-in is
// an audit event and the root of every chain that follows. Whether an identity may
// be the local account of its name is signin's decision (only when the entry sets
// link_local_accounts); Identity.LinkLocal carries the entry's setting there.
//
// Building a provider never reaches the network: an OpenID Provider is discovered
// on first use and in the background until it answers (lazyOIDC), so that one IdP
// that is down does not stop deputy; Provider.Unavailable says so meanwhile.
//
// It must not import database/sql. The HTTP exchange with the browser belongs to
// internal/httpapi; providers only build URLs and read returned parameters.
package upstream

import (
	"context"
	"errors"
	"net/url"
)

// Identity is a person authenticated by an upstream provider.
type Identity struct {
	Subject string            // the local subject: the mapped upstream subject, with the configured prefix
	IdP     string            // the provider's configured name
	AMR     []string          // how the upstream authenticated them, when it says ("pwd", "mfa", …); else ["ext"]
	ACR     string            // the upstream's acr, when it says
	Claims  map[string]string // identity claims released by the upstream (email, name, …)
	// LinkLocal is the provider's upstream_idps[].link_local_accounts: the
	// subject may sign in as the local account of that name. Without it, a
	// subject that names a local account is refused (signin.SignInUpstream).
	LinkLocal bool
}

// ErrUnavailable is matched (errors.Is) by the error of Begin, Complete and
// Unavailable while a provider cannot be used: its OpenID Connect discovery has
// not succeeded yet, and is being retried.
var ErrUnavailable = errors.New("upstream: the identity provider is unavailable")

// Provider is one configured upstream identity provider.
type Provider interface {
	// Name is the configured name (upstream_idps[].name).
	Name() string
	// Begin starts a sign-in: it returns the URL to send the browser to and the
	// state to keep (in a cookie) until the browser comes back to the callback.
	Begin(ctx context.Context, callbackURL string) (redirect string, state []byte, err error)
	// Complete reads the browser's return (query or form parameters) with the kept
	// state and returns the identity, or an error for anything forged, expired,
	// replayed or refused upstream.
	Complete(ctx context.Context, callbackURL string, params url.Values, state []byte) (Identity, error)
	// Unavailable returns why sign-in through the provider cannot start now (an
	// error matching ErrUnavailable), or nil when it can, as far as deputy knows.
	// The login page shows the provider as unavailable meanwhile.
	Unavailable() error
}
