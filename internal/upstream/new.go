package upstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
)

// New builds the provider an upstream_idps entry describes. issuer is deputy's
// issuer URL (the SAML service provider's entity id derives from it). nonces, when
// not nil, is where SAML assertion IDs are remembered so that each is accepted once
// by every node on the database; nil keeps them in this process's memory.
//
// New does not reach the network: an OpenID Provider is discovered in the
// background, retried with backoff until it answers, for as long as ctx lasts
// (see [lazyOIDC]); failures are logged to log (nil: discarded). Only a
// configuration that can never work is an error here.
func New(ctx context.Context, cfg config.UpstreamIdP, issuer string, nonces store.Nonces, log *slog.Logger) (Provider, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var p Provider
	switch cfg.Type {
	case config.UpstreamOIDC:
		l, err := newLazyOIDC(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		go l.retry(ctx)
		p = l
	case config.UpstreamSAML:
		sp, err := newSAML(cfg, issuer)
		if err != nil {
			return nil, err
		}
		sp.(*samlProvider).nonces = nonces
		p = sp
	default:
		return nil, fmt.Errorf("upstream_idps %q: unknown type %q", cfg.Name, cfg.Type)
	}
	return linked{Provider: p, link: cfg.LinkLocalAccounts}, nil
}

// linked marks the identities of a provider with its link_local_accounts.
type linked struct {
	Provider
	link bool
}

func (l linked) Complete(ctx context.Context, callbackURL string, params url.Values, state []byte) (Identity, error) {
	id, err := l.Provider.Complete(ctx, callbackURL, params, state)
	if err != nil {
		return Identity{}, err
	}
	id.LinkLocal = l.link
	return id, nil
}
