package condition

import (
	"fmt"
	"regexp"
	"sync"
	"time"
	_ "time/tzdata" // time zones for now.getHours("Europe/Paris") and the like, on hosts without zoneinfo

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// timeZoneFunctions take an optional time zone argument (CEL's timestamp
// accessors).
var timeZoneFunctions = map[string]bool{
	"getFullYear": true, "getMonth": true, "getDayOfYear": true, "getDayOfMonth": true, "getDate": true,
	"getDayOfWeek": true, "getHours": true, "getMinutes": true, "getSeconds": true, "getMilliseconds": true,
}

// utcOffset is the other form CEL accepts for a time zone: "+02:00", "-05:30".
var utcOffset = regexp.MustCompile(`^[+-]?([01]?\d|2[0-3]):[0-5]\d$`)

// checkCalls refuses, at their position, what the type checker lets through but
// would only fail, or cost without bound, when a request is decided:
//   - a constant time zone that is not one (now.getHours("Europe/Pariss")): every
//     request the policy sees would be denied;
//   - replace with a replacement that is not constant: its result grows with the
//     product of two lengths taken from the token, and CEL counts a call's cost
//     only once it returns.
func checkCalls(ast *cel.Ast) []Problem {
	native := ast.NativeRep()
	info := native.SourceInfo()
	var ps []Problem
	at := func(id int64, msg string) {
		loc := info.GetStartLocation(id)
		ps = append(ps, Problem{Line: max(loc.Line(), 1), Column: max(loc.Column()+1, 1), Message: msg})
	}
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		switch name := call.FunctionName(); {
		case timeZoneFunctions[name] && call.IsMemberFunction() && len(args) == 1 && args[0].Kind() == celast.LiteralKind:
			tz, ok := args[0].AsLiteral().(types.String)
			if !ok {
				return
			}
			if _, err := zoneOf(string(tz)); err != nil {
				at(args[0].ID(), fmt.Sprintf("%q is not a time zone (an IANA name like \"Europe/Paris\", or an offset like \"+02:00\")", string(tz)))
			}
		case name == "replace" && call.IsMemberFunction() && len(args) >= 2 && args[1].Kind() != celast.LiteralKind:
			at(args[1].ID(), "the replacement of replace must be a constant text: one taken from the token could make the result as large as the product of two claims")
		}
	}))
	return ps
}

// zones caches loaded time zones: CEL's own accessors load the zone on every
// call (about 10 µs for "Europe/Paris"), which a policy evaluated on every
// exchange should not pay. Keyed by the zone's name as written; only names
// time.LoadLocation accepts are cached, so the cache holds at most the zones the
// tz database has.
var zones sync.Map // string → *time.Location

// zoneOf resolves a CEL time zone argument: an IANA name or a ±HH:MM offset.
func zoneOf(tz string) (*time.Location, error) {
	if loc, ok := zones.Load(tz); ok {
		return loc.(*time.Location), nil
	}
	if m := utcOffset.FindStringSubmatch(tz); m != nil {
		t, err := time.Parse("-07:00", normalOffset(tz))
		if err != nil {
			return nil, err
		}
		_, off := t.Zone()
		return time.FixedZone(tz, off), nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, err
	}
	zones.Store(tz, loc)
	return loc, nil
}

// normalOffset writes a CEL offset ("2:00", "+02:00", "-5:30") as ±HH:MM.
func normalOffset(tz string) string {
	sign := "+"
	if tz[0] == '+' || tz[0] == '-' {
		sign, tz = tz[:1], tz[1:]
	}
	if len(tz) == 4 { // H:MM
		tz = "0" + tz
	}
	return sign + tz
}

// withCachedZones redefines CEL's timestamp accessors that take a time zone, with
// the same signatures and results, on cached zones.
func withCachedZones() cel.EnvOption {
	accessor := func(name, id string, part func(time.Time) int) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload(id, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
			cel.BinaryBinding(func(ts, tz ref.Val) ref.Val {
				t, ok := ts.(types.Timestamp)
				z, zok := tz.(types.String)
				if !ok || !zok {
					return types.MaybeNoSuchOverloadErr(tz)
				}
				loc, err := zoneOf(string(z))
				if err != nil {
					return types.WrapErr(err)
				}
				return types.Int(part(t.Time.In(loc)))
			})))
	}
	opts := []cel.EnvOption{
		accessor("getFullYear", overloads.TimestampToYearWithTz, func(t time.Time) int { return t.Year() }),
		accessor("getMonth", overloads.TimestampToMonthWithTz, func(t time.Time) int { return int(t.Month()) - 1 }),
		accessor("getDayOfYear", overloads.TimestampToDayOfYearWithTz, func(t time.Time) int { return t.YearDay() - 1 }),
		accessor("getDayOfMonth", overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int { return t.Day() - 1 }),
		accessor("getDate", overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int { return t.Day() }),
		accessor("getDayOfWeek", overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int { return int(t.Weekday()) }),
		accessor("getHours", overloads.TimestampToHoursWithTz, func(t time.Time) int { return t.Hour() }),
		accessor("getMinutes", overloads.TimestampToMinutesWithTz, func(t time.Time) int { return t.Minute() }),
		accessor("getSeconds", overloads.TimestampToSecondsWithTz, func(t time.Time) int { return t.Second() }),
		accessor("getMilliseconds", overloads.TimestampToMillisecondsWithTz, func(t time.Time) int { return t.Nanosecond() / 1e6 }),
	}
	return func(e *cel.Env) (*cel.Env, error) {
		var err error
		for _, o := range opts {
			if e, err = o(e); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
}
