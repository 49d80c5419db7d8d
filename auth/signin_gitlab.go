package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
// revalidation refreshes it (GitLab rotates it) and asks /user and
// /groups again.
type gitlabSignIn struct {
	oauthSignIn
	cfg *config.GitlabAuth
}

func newGitlabSignIn(cfg *config.GitlabAuth, signer *token.Signer, now func() time.Time) (*gitlabSignIn, error) {
	secret, err := cfg.Secret()
	if err != nil {
		return nil, err
	}
	web := cfg.WebURI()
	return &gitlabSignIn{
		oauthSignIn: newOAuthSignIn(signer, now, strings.HasPrefix(cfg.RedirectURI, "https://"), cfg.Timeout(),
			oauth2.Config{ClientID: cfg.ClientID, ClientSecret: secret, RedirectURL: cfg.RedirectURI,
				Scopes: []string{"read_api"},
				Endpoint: oauth2.Endpoint{AuthURL: web + "/oauth/authorize", TokenURL: web + "/oauth/token",
					AuthStyle: oauth2.AuthStyleInParams}}),
		cfg: cfg,
	}, nil
}

// serveGitlab answers {prefix}/gitlab_auth: the OAuth2 flow of
// serveOAuthSignIn, GitLab's API vouching for the person.
func (s *Server) serveGitlab(w http.ResponseWriter, r *http.Request, st *state) {
	g := st.gitlab
	s.serveOAuthSignIn(w, r, oauthFlow{provider: "GitLab", section: gitlabBackend, path: st.prefix + "/gitlab_auth",
		base: &g.oauthSignIn, common: &g.cfg.SignInCommon, refused: "GitLab does not vouch for this account",
		sealRefresh: true, vouch: g.vouch})
}

// errGitlabRefused marks an answer in which GitLab no longer vouches for
// the person (token revoked, account blocked).
var errGitlabRefused = errors.New("gitlab_auth: GitLab refused")

// vouch asks GitLab's API, with the person's token, for the username and
// id and the full paths of the groups the user is at least a guest of (up
// to 100; label groups): at the sign-in and at each revalidation.
func (g *gitlabSignIn) vouch(ctx context.Context, tok string) (vouched, error) {
	var user struct {
		Username string `json:"username"`
		ID       int64  `json:"id"`
		State    string `json:"state"`
	}
	if err := g.get(ctx, tok, "/user", &user); err != nil {
		return vouched{}, err
	}
	if user.Username == "" || user.ID == 0 {
		return vouched{}, fmt.Errorf("%w: /user gave no username or id", errGitlabRefused)
	}
	if user.State != "" && user.State != "active" {
		return vouched{}, fmt.Errorf("%w: user %s is %s", errGitlabRefused, user.Username, user.State)
	}
	var list []struct {
		FullPath string `json:"full_path"`
	}
	if err := g.get(ctx, tok, "/groups?min_access_level=10&per_page=100", &list); err != nil {
		return vouched{}, err
	}
	var paths []string
	for _, x := range list {
		if x.FullPath != "" {
			paths = append(paths, x.FullPath)
		}
	}
	return vouched{login: user.Username, id: strconv.FormatInt(user.ID, 10), labels: labelOf("groups", paths)}, nil
}

// get calls GitLab's API at path (apiGet) and decodes a 200's JSON into
// out; any other status below 500 is errGitlabRefused.
func (g *gitlabSignIn) get(ctx context.Context, tok, path string, out any) error {
	status, err := g.apiGet(ctx, gitlabBackend, g.cfg.APIURI(), path, "", tok, out)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%w: %s: status %d", errGitlabRefused, path, status)
	}
	return err
}

// revalidate asks GitLab again once revalidate_after has passed since the
// sign-in or the last revalidation: the refresh-token grant must still
// work (GitLab rotates the refresh token; the new one is cached, and
// shared through sh) and /user must be the same, active person. It returns the groups label of the
// last answer, so a group the person left is gone within revalidate_after.
func (g *gitlabSignIn) revalidate(ctx context.Context, c *token.SignInClaims, sh signInShare) (map[string][]string, error) {
	now := g.now()
	sh.hold = signInHold(g.cfg.Timeout())
	return g.seen.revalidate(ctx, c, now, g.cfg.Revalidate(), sh, func(last revalidation) (revalidation, error) {
		if last.refresh == "" {
			return revalidation{}, fmt.Errorf("gitlab_auth: GitLab gave no refresh token for %s to ask again", c.Account)
		}
		tok, err := g.oauth.TokenSource(g.ctx(ctx), &oauth2.Token{RefreshToken: last.refresh, Expiry: now.Add(-time.Minute)}).Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
				return revalidation{}, fmt.Errorf("gitlab_auth: GitLab refused %s's refresh token: %w", c.Account, err)
			}
			return revalidation{}, fmt.Errorf("%w: %w", errProviderDown, err)
		}
		v, err := g.vouch(ctx, tok.AccessToken)
		if err != nil {
			return revalidation{}, err
		}
		if v.id != c.Subject {
			return revalidation{}, fmt.Errorf("gitlab_auth: the token now belongs to user %s, not %s", v.id, c.Subject)
		}
		return revalidated(c, now, last, tok, v.labels), nil
	})
}
