package upstream

import (
	"errors"

	"github.com/deputy-auth/deputy/internal/config"
)

func newSAML(cfg config.UpstreamIdP, issuer string) (Provider, error) {
	return nil, errors.New("upstream_idps " + cfg.Name + ": SAML sign-in is being built")
}
