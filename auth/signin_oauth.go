package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// oauthSignIn is what the OAuth2 browser flows (github_auth, gitlab_auth)
// share: the state and the credentials, a client that reaches the
// provider, the OAuth app and the revalidation cache.
type oauthSignIn struct {
	signInBase
	client *http.Client
	oauth  oauth2.Config
	seen   revalidations
}

func newOAuthSignIn(signer *token.Signer, now func() time.Time, secure bool, timeout time.Duration, oc oauth2.Config) oauthSignIn {
	return oauthSignIn{signInBase: signInBase{creds: signer.SignIns(), now: now, secure: secure},
		client: &http.Client{Timeout: timeout}, oauth: oc}
}

func (o *oauthSignIn) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.client)
}

// vouched is what a provider's API says of the person: the login (the
// account), the provider's id (the subject) and the labels.
type vouched struct {
	login, id string
	labels    map[string][]string
}

// apiGet calls the provider's API at api+path with the bearer token tok,
// redirects not followed, and returns the status; a 200's JSON is decoded
// into out (when not nil). No answer, a 5xx or a 200 that does not decode
// is errProviderDown; what other statuses mean is the caller's.
func (o *oauthSignIn) apiGet(ctx context.Context, section, api, path, accept, tok string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+path, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", section, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := *o.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errProviderDown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return resp.StatusCode, fmt.Errorf("%w: %s: status %d", errProviderDown, path, resp.StatusCode)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%w: %s: %w", errProviderDown, path, err)
		}
	}
	return resp.StatusCode, nil
}

// oauthFlow is one provider's OAuth2 browser sign-in (GitHub, GitLab) for
// serveOAuthSignIn.
type oauthFlow struct {
	provider string // "GitHub", in messages
	section  string // "github_auth", in logs and credentials
	path     string // the flow's path, where its cookie lives
	base     *oauthSignIn
	common   *config.SignInCommon
	// refused is the 403 message for a person the provider does not vouch for.
	refused string
	// sealRefresh: the credential seals the provider's refresh token (and
	// the log says whether there was one); otherwise its access token,
	// which does not refresh (GitHub).
	sealRefresh bool
	// vouch asks the provider's API, with its access token, who signed in.
	vouch func(ctx context.Context, accessToken string) (vouched, error)
}

// serveOAuthSignIn answers a flow's path (serveFlow): the start sets the
// state cookie and sends the browser to the provider with PKCE; the
// callback checks the state, exchanges the code with the PKCE verifier,
// and signedIn finishes.
func (s *Server) serveOAuthSignIn(w http.ResponseWriter, r *http.Request, f oauthFlow) {
	s.serveFlow(w, r, f.provider, f.section, func() *Error { return s.oauthCallback(w, r, f) }, func() *Error {
		nonce, verifier := newNonce(), oauth2.GenerateVerifier()
		f.base.setCookie(w, r, f.path, nonce, verifier)
		http.Redirect(w, r, f.base.oauth.AuthCodeURL(f.base.state(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
		return nil
	})
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
	tok, err := f.base.oauth.Exchange(f.base.ctx(r.Context()), code, oauth2.VerifierOption(pkce))
	if err != nil {
		return signInRefused(f.provider+" did not accept the sign-in code: start again", fmt.Errorf("%s: code exchange: %w", f.section, err))
	}
	return s.signedIn(w, r, f, tok)
}

// signedIn finishes a sign-in once the provider gave its token: the
// provider's API vouches for the person, and the page shows a credential
// with the labels it gave.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, f oauthFlow, tok *oauth2.Token) *Error {
	v, err := f.vouch(r.Context(), tok.AccessToken)
	if err != nil {
		if errors.Is(err, errProviderDown) {
			return unavailable(err)
		}
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: f.refused, Err: err}
	}
	sealed := tok.AccessToken
	if f.sealRefresh {
		sealed = tok.RefreshToken
	}
	ttl := f.common.TTL()
	cred, _, err := f.base.creds.Mint(token.SignInClaims{Account: v.login, Provider: f.section, Subject: v.id,
		Labels: v.labels, RefreshToken: sealed}, ttl)
	if err != nil {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	attrs := []any{"account", v.login, "subject", v.id}
	if f.sealRefresh {
		attrs = append(attrs, "refresh_token", sealed != "")
	}
	s.logger.Info(f.section+" sign-in", attrs...)
	renderSignIn(w, signInView{account: v.login, labels: v.labels, credential: cred, registry: f.common.RegistryURL,
		expires: f.base.now().Add(ttl), again: f.path})
	return nil
}

// labelOf is {name: values}, or nil without values: a credential carries
// no empty label.
func labelOf(name string, values []string) map[string][]string {
	if len(values) == 0 {
		return nil
	}
	return map[string][]string{name: values}
}
