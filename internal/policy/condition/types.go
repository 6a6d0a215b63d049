package condition

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// CEL names of the input's object types.
const (
	subjectType = "deputy.Subject"
	actorType   = "deputy.Actor"
	requestType = "deputy.Request"
)

// field is one field of an input object type: its CEL type and how to read it from
// the Go value the activation holds (a *Subject, *Actor or *Request).
type field struct {
	typ *types.Type
	get func(any) any
}

var (
	stringList = types.NewListType(types.StringType)
	claimsType = types.NewMapType(types.StringType, types.DynType)
	actList    = types.NewListType(types.NewMapType(types.StringType, types.StringType))
)

// inputFields are the fields of each object type. A field the expression names
// that is not here does not type-check.
var inputFields = map[string]map[string]field{
	subjectType: {
		"sub":    {types.StringType, func(o any) any { return o.(*Subject).Sub }},
		"iss":    {types.StringType, func(o any) any { return o.(*Subject).Iss }},
		"type":   {types.StringType, func(o any) any { return o.(*Subject).Type }},
		"claims": {claimsType, func(o any) any { return nonNilMap(o.(*Subject).Claims) }},
		"scopes": {stringList, func(o any) any { return nonNilList(o.(*Subject).Scopes) }},
		"aud":    {stringList, func(o any) any { return nonNilList(o.(*Subject).Aud) }},
		"act": {actList, func(o any) any {
			if a := o.(*Subject).Act; a != nil {
				return a
			}
			return []map[string]string{}
		}},
	},
	actorType: {
		"sub": {types.StringType, func(o any) any { return o.(*Actor).Sub }},
		"iss": {types.StringType, func(o any) any { return o.(*Actor).Iss }},
	},
	requestType: {
		"audiences":            {stringList, func(o any) any { return nonNilList(o.(*Request).Audiences) }},
		"resources":            {stringList, func(o any) any { return nonNilList(o.(*Request).Resources) }},
		"scopes":               {stringList, func(o any) any { return nonNilList(o.(*Request).Scopes) }},
		"requested_token_type": {types.StringType, func(o any) any { return o.(*Request).RequestedTokenType }},
	},
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// inputProvider declares the input's object types to the type checker and gives
// the interpreter a getter for each field; every other type goes to the base
// provider.
type inputProvider struct{ types.Provider }

func (p inputProvider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := inputFields[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p inputProvider) FindStructFieldNames(name string) ([]string, bool) {
	fs, ok := inputFields[name]
	if !ok {
		return p.Provider.FindStructFieldNames(name)
	}
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	return names, true
}

func (p inputProvider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	fs, ok := inputFields[name]
	if !ok {
		return p.Provider.FindStructFieldType(name, fieldName)
	}
	f, ok := fs[fieldName]
	if !ok {
		return nil, false
	}
	return &types.FieldType{
		Type:    f.typ,
		IsSet:   func(any) bool { return true },
		GetFrom: func(o any) (any, error) { return f.get(o), nil },
	}, true
}

func (p inputProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := inputFields[name]; ok {
		return types.NewErr("%s values cannot be created in a condition", name)
	}
	return p.Provider.NewValue(name, fields)
}

// withInputTypes installs inputProvider over the environment's provider.
func withInputTypes(e *cel.Env) (*cel.Env, error) {
	return cel.CustomTypeProvider(inputProvider{e.CELTypeProvider()})(e)
}
