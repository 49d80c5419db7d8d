package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// gitlabBackend names the gitlab_auth flow in credentials and logs.
const gitlabBackend = "gitlab_auth"

// gitlabSignIn is the gitlab_auth browser flow (docs/sign-in.md): GitLab's
// OAuth authorization-code flow with state and PKCE, then GitLab's API for
// the user and the full paths of the groups the user belongs to (label
// `groups`, which docker_auth never sets: its issue #330). GitLab's access
// tokens expire: the credential carries the refresh token, sealed, and
// revalidation refreshes it (GitLab rotates it) and asks /user again.
type gitlabSignIn struct {
	signInBase
	cfg    *config.GitlabAuth
	client *http.Client
	oauth  oauth2.Config

	mu      sync.Mutex
	checked map[string]revalidation // by credential id
}

func newGitlabSignIn(cfg *config.GitlabAuth, signer *token.Signer, now func() time.Time) (*gitlabSignIn, error) {
	secret, err := cfg.Secret()
	if err != nil {
		return nil, err
	}
	web := cfg.WebURI()
	return &gitlabSignIn{
		signInBase: signInBase{creds: signer.SignIns(), now: now, secure: strings.HasPrefix(cfg.RedirectURI, "https://")},
		cfg:        cfg,
		client:     &http.Client{Timeout: cfg.Timeout()},
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: secret, RedirectURL: cfg.RedirectURI,
			Scopes: []string{"read_api"},
			Endpoint: oauth2.Endpoint{AuthURL: web + "/oauth/authorize", TokenURL: web + "/oauth/token",
				AuthStyle: oauth2.AuthStyleInParams}},
		checked: map[string]revalidation{},
	}, nil
}

func (g *gitlabSignIn) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, g.client)
}

// serveGitlab answers {prefix}/gitlab_auth: the OAuth2 flow of serveOAuthSignIn,
// finished by gitlabSignedIn.
func (s *Server) serveGitlab(w http.ResponseWriter, r *http.Request, st *state) {
	g, path := st.gitlab, st.prefix+"/gitlab_auth"
	s.serveOAuthSignIn(w, r, oauthFlow{provider: "GitLab", section: "gitlab_auth", path: path,
		base: &g.signInBase, oauth: &g.oauth, client: g.client,
		signedIn: func(tok *oauth2.Token) *Error { return s.gitlabSignedIn(w, r, g, tok, path) }})
}

// gitlabSignedIn finishes a sign-in at path once GitLab gave its token.
func (s *Server) gitlabSignedIn(w http.ResponseWriter, r *http.Request, g *gitlabSignIn, tok *oauth2.Token, path string) *Error {
	login, id, groups, err := g.vouch(r.Context(), tok.AccessToken, true)
	if err != nil {
		if errors.Is(err, errProviderDown) {
			return unavailable(err)
		}
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: "GitLab does not vouch for this account", Err: err}
	}
	var labels map[string][]string
	if len(groups) > 0 {
		labels = map[string][]string{"groups": groups}
	}
	cred, _, err := g.creds.Mint(token.SignInClaims{Account: login, Provider: gitlabBackend, Subject: id,
		Labels: labels, RefreshToken: tok.RefreshToken}, g.cfg.TTL())
	if err != nil {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	s.logger.Info("gitlab_auth sign-in", "account", login, "subject", id, "refresh_token", tok.RefreshToken != "")
	renderSignIn(w, signInView{account: login, labels: labels, credential: cred, registry: g.cfg.RegistryURL,
		expires: g.now().Add(g.cfg.TTL()), again: path})
	return nil
}

// errGitlabRefused marks an answer in which GitLab no longer vouches for
// the person (token revoked, account blocked).
var errGitlabRefused = errors.New("gitlab_auth: GitLab refused")

// vouch asks GitLab's API, with the person's token, for the username and
// id and, with groups, the full paths of the groups the user is at least
// a guest of (up to 100).
func (g *gitlabSignIn) vouch(ctx context.Context, tok string, groups bool) (login, id string, paths []string, err error) {
	var user struct {
		Username string `json:"username"`
		ID       int64  `json:"id"`
		State    string `json:"state"`
	}
	if err := g.get(ctx, tok, "/user", &user); err != nil {
		return "", "", nil, err
	}
	if user.Username == "" || user.ID == 0 {
		return "", "", nil, fmt.Errorf("%w: /user gave no username or id", errGitlabRefused)
	}
	if user.State != "" && user.State != "active" {
		return "", "", nil, fmt.Errorf("%w: user %s is %s", errGitlabRefused, user.Username, user.State)
	}
	id = strconv.FormatInt(user.ID, 10)
	if !groups {
		return user.Username, id, nil, nil
	}
	var list []struct {
		FullPath string `json:"full_path"`
	}
	if err := g.get(ctx, tok, "/groups?min_access_level=10&per_page=100", &list); err != nil {
		return "", "", nil, err
	}
	for _, x := range list {
		if x.FullPath != "" {
			paths = append(paths, x.FullPath)
		}
	}
	return user.Username, id, paths, nil
}

// get calls GitLab's API at path and decodes a 200's JSON into out. A 401
// or 403 is errGitlabRefused, no answer or a 5xx errProviderDown.
func (g *gitlabSignIn) get(ctx context.Context, tok, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.APIURI()+path, nil)
	if err != nil {
		return fmt.Errorf("gitlab_auth: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	c := *g.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errProviderDown, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return fmt.Errorf("%w: %s: status %d", errProviderDown, path, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s: status %d", errGitlabRefused, path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("%w: %s: %w", errProviderDown, path, err)
	}
	return nil
}

// revalidate asks GitLab again once revalidate_after has passed since the
// sign-in or the last revalidation: the refresh-token grant must still
// work (GitLab rotates the refresh token; the new one is cached) and /user
// must be the same, active person.
func (g *gitlabSignIn) revalidate(ctx context.Context, c *token.SignInClaims) error {
	now := g.now()
	g.mu.Lock()
	last, ok := g.checked[c.ID]
	g.mu.Unlock()
	if !ok {
		last = revalidation{at: c.IssuedAt, refresh: c.RefreshToken, expires: c.ExpiresAt}
	}
	if now.Sub(last.at) < g.cfg.Revalidate() {
		return nil
	}
	if last.refresh == "" {
		return fmt.Errorf("gitlab_auth: GitLab gave no refresh token for %s to ask again", c.Account)
	}
	tok, err := g.oauth.TokenSource(g.ctx(ctx), &oauth2.Token{RefreshToken: last.refresh, Expiry: now.Add(-time.Minute)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return fmt.Errorf("gitlab_auth: GitLab refused %s's refresh token: %w", c.Account, err)
		}
		return fmt.Errorf("%w: %w", errProviderDown, err)
	}
	_, id, _, err := g.vouch(ctx, tok.AccessToken, false)
	if err != nil {
		return err
	}
	if id != c.Subject {
		return fmt.Errorf("gitlab_auth: the token now belongs to user %s, not %s", id, c.Subject)
	}
	next := revalidation{at: now, refresh: last.refresh, expires: c.ExpiresAt}
	if tok.RefreshToken != "" {
		next.refresh = tok.RefreshToken // rotated
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	remember(g.checked, c.ID, next, now)
	return nil
}
