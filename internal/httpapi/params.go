package httpapi

import (
	"net/url"
	"slices"
)

// omitEmpty drops the parameters sent without a value: RFC 6749 §3.1 and §3.2 say
// they "MUST be treated as if they were omitted from the request", and real clients
// send them (zitadel/oidc sends actor_token=&actor_token_type= with every token
// exchange). A parameter sent more than once with values keeps them all, so that its
// repetition is still refused. v is changed in place and returned.
//
// Every form and query deputy's endpoints read passes through it: the token,
// introspection and revocation forms (parse), the authorization and end-session
// parameters and the pages' forms (web.params, web.readForm), and the audit queries.
func omitEmpty(v url.Values) url.Values {
	for k, vs := range v {
		if !slices.Contains(vs, "") {
			continue
		}
		if vs = slices.DeleteFunc(slices.Clone(vs), func(s string) bool { return s == "" }); len(vs) == 0 {
			delete(v, k)
		} else {
			v[k] = vs
		}
	}
	return v
}
