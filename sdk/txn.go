package sdk

import "context"

type txnTokenKey struct{}

// ContextWithTxnToken returns ctx carrying raw, the transaction token
// (draft-ietf-oauth-transaction-tokens) a service received in the Txn-Token
// header, to be forwarded unchanged with the calls it makes for that request.
func ContextWithTxnToken(ctx context.Context, raw string) context.Context {
	return context.WithValue(ctx, txnTokenKey{}, raw)
}

// TxnTokenFromContext returns the transaction token ContextWithTxnToken put in
// ctx.
func TxnTokenFromContext(ctx context.Context) (string, bool) {
	raw, ok := ctx.Value(txnTokenKey{}).(string)
	return raw, ok && raw != ""
}
