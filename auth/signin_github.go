package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// githubBackend names the github_auth flow in credentials and logs.
const githubBackend = "github_auth"

// githubSignIn is the github_auth browser flow (docs/sign-in.md): GitHub's
// OAuth web flow with state and PKCE, then GitHub's API for the login,
// the organization membership and the teams (label `teams`, with each
// team's parent, as docker_auth). GitHub's OAuth tokens do not refresh:
// the credential carries the access token, sealed, and revalidation asks
// GitHub again with it.
type githubSignIn struct {
	signInBase
	cfg    *config.GithubAuth
	client *http.Client
	oauth  oauth2.Config

	mu      sync.Mutex
	checked map[string]revalidation // by credential id
}

func newGithubSignIn(cfg *config.GithubAuth, signer *token.Signer, now func() time.Time) (*githubSignIn, error) {
	secret, err := cfg.Secret()
	if err != nil {
		return nil, err
	}
	web := cfg.WebURI()
	return &githubSignIn{
		signInBase: signInBase{creds: signer.SignIns(), now: now},
		cfg:        cfg,
		client:     &http.Client{Timeout: cfg.Timeout()},
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: secret, Scopes: []string{"read:org"},
			Endpoint: oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token",
				AuthStyle: oauth2.AuthStyleInParams}},
		checked: map[string]revalidation{},
	}, nil
}

// serveGithub answers {prefix}/github_auth: the OAuth2 flow of serveOAuthSignIn,
// finished by githubSignedIn.
func (s *Server) serveGithub(w http.ResponseWriter, r *http.Request, st *state) {
	g, path := st.github, st.prefix+"/github_auth"
	s.serveOAuthSignIn(w, r, oauthFlow{provider: "GitHub", section: "github_auth", path: path,
		base: &g.signInBase, oauth: &g.oauth, client: g.client,
		signedIn: func(tok *oauth2.Token) *Error { return s.githubSignedIn(w, r, g, tok, path) }})
}

// githubSignedIn finishes a sign-in at path once GitHub gave its token.
func (s *Server) githubSignedIn(w http.ResponseWriter, r *http.Request, g *githubSignIn, tok *oauth2.Token, path string) *Error {
	login, id, teams, err := g.vouch(r.Context(), tok.AccessToken)
	if err != nil {
		if errors.Is(err, errProviderDown) {
			return unavailable(err)
		}
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: "GitHub does not vouch for this account here", Err: err}
	}
	var labels map[string][]string
	if len(teams) > 0 {
		labels = map[string][]string{"teams": teams}
	}
	cred, _, err := g.creds.Mint(token.SignInClaims{Account: login, Provider: githubBackend, Subject: id,
		Labels: labels, RefreshToken: tok.AccessToken}, g.cfg.TTL())
	if err != nil {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	s.logger.Info("github_auth sign-in", "account", login, "subject", id)
	renderSignIn(w, signInView{account: login, labels: labels, credential: cred, registry: g.cfg.RegistryURL,
		expires: g.now().Add(g.cfg.TTL()), again: path})
	return nil
}

// errGithubRefused marks an answer in which GitHub no longer vouches for
// the person (token revoked, not a member).
var errGithubRefused = errors.New("github_auth: GitHub refused")

// vouch asks GitHub's API, with the person's token, for the login and id,
// the organization membership (when organization is set) and the team
// slugs in it, parents included.
func (g *githubSignIn) vouch(ctx context.Context, tok string) (login, id string, teams []string, err error) {
	var user struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
	}
	if _, err := g.get(ctx, tok, "/user", &user); err != nil {
		return "", "", nil, err
	}
	if user.Login == "" || user.ID == 0 {
		return "", "", nil, fmt.Errorf("%w: /user gave no login or id", errGithubRefused)
	}
	org := g.cfg.Organization
	if org == "" {
		return user.Login, strconv.FormatInt(user.ID, 10), nil, nil
	}
	status, err := g.get(ctx, tok, "/orgs/"+url.PathEscape(org)+"/members/"+url.PathEscape(user.Login), nil)
	if err != nil {
		return "", "", nil, err
	}
	if status != http.StatusNoContent {
		return "", "", nil, fmt.Errorf("%w: %s is not a member of %s (status %d)", errGithubRefused, user.Login, org, status)
	}
	var list []struct {
		Slug         string `json:"slug"`
		Organization struct {
			Login string `json:"login"`
		} `json:"organization"`
		Parent *struct {
			Slug string `json:"slug"`
		} `json:"parent"`
	}
	if _, err := g.get(ctx, tok, "/user/teams?per_page=100", &list); err != nil {
		return "", "", nil, err
	}
	for _, t := range list {
		if !strings.EqualFold(t.Organization.Login, org) {
			continue
		}
		teams = append(teams, t.Slug)
		if t.Parent != nil && t.Parent.Slug != "" {
			teams = append(teams, t.Parent.Slug)
		}
	}
	return user.Login, strconv.FormatInt(user.ID, 10), teams, nil
}

// get calls GitHub's API at path and decodes a 200's JSON into out; it
// returns the status. A 401 or 403 is errGithubRefused, no answer or a 5xx
// errProviderDown.
func (g *githubSignIn) get(ctx context.Context, tok, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.APIURI()+path, nil)
	if err != nil {
		return 0, fmt.Errorf("github_auth: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/vnd.github+json")
	c := *g.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errProviderDown, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return resp.StatusCode, fmt.Errorf("%w: %s: status %d", errGithubRefused, path, resp.StatusCode)
	case resp.StatusCode >= 500:
		return resp.StatusCode, fmt.Errorf("%w: %s: status %d", errProviderDown, path, resp.StatusCode)
	case out != nil && resp.StatusCode != http.StatusOK:
		return resp.StatusCode, fmt.Errorf("%w: %s: status %d", errGithubRefused, path, resp.StatusCode)
	case out != nil:
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%w: %s: %w", errProviderDown, path, err)
		}
	}
	return resp.StatusCode, nil
}

// revalidate asks GitHub again, with the sealed access token, once
// revalidate_after has passed since the sign-in or the last revalidation:
// the token must still work, be the same person's and, with organization
// set, the person still a member.
func (g *githubSignIn) revalidate(ctx context.Context, c *token.SignInClaims) error {
	now := g.now()
	g.mu.Lock()
	last, ok := g.checked[c.ID]
	g.mu.Unlock()
	if !ok {
		last = revalidation{at: c.IssuedAt, expires: c.ExpiresAt}
	}
	if now.Sub(last.at) < g.cfg.Revalidate() {
		return nil
	}
	_, id, _, err := g.vouch(ctx, c.RefreshToken)
	if err != nil {
		return err
	}
	if id != c.Subject {
		return fmt.Errorf("github_auth: the token now belongs to user %s, not %s", id, c.Subject)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	remember(g.checked, c.ID, revalidation{at: now, expires: c.ExpiresAt}, now)
	return nil
}
