// Package samlx holds the SAML 2.0 pieces shared by upstream sign-in
// (internal/upstream, SAML Responses) and token exchange (internal/subject, bare
// Assertions): reading an IdP's signing certificates from PEM or metadata, the
// pre-parse check every document passes before the XML signature library sees it
// (no DTD, one root, SHA-1 refused), and the attribute vocabulary that maps to
// identity claims. It never verifies a signature: that is
// github.com/russellhaering/goxmldsig's job.
//
// It must not import net/http or database/sql.
package samlx
