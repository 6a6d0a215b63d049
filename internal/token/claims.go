package token

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/deputy-auth/deputy/internal/jsonx"
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

// appendJSON appends the claims to dst as one JSON object, Extra's claims
// (those not reserved) merged at the top level: the bytes json.Marshal writes
// for the claims without Extra, then Extra's claims as json.Marshal writes a
// map, keys sorted. It writes the fixed claims itself, so that minting does not
// go through reflection.
func (c *Claims) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"iss":`...)
	b = jsonx.AppendString(b, c.Issuer)
	b = append(b, `,"sub":`...)
	b = jsonx.AppendString(b, c.Subject)
	b = append(b, `,"aud":`...)
	b = c.Audience.appendJSON(b)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expiry, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, c.NotBef, 10)
	b = append(b, `,"jti":`...)
	b = jsonx.AppendString(b, c.ID)
	b = append(b, `,"client_id":`...)
	b = jsonx.AppendString(b, c.ClientID)
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = jsonx.AppendString(b, c.Scope)
	}
	var err error
	if c.Act != nil {
		b = append(b, `,"act":`...)
		if b, err = appendActor(b, c.Act); err != nil {
			return nil, err
		}
	}
	if c.MayAct != nil {
		b = append(b, `,"may_act":`...)
		if b, err = appendActor(b, c.MayAct); err != nil {
			return nil, err
		}
	}
	if c.AuthTime != 0 {
		b = append(b, `,"auth_time":`...)
		b = strconv.AppendInt(b, c.AuthTime, 10)
	}
	if c.ACR != "" {
		b = append(b, `,"acr":`...)
		b = jsonx.AppendString(b, c.ACR)
	}
	if len(c.AMR) > 0 {
		b = append(b, `,"amr":`...)
		b = appendStrings(b, c.AMR)
	}
	if c.SID != "" {
		b = append(b, `,"sid":`...)
		b = jsonx.AppendString(b, c.SID)
	}
	if c.Cnf != nil {
		b = append(b, `,"cnf":{`...)
		n := len(b)
		if c.Cnf.JKT != "" {
			b = append(b, `"jkt":`...)
			b = jsonx.AppendString(b, c.Cnf.JKT)
		}
		if c.Cnf.X5TS256 != "" {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(b, `"x5t#S256":`...)
			b = jsonx.AppendString(b, c.Cnf.X5TS256)
		}
		b = append(b, '}')
	}
	if len(c.Extra) > 0 {
		if b, err = appendExtra(b, c.Extra, reserved); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendJSON appends a as MarshalJSON writes it.
func (a Audience) appendJSON(b []byte) []byte {
	switch {
	case a == nil:
		return append(b, "null"...)
	case len(a) == 1:
		return jsonx.AppendString(b, a[0])
	}
	return appendStrings(b, a)
}

// appendStrings appends l as a JSON array of strings.
func appendStrings(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, v := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonx.AppendString(b, v)
	}
	return append(b, ']')
}

// actorDepthInline is how deep appendActor writes an actor chain itself; a
// deeper one json.Marshal writes (which refuses a chain that loops back).
const actorDepthInline = 32

// appendActor appends a as json.Marshal writes it (RFC 8693 §4.1).
func appendActor(b []byte, a *oauth.Actor) ([]byte, error) {
	closing := 0
	for depth := 0; a != nil; depth++ {
		if depth == actorDepthInline {
			rest, err := json.Marshal(a)
			if err != nil {
				return nil, err
			}
			b = append(b, rest...)
			break
		}
		b = append(b, `{"sub":`...)
		b = jsonx.AppendString(b, a.Subject)
		if a.Issuer != "" {
			b = append(b, `,"iss":`...)
			b = jsonx.AppendString(b, a.Issuer)
		}
		closing++
		if a.Actor == nil {
			break
		}
		b = append(b, `,"act":`...)
		a = a.Actor
	}
	for range closing {
		b = append(b, '}')
	}
	return b, nil
}

// appendExtra appends, each after a comma, the claims of extra whose names are
// not reserved, sorted by name, as json.Marshal writes a map's entries.
func appendExtra(b []byte, extra map[string]any, reserved map[string]bool) ([]byte, error) {
	names := make([]string, 0, 16)
	for k := range extra {
		if !reserved[k] {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		b = append(b, ',')
		b = jsonx.AppendString(b, k)
		b = append(b, ':')
		switch v := extra[k].(type) {
		case string:
			b = jsonx.AppendString(b, v)
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, raw...)
		}
	}
	return b, nil
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
