// Package policy holds deputy's compiled token-exchange rules (design §3
// exchange.policies, §5 "Policy matching") and says, in words, why a rule does or does
// not match: "policy api1-to-api2 does not allow audience \"https://x\"".
//
// It owns: applying the policy defaults, validating each policy (naming the key at
// fault), the per-client rule lists in config order, and the per-rule predicates
// (subject issuer and token type, may_act requirement, binding requirement,
// act-chain length, targets, scopes, requested token type). It does not decide an exchange: internal/exchange runs
// the ordered checks of design §5 over these rules and turns mismatches into protocol
// errors.
//
// Import rule: policy is pure. It imports the standard library, oauth and
// internal/config only, and never net/http or database/sql (design §8). The rule is
// enforced, transitively, by TestImportRules in internal/exchange, which checks this
// package as well as its own.
package policy
