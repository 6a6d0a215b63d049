package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/store"
)

// lineageEvents is a delegation tree, with the events Revoke must not follow:
//
//	T0 ─▶ T1 ─▶ T2 ─▶ T3     (T0 issued; each arrow an allowed exchange)
//	      T1 ─▶ T4
//	      T1 ─✗ TD            (denied exchange that names a token: not followed)
//	      T1 ─▶ (no token)    (a reported call: no TokenJTI, not followed)
//	      T1 ─▶ TC            (a reported call naming a token: not an issuance, not followed)
//	O0 ─▶ O1                  (another tree)
func lineageEvents() []*store.AuditEvent {
	issued := event("issue-T0")
	issued.TokenJTI, issued.TokenExpires = "T0", exp(0)
	denied := exchanged("deny-TD", "T1", "TD", exp(9))
	denied.Type, denied.Decision = store.EventDenied, store.DecisionDeny
	call := exchanged("call", "T1", "", time.Time{})
	call.Type = store.EventCallReported
	callTok := exchanged("call-TC", "T1", "TC", exp(8))
	callTok.Type = store.EventCallReported
	return []*store.AuditEvent{
		issued,
		exchanged("x-T1", "T0", "T1", exp(1)),
		exchanged("x-O1", "O0", "O1", exp(1)),
		denied,
		call,
		callTok,
		exchanged("x-T2", "T1", "T2", exp(2)),
		exchanged("x-T4", "T1", "T4", exp(4)),
		exchanged("x-T3", "T2", "T3", exp(3)),
	}
}

// exp is the expiry of the suite's tokens numbered n.
func exp(n int) time.Time { return t0.Add(time.Hour + time.Duration(n)*time.Minute) }

func revoke(t *testing.T, s store.Store, r store.Revocation) []store.Revocation {
	t.Helper()
	got, err := s.Revoke(t.Context(), r, RevokedEvent("rev-"+r.JTI+"-"+r.Reason), Seal)
	if err != nil {
		t.Fatalf("Revoke(%s): %v", r.JTI, err)
	}
	return got
}

// RevokedEvent is a store.RevocationEvent for tests: a token.revoked event with
// that id, naming the root and, in Detail, how many tokens were revoked.
func RevokedEvent(id string) store.RevocationEvent {
	return func(revs []store.Revocation) (*store.AuditEvent, error) {
		e := event(id)
		e.Type, e.TokenJTI = store.EventTokenRevoked, revs[0].JTI
		e.Detail = fmt.Sprintf(`{"count":%d}`, len(revs))
		return e, nil
	}
}

// checkRevocations fails t unless got has root first and then exactly the
// descendants (in any order), each revocation equal to its want.
func checkRevocations(t *testing.T, got []store.Revocation, root store.Revocation, descendants ...store.Revocation) {
	t.Helper()
	if len(got) == 0 || !sameRevocation(got[0], root) {
		t.Fatalf("Revoke returned %v; want the root %v first", got, root)
	}
	rest := slices.Clone(got[1:])
	sort.Slice(rest, func(i, j int) bool { return rest[i].JTI < rest[j].JTI })
	descendants = slices.Clone(descendants)
	sort.Slice(descendants, func(i, j int) bool { return descendants[i].JTI < descendants[j].JTI })
	if len(rest) != len(descendants) {
		t.Fatalf("Revoke returned descendants %v, want %v", jtis(rest), jtis(descendants))
	}
	for i := range rest {
		if !sameRevocation(rest[i], descendants[i]) {
			t.Errorf("descendant:\n got %+v\nwant %+v", rest[i], descendants[i])
		}
	}
}

func sameRevocation(got, want store.Revocation) bool {
	return got.JTI == want.JTI && got.Reason == want.Reason &&
		sameTime(got.ExpiresAt, want.ExpiresAt) && sameTime(got.RevokedAt, want.RevokedAt)
}

func jtis(rs []store.Revocation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.JTI)
	}
	return out
}

func listRevoked(t *testing.T, s store.Store, at time.Time) []string {
	t.Helper()
	rs, err := s.ListRevocations(t.Context(), at)
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	out := jtis(rs)
	slices.Sort(out)
	return out
}

// descendant is the revocation Revoke records for a token derived from root.
func descendant(jti string, n int, root store.Revocation) store.Revocation {
	return store.Revocation{
		JTI:       jti,
		ExpiresAt: exp(n),
		RevokedAt: root.RevokedAt,
		Reason:    "ancestor " + root.JTI + " revoked: " + root.Reason,
	}
}

