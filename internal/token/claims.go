package token

import (
	"encoding/json"
	"strings"

	"github.com/deputy-auth/deputy/oauth"
)

// Claims are the claims of a token deputy issues (RFC 9068 §2.2, RFC 8693 §4).
type Claims struct {
	Issuer   string              `json:"iss"`
	Subject  string              `json:"sub"`
	Audience Audience            `json:"aud"`
	Expiry   int64               `json:"exp"`
	IssuedAt int64               `json:"iat"`
	NotBef   int64               `json:"nbf"`
	ID       string              `json:"jti"`
	ClientID string              `json:"client_id"`
	Scope    string              `json:"scope,omitempty"`
	Act      *oauth.Actor        `json:"act,omitempty"`
	MayAct   *oauth.Actor        `json:"may_act,omitempty"`
	AuthTime int64               `json:"auth_time,omitempty"`
	ACR      string              `json:"acr,omitempty"`
	AMR      []string            `json:"amr,omitempty"`
	SID      string              `json:"sid,omitempty"`
	Cnf      *oauth.Confirmation `json:"cnf,omitempty"`
	// Extra holds further identity claims (mapped from upstream identities); they are
	// written at the top level and never override the claims above.
	Extra map[string]any `json:"-"`
}

// Scopes splits the scope claim.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// Audience is the aud claim: one string or an array on the wire (RFC 7519 §4.1.3).
type Audience []string

// MarshalJSON writes one audience as a string, several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// Contains reports whether v is one of the audiences.
func (a Audience) Contains(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// reserved claims that Extra may not override.
var reserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "scope": true, "act": true, "may_act": true, "auth_time": true,
	"acr": true, "amr": true, "sid": true, "cnf": true,
}

// encode serialises the claims, merging Extra at the top level.
func (c *Claims) encode() ([]byte, error) {
	type plain Claims
	b, err := json.Marshal((*plain)(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	m := make(map[string]any, len(c.Extra))
	for k, v := range c.Extra {
		if !reserved[k] {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return b, nil
	}
	extra, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	// Join {"iss":…} and {"k":…} into one object.
	out := make([]byte, 0, len(b)+len(extra))
	out = append(out, b[:len(b)-1]...)
	out = append(out, ',')
	out = append(out, extra[1:]...)
	return out, nil
}

// decode parses a payload, keeping unknown claims in Extra.
func decode(payload []byte, c *Claims) error {
	type plain Claims
	if err := json.Unmarshal(payload, (*plain)(c)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return err
	}
	for k, v := range all {
		if reserved[k] {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		if c.Extra == nil {
			c.Extra = map[string]any{}
		}
		c.Extra[k] = x
	}
	return nil
}
