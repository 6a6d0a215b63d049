// Package oauth is deputy's public protocol vocabulary: grant-type and token-type
// URNs, the protocol Error with its RFC 6749 §5.2 / RFC 8693 §2.2.2 codes, and the
// wire structs of token, introspection and error responses.
//
// It is shared by the server and by the sdk packages, so it imports only the
// standard library; a test enforces that.
package oauth
