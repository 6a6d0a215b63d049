package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/deputy-auth/deputy/internal/grant"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
	"github.com/deputy-auth/deputy/sdk/dpop"
)

// DPoP configures the checking of DPoP proofs (RFC 9449) at the token and userinfo
// endpoints.
type DPoP struct {
	// MaxAge is how old a proof may be (dpop.max_age); zero means dpop.DefaultMaxAge.
	MaxAge time.Duration
	// RequireNonce: every proof must carry a nonce deputy issued (dpop.require_nonce).
	RequireNonce bool
	// Replay remembers the jti of every proof accepted, per key, until the proof
	// expires, on every node (RFC 9449 §11.1). Required. internal/server gives
	// the audit writer (audit.Writer.UseNonce), whose commits record the jti.
	Replay NonceRecorder
}

// NonceRecorder records single-use values: store.Nonces.UseNonce's contract.
type NonceRecorder interface {
	UseNonce(ctx context.Context, key string, expiresAt time.Time) error
}

// dpopReplayKey is the nonce under which a proof's jti is recorded: its iat in
// seconds, zero-padded, then its key's thumbprint and its jti. A replayed proof
// carries the same signed iat, so it has the same key; and as proofs arrive in
// about the order of their iat, the records go in at the end of the nonces
// table's index, not at random places in it: a commit rewrites a few pages of
// it, not one per proof.
func dpopReplayKey(p *dpop.Proof) string {
	return fmt.Sprintf("dpop:%012d:%s:%s", max(p.IssuedAt.Unix(), 0), p.JKT, p.JTI)
}

// DPoP nonces (RFC 9449 §8) are stateless: a value sealed with deputy's signing
// keys, which every node holds, valid dpopNonceTTL. A node hands out the same nonce
// for dpopNonceRefresh, so that a client's nonce stays current over several
// requests and the server signs one nonce a minute, not one per response.
const (
	dpopNonceTTL     = 5 * time.Minute
	dpopNonceRefresh = time.Minute
	dpopNoncePurpose = "dpop-nonce"
)

// dpopNonces is the nonce a node currently hands out.
type dpopNonces struct {
	mu     sync.Mutex
	value  string
	minted time.Time
}

// dpopNonce returns the nonce to send in DPoP-Nonce, minting a new one when the
// current one is older than dpopNonceRefresh ("" when none can be minted: the
// next proof is then refused with use_dpop_nonce and the client asks again).
func (s *Server) dpopNonce(now time.Time) string {
	n := &s.nonces
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.value == "" || now.Sub(n.minted) >= dpopNonceRefresh || now.Before(n.minted) {
		v, err := s.cfg.Tokens.SealState(dpopNoncePurpose, struct{}{}, now.Add(dpopNonceTTL))
		if err != nil {
			s.cfg.Log.Error("dpop: cannot mint a nonce", "err", err)
			return ""
		}
		n.value, n.minted = v, now
	}
	return n.value
}

// checkDPoPNonce accepts a nonce any node of this deployment minted in the last
// dpopNonceTTL.
func (s *Server) checkDPoPNonce(ctx context.Context, nonce string, now time.Time) error {
	if nonce == "" {
		return errors.New("the proof carries no nonce")
	}
	var v struct{}
	if err := s.cfg.Tokens.OpenStateContext(ctx, nonce, dpopNoncePurpose, now, &v); err != nil {
		return fmt.Errorf("stale or unknown nonce: %w", err)
	}
	return nil
}

// dpopProof checks the one DPoP proof in proofs (the request's DPoP header lines)
// for a request of method to htu (RFC 9449 §4.3), with ath of accessToken when
// not empty, and records its jti: a jti of the same key seen before, on any node,
// is a replay (§11.1). Every refusal is an *oauth.Error: invalid_dpop_proof, or
// use_dpop_nonce when dpop.require_nonce wants a fresh nonce.
func (s *Server) dpopProof(ctx context.Context, proofs []string, method, htu, accessToken string, now time.Time) (*dpop.Proof, error) {
	if len(proofs) != 1 {
		// RFC 9449 §4.3 step 1: not more than one DPoP header.
		return nil, oauth.InvalidDPoPProof("send one DPoP header", fmt.Errorf("%d DPoP headers", len(proofs)))
	}
	req := dpop.Request{Method: method, URL: htu, AccessToken: accessToken, Now: now, MaxAge: s.cfg.DPoP.MaxAge}
	if s.cfg.DPoP.RequireNonce {
		req.Nonce = func(n string) error { return s.checkDPoPNonce(ctx, n, now) }
	}
	p, err := dpop.Check(proofs[0], req)
	if err != nil {
		var de *dpop.Error
		if errors.As(err, &de) {
			return nil, de.OAuth()
		}
		return nil, oauth.InvalidDPoPProof("invalid DPoP proof", err)
	}
	switch err := s.cfg.DPoP.Replay.UseNonce(ctx, dpopReplayKey(p), p.Expires); {
	case errors.Is(err, store.ErrConflict):
		return nil, oauth.InvalidDPoPProof("invalid DPoP proof: jti was used before",
			fmt.Errorf("replayed jti %q of key %s", p.JTI, p.JKT))
	case err != nil:
		return nil, oauth.TemporarilyUnavailable("cannot check the DPoP proof now", err)
	}
	return p, nil
}

// tokenProof readies the DPoP proof check of a token request (RFC 9449 §5): with
// dpop.require_nonce every answer carries the current nonce (RFC 9449 §8), and
// req.Prove checks the proof — the Dispatcher calls it once the client is
// authenticated and admitted by limits.rate, so that a refused request costs no
// signature check and no replay-store write. It leaves in req.Binding the key the
// request proved, or in req.BindingErr why its proof is refused — the Dispatcher
// refuses it then, so that the denial is recorded with the client and its reason.
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request, req *grant.Request) {
	if s.cfg.DPoP.RequireNonce {
		if n := s.dpopNonce(req.Now); n != "" {
			w.Header().Set(dpop.NonceHeader, n)
		}
	}
	proofs := r.Header.Values(dpop.Header)
	if len(proofs) == 0 {
		return
	}
	req.Prove = func() {
		p, err := s.dpopProof(r.Context(), proofs, http.MethodPost, s.cfg.Issuer+PathToken, "", req.Now)
		if err != nil {
			req.BindingErr = err
			return
		}
		req.Binding = &oauth.Confirmation{JKT: p.JKT}
	}
}

// dpopChallenge is the WWW-Authenticate value of a resource refusing a request
// for its DPoP-bound token (RFC 9449 §7.1).
func dpopChallenge(code, desc string) string {
	algs := make([]string, 0, 4)
	for _, a := range dpop.Algorithms() {
		algs = append(algs, string(a))
	}
	desc = strings.NewReplacer(`"`, "'", `\`, "/").Replace(desc)
	return `DPoP realm="deputy", algs="` + strings.Join(algs, " ") + `", error="` + code + `", error_description="` + desc + `"`
}
