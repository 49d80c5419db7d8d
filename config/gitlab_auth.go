package config

import (
	"net/url"
	"strings"
)

// GitlabAuth is the `gitlab_auth:` section, docker_auth's browser sign-in
// with GitLab (docs/sign-in.md). A person opens {path_prefix}/gitlab_auth,
// authorizes the application at GitLab and gets a page with a docker login
// line whose password is a Gatehouse-signed credential carrying GitLab's
// refresh token sealed; the person's groups become label `groups`.
//
//	gitlab_auth:
//	  client_id: 0123abcd
//	  client_secret_file: /etc/gatehouse/gitlab-secret  # or client_secret
//	  redirect_uri: https://auth.example.com/gitlab_auth # the application's callback
//	  grant_type: authorization_code  # docker_auth's; the only one
//	  http_timeout: 10s
//	  revalidate_after: 1h
//	  gitlab_web_uri: https://gitlab.com
//	  gitlab_api_uri: https://gitlab.com/api/v4
//	  registry_url: registry.example.com
//	  credential_ttl: 720h        # Gatehouse's own; default 30 days
//
// docker_auth's organization key is accepted for compatibility but GitLab
// has no organizations: restrict with `${labels:groups}` ACL rules.
type GitlabAuth struct {
	SignInCommon     `yaml:",inline"`
	Organization     string `yaml:"organization"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	GitlabWebURI     string `yaml:"gitlab_web_uri"`
	GitlabAPIURI     string `yaml:"gitlab_api_uri"`
	GrantType        string `yaml:"grant_type"`
	RedirectURI      string `yaml:"redirect_uri"`
}

// WebURI returns gitlab_web_uri (without a trailing slash) or
// https://gitlab.com.
func (g *GitlabAuth) WebURI() string {
	if g.GitlabWebURI == "" {
		return "https://gitlab.com"
	}
	return strings.TrimRight(g.GitlabWebURI, "/")
}

// APIURI returns gitlab_api_uri (without a trailing slash) or
// {gitlab_web_uri}/api/v4.
func (g *GitlabAuth) APIURI() string {
	if g.GitlabAPIURI == "" {
		return g.WebURI() + "/api/v4"
	}
	return strings.TrimRight(g.GitlabAPIURI, "/")
}

// Secret returns client_secret, or the trimmed content of
// client_secret_file.
func (g *GitlabAuth) Secret() (string, error) {
	return readClientSecret("gitlab_auth", g.ClientSecret, g.ClientSecretFile)
}

// Files lists client_secret_file, so a change triggers a reload.
func (g *GitlabAuth) Files() []string { return []string{g.ClientSecretFile} }

// validate checks the section without reading client_secret_file.
func (g *GitlabAuth) validate() error {
	var e signInErrs
	e.client(g.ClientID, g.ClientSecret, g.ClientSecretFile)
	if g.RedirectURI == "" {
		e.add("redirect_uri", "redirect_uri is required: GitLab sends the browser back there (this server's /gitlab_auth)")
	} else if u, err := url.Parse(g.RedirectURI); err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/gitlab_auth") {
		e.add("redirect_uri", "redirect_uri must be an absolute URL ending in /gitlab_auth, got %q", g.RedirectURI)
	}
	if g.GrantType != "" && g.GrantType != "authorization_code" {
		e.add("grant_type", "grant_type must be authorization_code, got %q", g.GrantType)
	}
	e.urls([2]string{"gitlab_web_uri", g.GitlabWebURI}, [2]string{"gitlab_api_uri", g.GitlabAPIURI})
	e.common(&g.SignInCommon)
	return e.err()
}

// warnings lists what gitlab_auth accepts but ignores.
func (g *GitlabAuth) warnings() [][2]string {
	out := g.tokenDBWarnings()
	if g.Organization != "" {
		out = append(out, [2]string{"organization is ignored: GitLab has no organizations; match label groups in the ACL instead", "organization"})
	}
	return out
}
