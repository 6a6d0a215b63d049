package demo

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/deputy-auth/deputy/internal/audit"
	"github.com/deputy-auth/deputy/internal/server"
	"github.com/deputy-auth/deputy/oauth"
)

// printer writes the demo's story; the first write error sticks.
type printer struct {
	w   io.Writer
	err error
}

func newPrinter(w io.Writer) *printer { return &printer{w: w} }

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) title(s string) { p.printf("%s\n%s\n", s, strings.Repeat("═", len([]rune(s)))) }

func (p *printer) section(s string) { p.printf("\n── %s\n\n", s) }

func (p *printer) line(format string, args ...any) { p.printf("   "+format+"\n", args...) }

// hops prints what each service received, decoded: who the token is for, who
// carried it, where it may go and what it allows.
func (p *printer) hops(hops []Hop) {
	for i, h := range hops {
		pr := h.Principal
		p.printf("   hop %d  %s received a token issued to %s\n", i+1, h.Service, pr.ClientID)
		p.printf("           sub    %s\n", pr.Subject)
		p.printf("           aud    %s\n", strings.Join(pr.Audience, " "))
		p.printf("           scope  %s\n", strings.Join(pr.Scopes, " "))
		p.printf("           act    %s\n", actString(pr.Act))
		p.printf("           cnf    %s\n", short(pr.Cnf))
		p.printf("           jti    %s\n", pr.JTI)
		if h.Txn != nil {
			p.printf("           txn    %s (Txn-Token: scope %s)\n", h.Txn.Txn, strings.Join(h.Txn.Scopes, " "))
		}
	}
	p.printf("\n")
}

// short renders a token's binding: the first 8 characters of the key's thumbprint.
func short(c *oauth.Confirmation) string {
	switch {
	case c == nil:
		return "— (bearer)"
	case c.JKT != "":
		return "jkt " + c.JKT[:min(8, len(c.JKT))] + "… (DPoP key of the caller)"
	default:
		return "x5t#S256 " + c.X5TS256[:min(8, len(c.X5TS256))] + "… (TLS client certificate of the caller)"
	}
}

// actString renders an act claim compactly, outermost (current) actor first:
// {sub: ledger, act: {sub: payments}}.
func actString(a *oauth.Actor) string {
	if a == nil {
		return "— (nobody acts for the user yet)"
	}
	var b strings.Builder
	depth := 0
	for ; a != nil; a = a.Actor {
		if depth > 0 {
			b.WriteString(", act: ")
		}
		b.WriteString("{sub: ")
		b.WriteString(a.Subject)
		if a.Issuer != "" {
			b.WriteString(", iss: ")
			b.WriteString(a.Issuer)
		}
		depth++
	}
	b.WriteString(strings.Repeat("}", depth))
	return b.String()
}

// trace prints deputy audit trace of jti: the tree from the sign-in to every
// token derived from it, and the calls each service reported; and the W3C trace
// id every hop of the payment carried.
func (p *printer) trace(ctx context.Context, node *server.Server, jti, traceID string) error {
	p.printf("   trace id %s: one W3C trace (traceparent) from the web app through payments, ledger\n", traceID)
	p.printf("   and fraud-check, deputy's token exchanges included\n\n")
	return p.auditTrace(ctx, node, jti)
}

// auditTrace prints deputy audit trace of id, a token's jti or an event id.
func (p *printer) auditTrace(ctx context.Context, node *server.Server, id string) error {
	tree, err := audit.Trace(ctx, node.Store, id)
	if err != nil {
		return fmt.Errorf("audit trace: %w", err)
	}
	var b strings.Builder
	if err := tree.WriteText(&b); err != nil {
		return err
	}
	p.printf("   audit trace (deputy audit trace %s):\n\n", id)
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		p.printf("     %s\n", l)
	}
	return nil
}
