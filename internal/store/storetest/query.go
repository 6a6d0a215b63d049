package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// queryEvents is the data set of the Query tests, one event a minute from t0.
func queryEvents() []*store.AuditEvent {
	mk := func(id, typ, client, subject string, actors, audiences []string) *store.AuditEvent {
		e := event(id)
		e.Type, e.ClientID, e.Subject, e.Actors, e.Audiences = typ, client, subject, actors, audiences
		return e
	}
	events := []*store.AuditEvent{
		mk("q1", store.EventSignIn, "web-app", "alice", nil, nil),
		mk("q2", store.EventTokenIssued, "web-app", "alice", nil, []string{"https://api1.example"}),
		mk("q3", store.EventTokenExchanged, "api1", "alice", []string{"api1"}, []string{"https://api2.example"}),
		mk("q4", store.EventTokenExchanged, "api2", "alice", []string{"api2", "api1"}, []string{"https://api3.example", "https://api4.example"}),
		mk("q5", store.EventTokenExchanged, "api10", "bob", []string{"api10"}, []string{"https://api2.example"}),
		mk("q6", store.EventDenied, "api1", "bob", []string{"x_1", "100%"}, []string{"https://api1.example/x"}),
		mk("q7", store.EventCallReported, "api3", "alice", []string{"api3", "api2", "api1"}, []string{"https://api3.example"}),
		mk("q8", store.EventTokenExchanged, "api 1", "carol", []string{"api 1"}, nil),
	}
	for i, e := range events {
		e.Time = t0.Add(time.Duration(i) * time.Minute)
	}
	// One distributed trace: api1's exchange, api2's and api3's call report.
	for _, e := range events[2:4] {
		e.TraceID = traceA
	}
	events[6].TraceID = traceA
	events[0].TraceID = traceB
	return events
}

var queryTests = []test{
	{"ok/filters", func(t *testing.T, s store.Store) {
		appendEvents(t, s, queryEvents()...)
		at := func(i int) time.Time { return t0.Add(time.Duration(i-1) * time.Minute) } // time of q<i>
		all := []string{"q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"}
		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []string
		}{
			{"ok/empty-filter", store.AuditFilter{}, all},
			{"ok/subject", store.AuditFilter{Subject: "alice"}, []string{"q1", "q2", "q3", "q4", "q7"}},
			{"ok/subject-none", store.AuditFilter{Subject: "alic"}, nil},
			{"ok/actor-any-member", store.AuditFilter{Actor: "api1"}, []string{"q3", "q4", "q7"}},
			{"ok/actor-first", store.AuditFilter{Actor: "api3"}, []string{"q7"}},
			{"ok/actor-not-substring", store.AuditFilter{Actor: "api"}, nil},
			{"ok/actor-api10-not-api1", store.AuditFilter{Actor: "api10"}, []string{"q5"}},
			{"ok/actor-case-sensitive", store.AuditFilter{Actor: "API1"}, nil},
			{"ok/actor-underscore-literal", store.AuditFilter{Actor: "x_1"}, []string{"q6"}},
			{"ok/actor-underscore-no-wildcard", store.AuditFilter{Actor: "x_"}, nil},
			{"ok/actor-underscore-not-any-char", store.AuditFilter{Actor: "api_"}, nil},
			{"ok/actor-percent-literal", store.AuditFilter{Actor: "100%"}, []string{"q6"}},
			{"ok/actor-percent-no-wildcard", store.AuditFilter{Actor: "%"}, nil},
			{"ok/actor-with-space", store.AuditFilter{Actor: "api 1"}, []string{"q8"}},
			{"ok/client", store.AuditFilter{ClientID: "api1"}, []string{"q3", "q6"}},
			{"ok/audience-any-member", store.AuditFilter{Audience: "https://api4.example"}, []string{"q4"}},
			{"ok/audience-exact", store.AuditFilter{Audience: "https://api1.example"}, []string{"q2"}},
			{"ok/type", store.AuditFilter{Type: store.EventTokenExchanged}, []string{"q3", "q4", "q5", "q8"}},
			{"ok/trace-id", store.AuditFilter{TraceID: traceA}, []string{"q3", "q4", "q7"}},
			{"ok/trace-id-other", store.AuditFilter{TraceID: traceB}, []string{"q1"}},
			{"ok/trace-id-none", store.AuditFilter{TraceID: "00000000000000000000000000000001"}, nil},
			{"ok/trace-id-case-sensitive", store.AuditFilter{TraceID: strings.ToUpper(traceA)}, nil},
			{"ok/trace-id-not-prefix", store.AuditFilter{TraceID: traceA[:16]}, nil},
			{"ok/since-inclusive", store.AuditFilter{Since: at(7)}, []string{"q7", "q8"}},
			// Not in store.go: both ends are inclusive, as in "deputy audit query
			// --since A --until B" (and git log).
			{"ok/until-inclusive", store.AuditFilter{Until: at(3)}, []string{"q1", "q2", "q3"}},
			{"ok/until-just-before", store.AuditFilter{Until: at(3).Add(-time.Microsecond)}, []string{"q1", "q2"}},
			{"ok/since-until", store.AuditFilter{Since: at(2), Until: at(4)}, []string{"q2", "q3", "q4"}},
			{"ok/since-equals-until", store.AuditFilter{Since: at(5), Until: at(5)}, []string{"q5"}},
			{"ok/since-sub-microsecond", store.AuditFilter{Since: at(7).Add(time.Nanosecond)}, []string{"q8"}},
			{"ok/since-other-zone", store.AuditFilter{Since: at(7).In(time.FixedZone("X", -3600))}, []string{"q7", "q8"}},
			{"ok/after-seq", store.AuditFilter{AfterSeq: 6}, []string{"q7", "q8"}},
			{"ok/limit", store.AuditFilter{Limit: 3}, []string{"q1", "q2", "q3"}},
			{"ok/limit-after-seq", store.AuditFilter{AfterSeq: 3, Limit: 2}, []string{"q4", "q5"}},
			{"ok/limit-beyond", store.AuditFilter{Limit: 100}, all},
			{"ok/and", store.AuditFilter{Subject: "alice", Actor: "api1", Audience: "https://api3.example"}, []string{"q4", "q7"}},
			{"ok/and-every-field", store.AuditFilter{
				Subject: "alice", Actor: "api2", ClientID: "api3", Audience: "https://api3.example",
				Type: store.EventCallReported, TraceID: traceA, Since: at(1), Until: at(7), AfterSeq: 1, Limit: 5,
			}, []string{"q7"}},
			{"ok/and-none", store.AuditFilter{Subject: "bob", Actor: "api1"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Query(t.Context(), tc.f)
				if err != nil {
					t.Fatalf("Query(%+v): %v", tc.f, err)
				}
				if !slices.Equal(ids(got), tc.want) {
					t.Errorf("Query(%+v) = %v, want %v", tc.f, ids(got), tc.want)
				}
			})
		}
	}},
	{"ok/query-returns-whole-events", func(t *testing.T, s store.Store) {
		e := fullEvent("e1")
		appendEvents(t, s, event("e0"), e)
		got, err := s.Query(t.Context(), store.AuditFilter{Actor: "api 1"})
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		if len(got) != 1 {
			t.Fatalf("Query = %v, want [e1]", ids(got))
		}
		sameEvent(t, "Query result", got[0], inUTC(*e))
	}},
}
