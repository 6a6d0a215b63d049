package main

import (
	"context"
	"flag"
	"io"

	"github.com/deputy-auth/deputy/examples/bank/demo"
)

// cmdDemo is `deputy demo`: the bank of examples/bank in one process — deputy, a
// web app and three APIs built on the SDK — from alice's sign-in to the last API.
func cmdDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deputy demo", flag.ContinueOnError)
	dir := fs.String("dir", "", "keep the demo's database and files here (default: a temporary directory, removed at exit)")
	fraudNode := fs.String("fraud-check-node", "", "run fraud-check in Node from this script (examples/bank/node/fraud-check.mjs; needs node ≥ 20 and the built TypeScript SDK)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, err := demo.Run(ctx, stdout, demo.Options{Dir: *dir, FraudCheckNode: *fraudNode})
	return err
}
