// Package condition compiles and evaluates the CEL conditions of exchange policies
// (design §12, exchange.policies[].condition): an expression over what an exchange
// request says — its subject token, actor, client, requested targets and scopes, and
// the time — that must be true for the policy to match.
//
// Conditions are type-checked when they are compiled, against the variables below
// and their fields, so a misspelt variable or field, or an expression that is not
// a bool, is refused with its line and column before deputy serves anything. Their
// cost is bounded twice: statically, assuming each list, map and text holds up to
// SizeBound elements, a condition that might cost more than CostLimit is refused at
// compile time; at evaluation, CostLimit stops a condition that would still exceed
// it (an oversized token) and the evaluation fails. Evaluation errors — a claim the
// token does not have, a limit exceeded — are returned, never turned into true or
// false: the caller denies (fails closed). What would only fail or cost without
// bound at evaluation and can be seen in the text is refused at compile time too:
// a constant time zone that is not one, replace with a replacement that is not a
// constant (checkCalls). Time-zone accessors run on cached zones.
//
// Variables:
//
//	subject  the subject token: sub, iss, type (short name: access_token, jwt,
//	         id_token, refresh_token, saml2), claims (map of its identity claims),
//	         scopes, aud, act (the actors of its act chain, outermost first, each
//	         with sub and iss)
//	actor    the party acting now: sub (the client, or the actor token's subject), iss
//	client   the requesting client's id
//	request  audiences, resources, scopes, requested_token_type (short name): as
//	         sent, or what the exchange would use where one is left out (the
//	         caller, internal/exchange, fills them in per policy)
//	now      the time of the request (timestamp)
//
// Import rule: condition imports the standard library and cel-go only; like
// internal/policy and internal/exchange it never imports net/http or database/sql.
package condition

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Limits of a condition.
const (
	// CostLimit is the most a condition may cost, in CEL cost units (about one
	// per operation, one per element a comprehension visits).
	CostLimit = 10_000
	// SizeBound is the size compile-time cost estimates assume for every list,
	// map and text whose size the expression does not fix (scopes, claims, act…).
	SizeBound = 64
	// MaxLength is the longest condition accepted, in characters.
	MaxLength = 4096
)

// Subject is the subject token as a condition sees it.
type Subject struct {
	Sub    string         `cel:"sub"`
	Iss    string         `cel:"iss"`
	Type   string         `cel:"type"`
	Claims map[string]any `cel:"claims"`
	Scopes []string       `cel:"scopes"`
	Aud    []string       `cel:"aud"`
	// Act is the act chain, outermost (the latest actor) first; each element a map
	// with keys "sub" and "iss" (deputy's issuer URL for its own clients).
	Act []map[string]string `cel:"act"`
}

// Actor is one party of an act chain, or the party acting now.
type Actor struct {
	Sub string `cel:"sub"`
	Iss string `cel:"iss"`
}

// Request is what the exchange request asks for, as sent.
type Request struct {
	Audiences          []string `cel:"audiences"`
	Resources          []string `cel:"resources"`
	Scopes             []string `cel:"scopes"`
	RequestedTokenType string   `cel:"requested_token_type"`
}

// Input is everything a condition can see. Eval does not modify it.
type Input struct {
	Subject *Subject
	Actor   *Actor
	Client  string
	Request *Request
	Now     time.Time
}

// ResolveName implements interpreter.Activation, so that an evaluation reads the
// input without first copying it into a map.
func (in *Input) ResolveName(name string) (any, bool) {
	switch name {
	case "subject":
		return in.Subject, true
	case "actor":
		return in.Actor, true
	case "client":
		return in.Client, true
	case "request":
		return in.Request, true
	case "now":
		return in.Now, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (in *Input) Parent() interpreter.Activation { return nil }

// Problem is one reason a condition does not compile, at a position in its text.
type Problem struct {
	Line, Column int // 1-based, in the condition's text
	Message      string
}

func (p Problem) String() string { return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message) }

// Error lists why a condition does not compile.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "condition " + strings.Join(parts, "; ")
}

// Condition is a compiled condition. It is immutable and safe for concurrent use.
type Condition struct {
	src string
	prg cel.Program
	// MaxCost is the compile-time estimate of the condition's worst cost.
	MaxCost uint64
}

// String returns the condition's text.
func (c *Condition) String() string { return c.src }

var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("subject", cel.ObjectType(subjectType)),
		cel.Variable("actor", cel.ObjectType(actorType)),
		cel.Variable("client", cel.StringType),
		cel.Variable("request", cel.ObjectType(requestType)),
		cel.Variable("now", cel.TimestampType),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Sets(),
		cel.ParserExpressionSizeLimit(MaxLength),
		withCachedZones(),
		withInputTypes, // last: the options above register types with the base provider
	)
})

// Compile parses and type-checks src. The returned error is an *Error naming each
// problem's line and column in src, or a plain error when the CEL environment
// itself cannot be built.
func Compile(src string) (*Condition, error) {
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("condition: CEL environment: %w", err)
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: "is empty; leave the key out for a policy without a condition"}}}
	}
	if n := len([]rune(src)); n > MaxLength {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: fmt.Sprintf("is %d characters long, more than %d", n, MaxLength)}}}
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, issuesError(iss.Errors())
	}
	if ps := checkCalls(ast); len(ps) > 0 {
		return nil, &Error{Problems: ps}
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: fmt.Sprintf("is of type %s, not bool; compare it, as in (%s) == true", typeName(t), src)}}}
	}
	est, err := e.EstimateCost(ast, estimator{})
	if err != nil {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: "cost cannot be estimated: " + err.Error()}}}
	}
	if est.Max > CostLimit {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: fmt.Sprintf(
			"may cost up to %s, more than the limit of %d (lists, maps and texts are assumed to hold up to %d elements)", costText(est.Max), CostLimit, SizeBound)}}}
	}
	prg, err := e.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: err.Error()}}}
	}
	return &Condition{src: src, prg: prg, MaxCost: est.Max}, nil
}

// Eval evaluates the condition over in. An error — a missing claim or key, a type
// mismatch at run time, the cost limit — is returned as it is: the caller denies.
func (c *Condition) Eval(in *Input) (bool, error) {
	out, _, err := c.prg.Eval(in)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("evaluated to %s, not a bool", valueType(out))
	}
	return bool(b), nil
}

func valueType(v ref.Val) string {
	if v == nil {
		return "nothing"
	}
	return v.Type().TypeName()
}

func typeName(t *cel.Type) string {
	if t == nil {
		return "unknown"
	}
	return t.String()
}

func costText(c uint64) string {
	if c > 1<<40 {
		return "an unbounded amount"
	}
	return fmt.Sprint(c)
}

func issuesError(errs []*cel.Error) error {
	e := &Error{}
	for _, x := range errs {
		line, col := x.Location.Line(), x.Location.Column()+1
		if line < 1 {
			line = 1
		}
		col = max(col, 1)
		msg := strings.TrimSuffix(x.Message, " (in container '')")
		e.Problems = append(e.Problems, Problem{Line: line, Column: col, Message: msg})
	}
	if len(e.Problems) == 0 {
		return errors.New("condition: does not compile")
	}
	return e
}

// estimator bounds the sizes CEL cannot know: every list, map and text of the
// input holds at most SizeBound elements for the compile-time estimate.
type estimator struct{}

func (estimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: SizeBound}
}

func (estimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
