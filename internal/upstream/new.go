package upstream

import (
	"context"
	"fmt"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
)

// New builds the provider an upstream_idps entry describes. issuer is deputy's
// issuer URL (the SAML service provider's entity id derives from it). nonces, when
// not nil, is where SAML assertion IDs are remembered so that each is accepted once
// by every node on the database; nil keeps them in this process's memory.
func New(ctx context.Context, cfg config.UpstreamIdP, issuer string, nonces store.Nonces) (Provider, error) {
	switch cfg.Type {
	case config.UpstreamOIDC:
		return newOIDC(ctx, cfg)
	case config.UpstreamSAML:
		p, err := newSAML(cfg, issuer)
		if err != nil {
			return nil, err
		}
		p.(*samlProvider).nonces = nonces
		return p, nil
	}
	return nil, fmt.Errorf("upstream_idps %q: unknown type %q", cfg.Name, cfg.Type)
}
