package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
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

// readClientSecret returns secret, or the trimmed content of file.
func readClientSecret(section, secret, file string) (string, error) {
	if file == "" {
		return secret, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", cfgerr.At(fmt.Errorf("%s: reading client secret: %w", section, err), "client_secret_file")
	}
	return strings.TrimSpace(string(b)), nil
}

// validate checks the section without reading client_secret_file.
func (g *GitlabAuth) validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, cfgerr.At(fmt.Errorf(format, a...), key))
	}
	if g.ClientID == "" {
		add("client_id", "client_id is required")
	}
	switch {
	case g.ClientSecret == "" && g.ClientSecretFile == "":
		add("client_secret", "client_secret or client_secret_file is required")
	case g.ClientSecret != "" && g.ClientSecretFile != "":
		add("client_secret_file", "give client_secret or client_secret_file, not both")
	}
	if g.RedirectURI == "" {
		add("redirect_uri", "redirect_uri is required: GitLab sends the browser back there (this server's /gitlab_auth)")
	} else if u, err := url.Parse(g.RedirectURI); err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/gitlab_auth") {
		add("redirect_uri", "redirect_uri must be an absolute URL ending in /gitlab_auth, got %q", g.RedirectURI)
	}
	if g.GrantType != "" && g.GrantType != "authorization_code" {
		add("grant_type", "grant_type must be authorization_code, got %q", g.GrantType)
	}
	for _, k := range []struct{ key, v string }{{"gitlab_web_uri", g.GitlabWebURI}, {"gitlab_api_uri", g.GitlabAPIURI}} {
		if k.v == "" {
			continue
		}
		if u, err := url.Parse(k.v); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			add(k.key, "%s must be an absolute http(s) URL, got %q", k.key, k.v)
		}
	}
	if v := g.Revalidate(); v < time.Minute {
		add("revalidate_after", "revalidate_after must be at least 1m, got %s", v)
	}
	if v := g.TTL(); v < time.Hour {
		add("credential_ttl", "credential_ttl must be at least 1h, got %s", v)
	}
	if v := g.Timeout(); v <= 0 {
		add("http_timeout", "http_timeout must be positive, got %s", v)
	}
	return errors.Join(errs...)
}

// warnings lists what gitlab_auth accepts but ignores.
func (g *GitlabAuth) warnings() [][2]string {
	out := g.tokenDBWarnings()
	if g.Organization != "" {
		out = append(out, [2]string{"organization is ignored: GitLab has no organizations; match label groups in the ACL instead", "organization"})
	}
	return out
}
