package upstream

import (
	"context"
	"errors"

	"github.com/deputy-auth/deputy/internal/config"
)

func newOIDC(ctx context.Context, cfg config.UpstreamIdP) (Provider, error) {
	return nil, errors.New("upstream_idps " + cfg.Name + ": OpenID Connect sign-in is being built")
}
