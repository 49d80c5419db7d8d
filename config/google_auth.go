package config

import (
	"net/url"
	"strings"
)

// GoogleIssuer is the OpenID Connect issuer google_auth signs in against.
const GoogleIssuer = "https://accounts.google.com"

// GoogleAuth is the `google_auth:` section, docker_auth's browser sign-in
// with Google (docs/sign-in.md). Gatehouse runs it as the oidc_auth flow
// against https://accounts.google.com at {path_prefix}/google_auth; the
// account is the e-mail address and, with domain set, the ID token's hd
// claim must equal it.
//
//	google_auth:
//	  domain: example.com         # only this Google Workspace domain (optional)
//	  client_id: 1223123456-x.apps.googleusercontent.com
//	  client_secret_file: /etc/gatehouse/google-secret  # or client_secret
//	  http_timeout: 10s
//	  redirect_url: https://auth.example.com/google_auth  # Gatehouse's own; default: this request's host
//	  revalidate_after: 1h        # Gatehouse's own
//	  registry_url: registry.example.com  # Gatehouse's own
//	  credential_ttl: 720h        # Gatehouse's own
type GoogleAuth struct {
	SignInCommon     `yaml:",inline"`
	Domain           string `yaml:"domain"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	RedirectURL      string `yaml:"redirect_url"`
}

// Files lists client_secret_file, so a change triggers a reload.
func (g *GoogleAuth) Files() []string { return []string{g.ClientSecretFile} }

// OIDC returns the oidc_auth section google_auth amounts to, against
// issuer (GoogleIssuer but in tests): scopes openid and email, the account
// from the email claim.
func (g *GoogleAuth) OIDC(issuer string) *OIDCAuth {
	return &OIDCAuth{Issuer: issuer, RedirectURL: g.RedirectURL, ClientID: g.ClientID, ClientSecret: g.ClientSecret,
		ClientSecretFile: g.ClientSecretFile, UserClaim: "email", Scopes: []string{"openid", "email"},
		SignInCommon: SignInCommon{HTTPTimeout: g.HTTPTimeout, RegistryURL: g.RegistryURL,
			RevalidateAfter: g.RevalidateAfter, CredentialTTL: g.CredentialTTL}}
}

// validate checks the section without reading client_secret_file.
func (g *GoogleAuth) validate() error {
	var e signInErrs
	e.client(g.ClientID, g.ClientSecret, g.ClientSecretFile)
	if g.RedirectURL != "" {
		if u, err := url.Parse(g.RedirectURL); err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/google_auth") {
			e.add("redirect_url", "redirect_url must be an absolute URL ending in /google_auth, got %q", g.RedirectURL)
		}
	}
	if strings.ContainsAny(g.Domain, "/@ ") {
		e.add("domain", "domain must be a domain name such as example.com, got %q", g.Domain)
	}
	e.common(&g.SignInCommon)
	return e.err()
}

// warnings lists what google_auth accepts but ignores.
func (g *GoogleAuth) warnings() [][2]string {
	return g.tokenDBWarnings()
}
