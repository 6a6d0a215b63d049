// Package treesvg draws a token's delegation tree (an audit.Tree, as audit.Trace
// builds it) as one inline SVG element for the audit explorer's token page: the
// root — the sign-in, or the token of an outside issuer — each token a box with
// its client, subject, audience, rule, scopes, expiry and binding (DPoP or mTLS),
// and for a transaction token its txn and context (tctx),
// exchanges as edges from parent to child, and under each token the events that
// concern it: calls reported with it, denials of requests that presented it and
// its revocations, the revoked token badged.
//
// The layout is an indented tree, one row per token or event, a child indented
// under its parent, so that the drawing stays narrow enough to read in a phone's
// window however wide the tree grows; it grows down instead.
//
// The output is meant for a page served with the CSP default-src 'self': it holds
// no script, no style attribute or element, no reference to anything outside
// itself (no url(), no ids); presentation is in SVG presentation attributes,
// which the page's style sheet can override through the class names (see Render).
// Every text from the audit trail is shown as the text renderers of
// internal/audit show it — quoted in Go syntax when it holds a control, format or
// bidi character — then XML-escaped; long values are cut with an ellipsis and
// given whole in a <title>.
//
// It imports internal/audit and the standard library only, never net/http; a
// test enforces that.
package treesvg
