package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"

	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// metadata builds the RFC 8414 and OpenID Connect discovery documents once. They
// list only what this server supports.
func (s *Server) metadata() (oauthDoc, oidcDoc []byte, err error) {
	iss := s.cfg.Issuer
	grants := s.cfg.Dispatcher.GrantTypes()
	sort.Strings(grants)
	authMethods := []string{oauth.AuthClientSecretBasic, oauth.AuthClientSecretPost, oauth.AuthPrivateKeyJWT}
	if s.cfg.ClientCertificates {
		// RFC 8705 §2.1, §2.2 (the same methods at every endpoint that authenticates
		// clients; no mtls_endpoint_aliases: the endpoints themselves take certificates).
		authMethods = append(authMethods, oauth.AuthTLSClient, oauth.AuthSelfSignedTLSClient)
	}
	authMethods = slices.Clip(authMethods)
	assertionAlgs := []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	// Access tokens (and exchanged JWTs) are signed with signing.algorithm, ID tokens
	// with each client's algorithm (below); the JWKS holds a key for each.
	signing := []string{string(s.cfg.Keys.SigningAlgorithms()[0])}
	var dpopAlgs []string
	for _, a := range dpop.Algorithms() {
		dpopAlgs = append(dpopAlgs, string(a))
	}
	m := map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + PathToken,
		"jwks_uri":                              iss + PathJWKS,
		"introspection_endpoint":                iss + PathIntrospection,
		"revocation_endpoint":                   iss + PathRevocation,
		"grant_types_supported":                 grants,
		"token_endpoint_auth_methods_supported": authMethods,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"scopes_supported":                          s.cfg.Scopes,
		"response_types_supported":                  []string{},
		"access_token_signing_alg_values_supported": signing,
		// RFC 9449 §5.1: DPoP proofs are accepted at every grant.
		"dpop_signing_alg_values_supported": dpopAlgs,
	}
	// deputy's own metadata: where services report calls and auditors read the trail
	// (client_secret_basic only: the bodies are JSON or absent, with no room for a
	// form secret or assertion).
	if s.cfg.ClientCertificates {
		m["tls_client_certificate_bound_access_tokens"] = true // RFC 8705 §3.3
	}
	if s.cfg.Calls != nil {
		m["call_report_endpoint"] = iss + PathCalls
		m["call_report_endpoint_auth_methods_supported"] = []string{oauth.AuthClientSecretBasic}
	}
	if s.cfg.AuditLog != nil {
		m["audit_events_endpoint"] = iss + PathAuditEvents
		m["audit_trace_endpoint"] = iss + PathAuditTrace
		m["audit_endpoint_auth_methods_supported"] = []string{oauth.AuthClientSecretBasic}
	}
	if s.cfg.SignIn != nil {
		m["authorization_endpoint"] = iss + PathAuthorize
		m["response_types_supported"] = []string{"code"}
		m["response_modes_supported"] = []string{"query"}
		m["code_challenge_methods_supported"] = []string{"S256"}
		m["authorization_response_iss_parameter_supported"] = true
		m["token_endpoint_auth_methods_supported"] = append(authMethods, oauth.AuthNone)
	}
	if oauthDoc, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	m["subject_types_supported"] = []string{"public"}
	// What a client may have its ID tokens signed with (id_token_signed_response_alg),
	// RS256 always (OpenID Connect Discovery 1.0 §3, Core §15.1).
	idAlgs := s.cfg.IDTokenAlgorithms
	if !slices.Contains(idAlgs, "RS256") {
		idAlgs = append([]string{"RS256"}, idAlgs...)
	}
	m["id_token_signing_alg_values_supported"] = idAlgs
	if s.cfg.SignIn != nil {
		m["userinfo_endpoint"] = iss + PathUserinfo
		m["end_session_endpoint"] = iss + PathEndSession
		m["prompt_values_supported"] = []string{"none", "login", "consent", "select_account"}
		m["claims_supported"] = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", "at_hash",
			"name", "given_name", "family_name", "preferred_username", "email", "email_verified"}
		m["claims_parameter_supported"] = false
		m["request_parameter_supported"] = false
		m["request_uri_parameter_supported"] = false
	}
	oidcDoc, err = json.Marshal(m)
	return oauthDoc, oidcDoc, err
}

func (s *Server) serveDiscovery(oidc bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		doc := s.discovery
		if oidc {
			doc = s.oidc
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, err := w.Write(doc)
		return err
	}
}
