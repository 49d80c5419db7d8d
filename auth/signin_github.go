package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	oauthSignIn
	cfg *config.GithubAuth
}

func newGithubSignIn(cfg *config.GithubAuth, signer *token.Signer, now func() time.Time) (*githubSignIn, error) {
	secret, err := cfg.Secret()
	if err != nil {
		return nil, err
	}
	web := cfg.WebURI()
	return &githubSignIn{
		oauthSignIn: newOAuthSignIn(signer, now, false, cfg.Timeout(), oauth2.Config{ClientID: cfg.ClientID, ClientSecret: secret,
			Scopes: []string{"read:org"},
			Endpoint: oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token",
				AuthStyle: oauth2.AuthStyleInParams}}),
		cfg: cfg,
	}, nil
}

// serveGithub answers {prefix}/github_auth: the OAuth2 flow of
// serveOAuthSignIn, GitHub's API vouching for the person.
func (s *Server) serveGithub(w http.ResponseWriter, r *http.Request, st *state) {
	g := st.github
	s.serveOAuthSignIn(w, r, oauthFlow{provider: "GitHub", section: githubBackend, path: st.prefix + "/github_auth",
		base: &g.oauthSignIn, common: &g.cfg.SignInCommon, refused: "GitHub does not vouch for this account here",
		vouch: g.vouch})
}

// errGithubRefused marks an answer in which GitHub no longer vouches for
// the person (token revoked, not a member).
var errGithubRefused = errors.New("github_auth: GitHub refused")

// vouch asks GitHub's API, with the person's token, for the login and id,
// the organization membership (when organization is set) and the team
// slugs in it, parents included (label teams): at the sign-in and at
// each revalidation.
func (g *githubSignIn) vouch(ctx context.Context, tok string) (vouched, error) {
	var user struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
	}
	if _, err := g.get(ctx, tok, "/user", &user); err != nil {
		return vouched{}, err
	}
	if user.Login == "" || user.ID == 0 {
		return vouched{}, fmt.Errorf("%w: /user gave no login or id", errGithubRefused)
	}
	org := g.cfg.Organization
	if org == "" {
		return vouched{login: user.Login, id: strconv.FormatInt(user.ID, 10)}, nil
	}
	status, err := g.get(ctx, tok, "/orgs/"+url.PathEscape(org)+"/members/"+url.PathEscape(user.Login), nil)
	if err != nil {
		return vouched{}, err
	}
	if status != http.StatusNoContent {
		return vouched{}, fmt.Errorf("%w: %s is not a member of %s (status %d)", errGithubRefused, user.Login, org, status)
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
		return vouched{}, err
	}
	var teams []string
	for _, t := range list {
		if !strings.EqualFold(t.Organization.Login, org) {
			continue
		}
		teams = append(teams, t.Slug)
		if t.Parent != nil && t.Parent.Slug != "" {
			teams = append(teams, t.Parent.Slug)
		}
	}
	return vouched{login: user.Login, id: strconv.FormatInt(user.ID, 10), labels: labelOf("teams", teams)}, nil
}

// get calls GitHub's API at path (apiGet) and returns the status. A 401
// or 403, or another status than 200 when out is set, is errGithubRefused.
func (g *githubSignIn) get(ctx context.Context, tok, path string, out any) (int, error) {
	status, err := g.apiGet(ctx, githubBackend, g.cfg.APIURI(), path, "application/vnd.github+json", tok, out)
	switch {
	case err != nil:
		return status, err
	case status == http.StatusUnauthorized || status == http.StatusForbidden || out != nil && status != http.StatusOK:
		return status, fmt.Errorf("%w: %s: status %d", errGithubRefused, path, status)
	}
	return status, nil
}

// revalidate asks GitHub again, with the sealed access token, once
// revalidate_after has passed since the sign-in or the last revalidation:
// the token must still work, be the same person's and, with organization
// set, the person still a member. It returns the teams label of the last
// answer, so a team the person left is gone within revalidate_after. The
// answer (when and the labels; GitHub's token does not change) is shared
// through sh.
func (g *githubSignIn) revalidate(ctx context.Context, c *token.SignInClaims, sh signInShare) (map[string][]string, error) {
	now := g.now()
	sh.hold = signInHold(g.cfg.Timeout())
	return g.seen.revalidate(ctx, c, now, g.cfg.Revalidate(), sh, func(revalidation) (revalidation, error) {
		v, err := g.vouch(ctx, c.RefreshToken)
		if err != nil {
			return revalidation{}, err
		}
		if v.id != c.Subject {
			return revalidation{}, fmt.Errorf("github_auth: the token now belongs to user %s, not %s", v.id, c.Subject)
		}
		return revalidation{at: now, labels: v.labels, expires: c.ExpiresAt}, nil
	})
}
