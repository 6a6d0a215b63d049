package upstream

import (
	"context"
	"fmt"

	"github.com/deputy-auth/deputy/internal/config"
)

// New builds the provider an upstream_idps entry describes. issuer is deputy's
// issuer URL (the SAML service provider's entity id derives from it).
func New(ctx context.Context, cfg config.UpstreamIdP, issuer string) (Provider, error) {
	switch cfg.Type {
	case config.UpstreamOIDC:
		return newOIDC(ctx, cfg)
	case config.UpstreamSAML:
		return newSAML(cfg, issuer)
	}
	return nil, fmt.Errorf("upstream_idps %q: unknown type %q", cfg.Name, cfg.Type)
}