var revocationTests = []test{
	{"ok/numbered-in-order", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		revoke(t, s, store.Revocation{JTI: "T2", ExpiresAt: exp(2), RevokedAt: t0, Reason: "a"}) // T2, T3
		revoke(t, s, store.Revocation{JTI: "O0", ExpiresAt: exp(0), RevokedAt: t0, Reason: "b"}) // O0, O1
		revoke(t, s, store.Revocation{JTI: "T2", ExpiresAt: exp(2), RevokedAt: t0, Reason: "c"}) // nothing new
		all, err := s.RevocationsAfter(t.Context(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jtis(all), []string{"T2", "T3", "O0", "O1"}; !slices.Equal(got, want) {
			t.Fatalf("RevocationsAfter(0) = %v, want %v in the order recorded", got, want)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Fatalf("Seq not increasing: %v", all)
			}
		}
		rest, err := s.RevocationsAfter(t.Context(), all[1].Seq, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) != 1 || rest[0].JTI != "O0" || !sameRevocation(rest[0], all[2]) {
			t.Fatalf("RevocationsAfter(second, limit 1) = %v, want O0", rest)
		}
		if none, err := s.RevocationsAfter(t.Context(), all[3].Seq, 10); err != nil || len(none) != 0 {
			t.Fatalf("RevocationsAfter(last) = %v, %v; want none", none, err)
		}
	}},
	{"fail/append-issuing-from-a-revoked-parent", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		revoke(t, s, store.Revocation{JTI: "T1", ExpiresAt: exp(1), RevokedAt: t0, Reason: "gone"})
		before := scanAll(t, s, 0)
		// The second event exchanges from T3, revoked as T1's descendant.
		err := s.Append(t.Context(), []*store.AuditEvent{event("ok-1"), exchanged("x-T5", "T3", "T5", exp(5)), event("ok-2")}, Seal)
		var pre *store.ParentRevokedError
		if !errors.As(err, &pre) || pre.Index != 1 || pre.ParentJTI != "T3" || !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("Append = %v, want a ParentRevokedError for index 1, T3", err)
		}
		if after := scanAll(t, s, 0); len(after) != len(before) {
			t.Fatalf("Append stored %d events despite refusing", len(after)-len(before))
		}
		// What records a revoked token's fate is still appended: a call reported with
		// it, a denial, the revocation event itself.
		call := exchanged("call-T3", "T3", "", time.Time{})
		call.Type = store.EventCallReported
		denied := exchanged("deny-T6", "T3", "T6", exp(6))
		denied.Type, denied.Decision = store.EventDenied, store.DecisionDeny
		revEvent := exchanged("rev-T3", "T3", "T3", exp(3))
		revEvent.Type = store.EventTokenRevoked
		appendEvents(t, s, call, denied, revEvent)
	}},
	{"ok/cascade-three-levels", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		root := store.Revocation{JTI: "T0", ExpiresAt: exp(0), RevokedAt: t0.Add(time.Minute), Reason: "logout"}
		got := revoke(t, s, root)
		checkRevocations(t, got, root,
			descendant("T1", 1, root), descendant("T2", 2, root),
			descendant("T3", 3, root), descendant("T4", 4, root))
		if want := []string{"T0", "T1", "T2", "T3", "T4"}; !slices.Equal(listRevoked(t, s, t0), want) {
			t.Fatalf("ListRevocations = %v, want %v (not TD, denied; not O1, another tree)", listRevoked(t, s, t0), want)
		}
	}},
	{"ok/subtree-only", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		root := store.Revocation{JTI: "T2", ExpiresAt: exp(2), RevokedAt: t0, Reason: "r"}
		checkRevocations(t, revoke(t, s, root), root, descendant("T3", 3, root))
		if want := []string{"T2", "T3"}; !slices.Equal(listRevoked(t, s, t0), want) {
			t.Fatalf("ListRevocations = %v, want %v", listRevoked(t, s, t0), want)
		}
	}},
	{"ok/idempotent", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		root := store.Revocation{JTI: "T1", ExpiresAt: exp(1), RevokedAt: t0, Reason: "first"}
		first := revoke(t, s, root)
		again := root
		again.RevokedAt, again.Reason = t0.Add(time.Hour), "second"
		second := revoke(t, s, again)
		// The second call records nothing new and returns what is stored: the first
		// revocations.
		checkRevocations(t, second, root, descendant("T2", 2, root), descendant("T3", 3, root), descendant("T4", 4, root))
		if !slices.EqualFunc(first, second, sameRevocation) {
			t.Fatalf("second Revoke = %v, want %v", second, first)
		}
	}},
	{"ok/already-revoked-descendant", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		early := store.Revocation{JTI: "T2", ExpiresAt: exp(2), RevokedAt: t0, Reason: "early"}
		revoke(t, s, early)
		root := store.Revocation{JTI: "T0", ExpiresAt: exp(0), RevokedAt: t0.Add(time.Minute), Reason: "late"}
		checkRevocations(t, revoke(t, s, root), root,
			descendant("T1", 1, root), early, descendant("T3", 3, early), descendant("T4", 4, root))
	}},
	{"ok/unknown-token", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		root := store.Revocation{JTI: "nowhere", ExpiresAt: exp(0), RevokedAt: t0, Reason: "r"}
		checkRevocations(t, revoke(t, s, root), root)
	}},
	{"ok/never-expiring-root", func(t *testing.T, s store.Store) {
		root := store.Revocation{JTI: "R", RevokedAt: t0, Reason: "r"}
		checkRevocations(t, revoke(t, s, root), root)
		if got := listRevoked(t, s, t0.AddDate(100, 0, 0)); !slices.Equal(got, []string{"R"}) {
			t.Fatalf("ListRevocations far ahead = %v, want [R]", got)
		}
	}},
	{"ok/cycle-terminates", func(t *testing.T, s store.Store) {
		// A lineage cannot loop, but a damaged or hostile trail must not hang Revoke.
		appendEvents(t, s,
			exchanged("x-B", "A", "B", exp(2)),
			exchanged("x-C", "B", "C", exp(3)),
			exchanged("x-A", "C", "A", exp(1)),
			exchanged("x-S", "S", "S", exp(9)))
		root := store.Revocation{JTI: "A", ExpiresAt: exp(1), RevokedAt: t0, Reason: "r"}
		checkRevocations(t, revoke(t, s, root), root, descendant("B", 2, root), descendant("C", 3, root))
		self := store.Revocation{JTI: "S", ExpiresAt: exp(9), RevokedAt: t0, Reason: "r"}
		checkRevocations(t, revoke(t, s, self), self)
	}},
	{"ok/deep-chain", func(t *testing.T, s store.Store) {
		var events []*store.AuditEvent
		names := []string{"D0"}
		for i := 1; i <= 20; i++ {
			names = append(names, "D"+string(rune('a'+i)))
			events = append(events, exchanged("x-"+names[i], names[i-1], names[i], exp(i)))
		}
		appendEvents(t, s, events...)
		root := store.Revocation{JTI: "D0", ExpiresAt: exp(0), RevokedAt: t0, Reason: "r"}
		var want []store.Revocation
		for i := 1; i <= 20; i++ {
			want = append(want, descendant(names[i], i, root))
		}
		checkRevocations(t, revoke(t, s, root), root, want...)
	}},
	{"ok/refresh-chain-200-deep", func(t *testing.T, s store.Store) {
		// A sign-in's lineage after 200 refreshes: code → (access, refresh) →
		// refresh → … each refresh a level deeper, each access token exchanged once.
		// Revoking the code (reuse detection, sign-out) reaches the newest tokens.
		const n = 200
		events := []*store.AuditEvent{exchanged("code", "sid", "C", exp(0))}
		var want []string
		parent := "C"
		for i := range n {
			rt, at, x := fmt.Sprintf("R%03d", i), fmt.Sprintf("A%03d", i), fmt.Sprintf("X%03d", i)
			issuedRT, issuedAT := exchanged("i-"+rt, parent, rt, exp(1)), exchanged("i-"+at, parent, at, exp(2))
			issuedRT.Type, issuedAT.Type = store.EventTokenIssued, store.EventTokenIssued
			events = append(events, issuedAT, issuedRT, exchanged("x-"+x, at, x, exp(3)))
			want = append(want, at, rt, x)
			parent = rt
		}
		appendEvents(t, s, events...)
		root := store.Revocation{JTI: "C", ExpiresAt: exp(0), RevokedAt: t0, Reason: "reuse"}
		got := revoke(t, s, root)
		if len(got) != 1+len(want) {
			t.Fatalf("Revoke reached %d tokens, want %d (the code and all %d refreshes)", len(got), 1+len(want), n)
		}
		revoked := listRevoked(t, s, t0)
		for _, jti := range []string{"R199", "A199", "X199", "X100"} {
			if _, ok := slices.BinarySearch(revoked, jti); !ok {
				t.Errorf("%s (a descendant %d levels down) is not revoked", jti, n)
			}
		}
		// Descendants come in the order they were issued: a parent before its children.
		pos := map[string]int{}
		for i, r := range got {
			pos[r.JTI] = i
		}
		for i := 1; i < n; i++ {
			if pos[fmt.Sprintf("R%03d", i-1)] > pos[fmt.Sprintf("R%03d", i)] {
				t.Fatalf("R%03d listed after its child", i-1)
			}
		}
	}},
	{"ok/revocation-and-event-together", func(t *testing.T, s store.Store) {
		appendEvents(t, s, lineageEvents()...)
		root := store.Revocation{JTI: "T1", ExpiresAt: exp(1), RevokedAt: t0, Reason: "r"}
		var given []store.Revocation
		got, err := s.Revoke(t.Context(), root, func(revs []store.Revocation) (*store.AuditEvent, error) {
			given = slices.Clone(revs)
			return RevokedEvent("rev-T1")(revs)
		}, Seal)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(given, got, sameRevocation) {
			t.Errorf("event was given %v, Revoke returned %v", given, got)
		}
		all := scanAll(t, s, 0)
		checkChain(t, all)
		last := all[len(all)-1]
		if last.ID != "rev-T1" || last.Type != store.EventTokenRevoked || last.TokenJTI != "T1" || last.Detail != `{"count":4}` {
			t.Fatalf("last event = %+v, want the revocation event", last)
		}
	}},
	{"fail/revocation-without-its-event", func(t *testing.T, s store.Store) {
		// When the event cannot be built or stored, nothing is revoked and nothing
		// is appended.
		appendEvents(t, s, lineageEvents()...)
		before := scanAll(t, s, 0)
		root := store.Revocation{JTI: "T0", ExpiresAt: exp(0), RevokedAt: t0, Reason: "r"}
		errNoEvent := errors.New("no event")
		if _, err := s.Revoke(t.Context(), root, func([]store.Revocation) (*store.AuditEvent, error) { return nil, errNoEvent }, Seal); !errors.Is(err, errNoEvent) {
			t.Fatalf("Revoke with a failing event = %v, want %v", err, errNoEvent)
		}
		// An event whose id is taken fails its insert, after the revocations were
		// written in the same transaction.
		if _, err := s.Revoke(t.Context(), root, RevokedEvent("x-T1"), Seal); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Revoke with a conflicting event id = %v, want ErrConflict", err)
		}
		if got := listRevoked(t, s, t0); len(got) != 0 {
			t.Fatalf("revoked %v without the revocation event", got)
		}
		if all, err := s.RevocationsAfter(t.Context(), 0, 10); err != nil || len(all) != 0 {
			t.Fatalf("RevocationsAfter = %v, %v; want none", all, err)
		}
		if after := scanAll(t, s, 0); len(after) != len(before) {
			t.Fatalf("%d events appended by failed revocations", len(after)-len(before))
		}
	}},
	{"ok/list-expiry-cut", func(t *testing.T, s store.Store) {
		at := t0.Add(time.Hour)
		for _, r := range []store.Revocation{
			{JTI: "expired", ExpiresAt: at.Add(-time.Microsecond), RevokedAt: t0},
			{JTI: "expires-at-t", ExpiresAt: at, RevokedAt: t0},
			{JTI: "live", ExpiresAt: at.Add(time.Microsecond), RevokedAt: t0},
			{JTI: "never", RevokedAt: t0},
		} {
			revoke(t, s, r)
		}
		if got, want := listRevoked(t, s, at), []string{"live", "never"}; !slices.Equal(got, want) {
			t.Fatalf("ListRevocations(t) = %v, want %v (tokens expiring after t, and those never expiring)", got, want)
		}
		if got, want := listRevoked(t, s, t0), []string{"expired", "expires-at-t", "live", "never"}; !slices.Equal(got, want) {
			t.Fatalf("ListRevocations(t0) = %v, want %v", got, want)
		}
	}},
	{"ok/list-round-trip", func(t *testing.T, s store.Store) {
		r := store.Revocation{JTI: "j", ExpiresAt: exp(1).In(time.FixedZone("X", 3600)), RevokedAt: t0, Reason: "why not"}
		revoke(t, s, r)
		rs, err := s.ListRevocations(t.Context(), t0)
		if err != nil {
			t.Fatalf("ListRevocations: %v", err)
		}
		if len(rs) != 1 || !sameRevocation(rs[0], r) {
			t.Fatalf("ListRevocations = %+v, want [%+v]", rs, r)
		}
	}},
}
