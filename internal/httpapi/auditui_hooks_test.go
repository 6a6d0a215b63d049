package httpapi

import "github.com/deputy-auth/deputy/internal/store"

// WithAuditExplorer is a Server of s's configuration that serves the audit
// explorer with roles, reading log when it is not nil, for tests.
func (s *Server) WithAuditExplorer(roles Roles, log store.AuditLog) (*Server, error) {
	cfg := s.cfg
	cfg.Roles = roles
	if log != nil {
		cfg.AuditLog = log
	}
	return s.Reconfigure(cfg)
}
