// Package report lets a service put its own handling of a request into deputy's
// audit trail: "ledger read account/42 for alice via payments". The trail already
// holds who obtained which token through which exchanges; a reported call links to the
// token the service received, by that token's jti, so the trail reaches the last API
// (design §7).
//
// It owns the client side of deputy's call report endpoint: discovery of
// call_report_endpoint in the authorization server metadata (RFC 8414 §3),
// client_secret_basic authentication (RFC 6749 §2.3.1), a bounded queue that never
// blocks the request being served, one background sender that batches calls (by count,
// by the 1 MiB body limit and by time), and retries with exponential backoff for
// answers that may succeed later.
//
// The wire contract, POST call_report_endpoint with Content-Type application/json:
//
//	{"calls":[{"token_jti":"…","action":"read","resource":"account/42","outcome":"ok",
//	           "time":"2026-11-25T22:00:00.123456Z","detail":"…"}]}
//
// answered by 200 {"accepted":N,"rejected":[{"index":i,"error":"…"}]}, whose rejected
// calls are refused for good; 400 and 401 carry an RFC 6749 §5.2 error and refuse the
// whole report for good (so does any other 4xx but 408 and 429); 5xx, 408, 429 and
// transport failures are retried, waiting 100ms, then twice as long each time up to 5s,
// at most MaxRetries times, while later reports wait, so that order is kept.
//
// It imports only the standard library and deputy's oauth and sdk packages, so a
// service adds it without pulling in the server; a test enforces that. It does not
// verify tokens: ReportRequest reads the jti of a token that the verify middleware has
// already checked.
package report
