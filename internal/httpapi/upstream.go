package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/deputy-auth/deputy/internal/signin"
	"github.com/deputy-auth/deputy/internal/upstream"
	"github.com/deputy-auth/deputy/oauth"
)

// Paths of upstream sign-in.
const (
	PathUpstreamLogin = "/login/upstream"
	PathCallback      = "/callback/" // + provider name
)

const upstreamCookie = "deputy_upstream"

// upstreamState is what the browser carries (in a cookie scoped to the callback
// path) between Begin and Complete.
type upstreamState struct {
	IdP      string `json:"idp"`
	State    []byte `json:"state"`
	ReturnTo string `json:"return_to"`
	Expires  int64  `json:"exp"`
}

const upstreamTTL = 10 * time.Minute

// maxCallbackBody bounds the body of a provider's return (a SAML response).
const maxCallbackBody = 512 << 10

func (wb *web) provider(name string) upstream.Provider {
	for _, p := range wb.s.cfg.Upstreams {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// upstreamButton is one provider on the login page.
type upstreamButton struct {
	Name string
	// Unavailable: the provider cannot be used now (its discovery has not
	// succeeded yet); the page shows its button disabled, saying so.
	Unavailable bool
}

// upstreamNames lists the providers for the login page, each with whether it
// can be used now.
func (wb *web) upstreamNames() []upstreamButton {
	var out []upstreamButton
	for _, p := range wb.s.cfg.Upstreams {
		out = append(out, upstreamButton{Name: p.Name(), Unavailable: p.Unavailable() != nil})
	}
	return out
}

func safeReturnTo(v string) string {
	if v != PathLogin && !strings.HasPrefix(v, PathAuthorize+"?") && !auditReturnTo(v) {
		return PathLogin // never an open redirect
	}
	return v
}

// upstreamLogin starts a sign-in at an upstream provider.
func (wb *web) upstreamLogin(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return &methodError{allow: "POST"}
	}
	if err := wb.readForm(w, r); err != nil {
		return wb.refuse(w, r, "", err)
	}
	if !csrfOK(r) {
		return wb.refuse(w, r, "", oauth.InvalidRequest("the form expired; go back and try again", errors.New("CSRF token mismatch on upstream sign-in")))
	}
	p := wb.provider(r.PostForm.Get("idp"))
	if p == nil {
		return wb.refuse(w, r, "", oauth.InvalidRequest("unknown identity provider", nil))
	}
	callback := wb.s.cfg.Issuer + PathCallback + p.Name()
	redirect, state, err := p.Begin(r.Context(), callback)
	if err != nil {
		desc := "the identity provider " + p.Name() + " cannot be reached"
		if errors.Is(err, upstream.ErrUnavailable) {
			desc = "sign-in with " + p.Name() + " is unavailable right now; try again later, or sign in another way"
		}
		return wb.refuse(w, r, "", oauth.TemporarilyUnavailable(desc, err))
	}
	exp := wb.s.cfg.Now().Add(upstreamTTL)
	sealed, err := wb.s.cfg.Tokens.SealState("upstream", upstreamState{IdP: p.Name(), State: state,
		ReturnTo: safeReturnTo(r.PostForm.Get("return_to")), Expires: exp.Unix()}, exp)
	if err != nil {
		return oauth.ServerError(err)
	}
	c := &http.Cookie{Name: upstreamCookie, Value: sealed, Path: PathCallback + p.Name(),
		HttpOnly: true, Secure: wb.secure(), SameSite: http.SameSiteLaxMode, MaxAge: int(upstreamTTL / time.Second)}
	if wb.secure() {
		// A SAML IdP posts the response back cross-site: the cookie must travel with it.
		c.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, redirect, http.StatusSeeOther)
	return nil
}

// callback completes an upstream sign-in (query for OIDC, form post for SAML).
func (wb *web) callback(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, PathCallback)
	p := wb.provider(name)
	if p == nil {
		return wb.refuse(w, r, "", oauth.InvalidRequest("unknown identity provider", nil))
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		// A SAML response with its signature and attributes can be large.
		r.Body = http.MaxBytesReader(connWriter(w), r.Body, max(wb.s.cfg.MaxBodyBytes, maxCallbackBody))
		if err := r.ParseForm(); err != nil {
			return wb.refuse(w, r, "", oauth.InvalidRequest("malformed form", err))
		}
		params = r.PostForm
	}
	// The state is signed by deputy: a browser cannot choose what it holds.
	var st upstreamState
	c, err := r.Cookie(upstreamCookie)
	if err == nil {
		err = wb.s.cfg.Tokens.OpenStateContext(r.Context(), c.Value, "upstream", wb.s.cfg.Now(), &st)
	}
	if err != nil || st.IdP != name || wb.s.cfg.Now().Unix() > st.Expires {
		return wb.refuse(w, r, "", oauth.InvalidRequest("the sign-in with "+name+" expired or was not started here; try again", err))
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: "", Path: PathCallback + name, MaxAge: -1, HttpOnly: true, Secure: wb.secure()})
	ident, err := p.Complete(r.Context(), wb.s.cfg.Issuer+PathCallback+name, params, st.State)
	if err != nil {
		return wb.refuse(w, r, "", &oauth.Error{Code: oauth.CodeAccessDenied, Description: "sign-in with " + name + " failed",
			Cause: err})
	}
	_, cookie, err := wb.s.cfg.SignIn.SignInUpstream(r.Context(), signin.Upstream{Subject: ident.Subject, IdP: ident.IdP,
		AMR: ident.AMR, ACR: ident.ACR, LinkLocal: ident.LinkLocal}, wb.meta(r, ""))
	switch {
	case errors.Is(err, signin.ErrLocalAccount):
		// Already recorded as a denied sign-in.
		return wb.render(w, http.StatusForbidden, "message.html", page{Title: "Sign-in refused",
			Error: "Your " + name + " account " + ident.Subject + " has the name of an account of this server, and " + name +
				" may not sign in to this server's accounts.",
			Message: "Sign in with your password, or ask an administrator."})
	case errors.Is(err, signin.ErrLocalDisabled):
		return wb.render(w, http.StatusForbidden, "message.html", page{Title: "Sign-in refused",
			Error: "The account " + ident.Subject + " is disabled."})
	case err != nil:
		return oauth.TemporarilyUnavailable("cannot sign in now", err)
	}
	if wb.s.cfg.RememberClaims != nil {
		wb.s.cfg.RememberClaims(ident.IdP, ident.Subject, ident.Claims)
	}
	wb.setCookie(w, sessionCookie, cookie, wb.s.cfg.SessionTTL)
	http.Redirect(w, r, safeReturnTo(st.ReturnTo), http.StatusSeeOther)
	return nil
}
