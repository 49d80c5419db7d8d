package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/token"
)

// signInBase is what every browser flow (oidc_auth, github_auth) shares:
// the signed, short-lived state bound to a cookie, and the credentials.
type signInBase struct {
	creds  *token.SignIns
	now    func() time.Time
	secure bool // the callback URL is https: the cookie is Secure
}

// newNonce returns 128 random bits, base64url.
func newNonce() string {
	n := make([]byte, 16)
	_, _ = rand.Read(n)
	return base64.RawURLEncoding.EncodeToString(n)
}

// setCookie binds the flow started now to this browser: the nonce the
// state carries and the PKCE verifier, HttpOnly and SameSite=Lax, on path;
// Secure when the callback URL is https or the request came over TLS.
func (s *signInBase) setCookie(w http.ResponseWriter, r *http.Request, path, nonce, verifier string) {
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: nonce + "." + verifier, Path: path,
		MaxAge: int(signInStateTTL / time.Second), HttpOnly: true, Secure: s.secure || r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// clearCookie drops the flow's cookie once the callback has used it.
func (s *signInBase) clearCookie(w http.ResponseWriter, r *http.Request, path string) {
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: path, MaxAge: -1, HttpOnly: true, Secure: s.secure || r.TLS != nil})
}

// state is nonce.expiry.mac: it expires and only this Gatehouse (or a
// replica with the same secret) can make one.
func (s *signInBase) state(nonce string) string {
	body := nonce + "." + strconv.FormatInt(s.now().Add(signInStateTTL).Unix(), 10)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.creds.StateMAC([]byte(body)))
}

// checkState verifies the state parameter against the cookie and returns
// the nonce and the PKCE verifier.
func (s *signInBase) checkState(r *http.Request) (nonce, verifier string, e *Error) {
	state := r.URL.Query().Get("state")
	if state == "" {
		return "", "", signInRefused("sign-in state is missing: start again", errors.New("signin: callback without state"))
	}
	parts := strings.Split(state, ".")
	if len(parts) != 3 {
		return "", "", signInRefused("sign-in state is invalid: start again", errors.New("signin: malformed state"))
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, s.creds.StateMAC([]byte(parts[0]+"."+parts[1]))) {
		return "", "", signInRefused("sign-in state is invalid: start again", errors.New("signin: state signature does not verify"))
	}
	if exp, err := strconv.ParseInt(parts[1], 10, 64); err != nil || s.now().Unix() > exp {
		return "", "", signInRefused("sign-in took too long: start again", errors.New("signin: state expired"))
	}
	c, err := r.Cookie(signInCookie)
	if err != nil {
		return "", "", signInRefused("sign-in state does not match this browser: start again", errors.New("signin: no state cookie"))
	}
	cn, verifier, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(cn), []byte(parts[0])) {
		return "", "", signInRefused("sign-in state does not match this browser: start again", errors.New("signin: state not bound to this cookie"))
	}
	return parts[0], verifier, nil
}

// oauthFlow is one provider's OAuth2 browser sign-in (GitHub, GitLab) for
// serveOAuthSignIn.
type oauthFlow struct {
	provider string // "GitHub", in messages
	section  string // "github_auth", in logs
	path     string // the flow's path, where its cookie lives
	base     *signInBase
	oauth    *oauth2.Config
	client   *http.Client // reaches the provider
	// signedIn finishes the sign-in with the provider's token.
	signedIn func(tok *oauth2.Token) *Error
}

// serveOAuthSignIn answers a flow's path: without code and state it sets
// the state cookie and sends the browser to the provider with PKCE; with
// them it is the provider's callback: the state is checked, the code
// exchanged with the PKCE verifier, and signedIn finishes.
func (s *Server) serveOAuthSignIn(w http.ResponseWriter, r *http.Request, f oauthFlow) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var e *Error
	switch {
	case q.Has("error"):
		e = signInRefused(fmt.Sprintf("%s refused the sign-in: %.200s", f.provider, q.Get("error")), nil)
	case q.Has("code") || q.Has("state"):
		e = s.oauthCallback(w, r, f)
	default:
		nonce, verifier := newNonce(), oauth2.GenerateVerifier()
		f.base.setCookie(w, r, f.path, nonce, verifier)
		http.Redirect(w, r, f.oauth.AuthCodeURL(f.base.state(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	}
	if e != nil {
		s.logger.Warn(f.section+" sign-in refused", "status", e.Status, "msg", e.Message, "err", e.Err)
		writeError(w, e)
	}
}

// oauthCallback checks the state, exchanges the code and calls signedIn.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request, f oauthFlow) *Error {
	_, pkce, e := f.base.checkState(r)
	if e != nil {
		return e
	}
	f.base.clearCookie(w, r, f.path)
	code := r.URL.Query().Get("code")
	if code == "" {
		return signInRefused(f.provider+" sent no code", fmt.Errorf("%s: callback without code", f.section))
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, f.client)
	tok, err := f.oauth.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		return signInRefused(f.provider+" did not accept the sign-in code: start again", fmt.Errorf("%s: code exchange: %w", f.section, err))
	}
	return f.signedIn(tok)
}
