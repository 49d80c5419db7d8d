package config

import "strings"

// GithubAuth is the `github_auth:` section, docker_auth's browser sign-in
// with GitHub (docs/sign-in.md). A person opens {path_prefix}/github_auth,
// authorizes the OAuth app at GitHub and gets a page with a docker login
// line whose password is a Gatehouse-signed credential carrying GitHub's
// access token sealed; no token database is needed.
//
//	github_auth:
//	  organization: acme          # only members of this organization (optional)
//	  client_id: Iv1.0123456789
//	  client_secret_file: /etc/gatehouse/github-secret  # or client_secret
//	  http_timeout: 10s           # calls to GitHub; default 10s
//	  revalidate_after: 1h        # ask GitHub again after this; default 1h
//	  github_web_uri: https://github.com       # GitHub Enterprise: https://ghe.example.com
//	  github_api_uri: https://api.github.com   # GitHub Enterprise: https://ghe.example.com/api/v3
//	  registry_url: registry.example.com       # shown in the docker login line
//	  credential_ttl: 720h        # Gatehouse's own: the credential's lifetime; default 30 days
//
// The OAuth app's callback URL must be this server's /github_auth.
// docker_auth's level_token_db, redis_token_db and gcs_token_db are
// accepted and ignored with a warning.
type GithubAuth struct {
	SignInCommon     `yaml:",inline"`
	Organization     string `yaml:"organization"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	GithubWebURI     string `yaml:"github_web_uri"`
	GithubAPIURI     string `yaml:"github_api_uri"`
}

// WebURI returns github_web_uri (without a trailing slash) or
// https://github.com.
func (g *GithubAuth) WebURI() string {
	if g.GithubWebURI == "" {
		return "https://github.com"
	}
	return strings.TrimRight(g.GithubWebURI, "/")
}

// APIURI returns github_api_uri (without a trailing slash) or
// https://api.github.com.
func (g *GithubAuth) APIURI() string {
	if g.GithubAPIURI == "" {
		return "https://api.github.com"
	}
	return strings.TrimRight(g.GithubAPIURI, "/")
}

// Secret returns client_secret, or the trimmed content of
// client_secret_file.
func (g *GithubAuth) Secret() (string, error) {
	return readClientSecret("github_auth", g.ClientSecret, g.ClientSecretFile)
}

// Files lists client_secret_file, so a change triggers a reload.
func (g *GithubAuth) Files() []string { return []string{g.ClientSecretFile} }

// validate checks the section without reading client_secret_file.
func (g *GithubAuth) validate() error {
	var e signInErrs
	e.client(g.ClientID, g.ClientSecret, g.ClientSecretFile)
	e.urls([2]string{"github_web_uri", g.GithubWebURI}, [2]string{"github_api_uri", g.GithubAPIURI})
	e.common(&g.SignInCommon)
	return e.err()
}

// warnings lists what github_auth accepts but ignores.
func (g *GithubAuth) warnings() [][2]string {
	return g.tokenDBWarnings()
}
