package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

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
