package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/deputy-auth/deputy/internal/store"
)

// DetailPolicies is the key of a denial's Detail that holds, for an exchange
// refused for a client that has policies, what each of them made of the request,
// in config order: a list of PolicyResult (design §12, README "Audit trail").
const DetailPolicies = "policies"

// PolicyResult is what one exchange policy made of a denied request
// (exchange.RuleResult, whose JSON it reads and writes): the first check the
// policy failed (subject, condition, targets, order, may_act, max_chain, binding,
// scope, requested_token_type), none for the policy that decided, and why.
type PolicyResult struct {
	Policy string `json:"policy"`
	Check  string `json:"check,omitempty"`
	Reason string `json:"reason"`
}

// Bounds of the policies of a denial's Detail. A reason quotes the request at
// times (an audience asked for, a claim the condition read), so each is cut; and
// the list, whose length the configuration sets, stops within MaxPoliciesBytes so
// that the Detail around it stays within MaxDetailBytes.
const (
	MaxPolicyReasonBytes = 512
	MaxPoliciesBytes     = 8 << 10 // the list as JSON
)

// BoundPolicies returns l cut to the bounds above: each policy name to
// MaxRuleBytes, each check to MaxTypeBytes and each reason to
// MaxPolicyReasonBytes (store.CleanText, then store.Truncate); and once the list, as JSON, would go
// beyond MaxPoliciesBytes, the rest replaced by one last item whose policy is
// "…[N more]". A list within bounds is returned as it is.
func BoundPolicies(l []PolicyResult) []PolicyResult {
	// Room kept for the last item, {"policy":"…[N more]","reason":""}.
	const markerBytes = 64
	out, copied := l, false
	total := len("[]")
	for i, p := range l {
		q := PolicyResult{
			Policy: boundText(p.Policy, MaxRuleBytes),
			Check:  boundText(p.Check, MaxTypeBytes),
			Reason: boundText(p.Reason, MaxPolicyReasonBytes),
		}
		if total += len(marshalText(q)) + len(","); total > MaxPoliciesBytes-markerBytes {
			return append(out[:i:i], PolicyResult{Policy: "…[" + strconv.Itoa(len(l)-i) + " more]"})
		}
		if q != p {
			if !copied {
				out, copied = append([]PolicyResult(nil), l...), true
			}
			out[i] = q
		}
	}
	return out
}

// boundText is s cut to max bytes, with NUL and invalid UTF-8 as U+FFFD first
// (store.CleanText), as JSON would read them back: the bound holds for what is
// stored.
func boundText(s string, max int) string { return store.Truncate(store.CleanText(s), max) }

// WithPolicies returns the Detail JSON object detail with DetailPolicies set to
// l within bounds (BoundPolicies); detail as it is when l is empty. A detail that
// is not a JSON object is replaced.
func WithPolicies(detail string, l []PolicyResult) string {
	if len(l) == 0 {
		return detail
	}
	m := map[string]json.RawMessage{}
	if detail != "" && json.Unmarshal([]byte(detail), &m) != nil {
		m = map[string]json.RawMessage{}
	}
	m[DetailPolicies] = marshalText(BoundPolicies(l))
	return string(marshalText(m))
}

// policiesOf reads the policies a denial's Detail records, nil when it records
// none (or is not a JSON object).
func policiesOf(detail string) []PolicyResult {
	if !strings.Contains(detail, `"`+DetailPolicies+`"`) {
		return nil
	}
	var d struct {
		Policies []PolicyResult `json:"policies"`
	}
	if json.Unmarshal([]byte(detail), &d) != nil {
		return nil
	}
	return d.Policies
}

// marshalText is v as compact JSON, with <, > and & as they are: the audit
// trail's JSON is read by people and tools, never embedded in HTML.
func marshalText(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}
