package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// OIDCAuth is the `oidc_auth:` section, docker_auth's browser sign-in with
// an OpenID Connect provider (docs/sign-in.md). A person opens
// {path_prefix}/oidc_auth, signs in at the provider and gets a page with a
// docker login line whose password is a Gatehouse-signed credential; no
// token database is needed.
//
//	oidc_auth:
//	  issuer: https://id.example.com/realms/corp   # the provider's iss
//	  redirect_url: https://auth.example.com/oidc_auth  # must end /oidc_auth
//	  client_id: gatehouse
//	  client_secret_file: /etc/gatehouse/oidc-secret  # or client_secret
//	  http_timeout: 10s          # calls to the provider; default 10s
//	  registry_url: registry.example.com  # shown in the docker login line
//	  user_claim: email          # the claim that names the account; default email
//	  labels_claims: [groups]    # claims that become labels of the same name
//	  scopes: [openid, email]    # default [openid, email]; offline_access for a refresh token
//	  revalidate_after: 1h       # Gatehouse's own: ask the provider again after this; default 1h
//	  credential_ttl: 720h       # Gatehouse's own: the credential's lifetime; default 30 days
//	  ca_file: /etc/ssl/corp-ca.pem  # Gatehouse's own: trust this CA for the provider (default: the system's)
//
// docker_auth's level_token_db, redis_token_db and gcs_token_db are
// accepted and ignored with a warning; `label_claims`, the spelling
// docker_auth's reference.yml documents, is accepted with a deprecation
// warning.
type OIDCAuth struct {
	SignInCommon     `yaml:",inline"`
	Issuer           string   `yaml:"issuer"`
	RedirectURL      string   `yaml:"redirect_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	UserClaim        string   `yaml:"user_claim"`
	LabelsClaims     []string `yaml:"labels_claims"`
	LabelClaims      []string `yaml:"label_claims"`
	Scopes           []string `yaml:"scopes"`
	CAFile           string   `yaml:"ca_file"`
}

// Defaults of oidc_auth.
const (
	DefaultOIDCHTTPTimeout     = 10 * time.Second
	DefaultOIDCRevalidateAfter = time.Hour
	DefaultOIDCCredentialTTL   = 30 * 24 * time.Hour
	DefaultOIDCUserClaim       = "email"
)

// Claim returns user_claim or its default.
func (o *OIDCAuth) Claim() string {
	if o.UserClaim == "" {
		return DefaultOIDCUserClaim
	}
	return o.UserClaim
}

// Labels returns labels_claims, or the deprecated label_claims.
func (o *OIDCAuth) Labels() []string {
	if len(o.LabelsClaims) > 0 {
		return o.LabelsClaims
	}
	return o.LabelClaims
}

// ScopeList returns scopes or the default [openid, email].
func (o *OIDCAuth) ScopeList() []string {
	if len(o.Scopes) == 0 {
		return []string{"openid", "email"}
	}
	return o.Scopes
}

// Secret returns client_secret, or the trimmed content of
// client_secret_file.
func (o *OIDCAuth) Secret() (string, error) {
	return readClientSecret("oidc_auth", o.ClientSecret, o.ClientSecretFile)
}

// Files lists client_secret_file, so a change triggers a reload.
func (o *OIDCAuth) Files() []string { return []string{o.ClientSecretFile, o.CAFile} }

// validate checks the section without reading client_secret_file.
func (o *OIDCAuth) validate() error {
	var e signInErrs
	if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		e.add("issuer", "issuer must be the provider's URL (https://…), got %q", o.Issuer)
	}
	if u, err := url.Parse(o.RedirectURL); o.RedirectURL == "" || err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/oidc_auth") {
		e.add("redirect_url", "redirect_url must be the absolute URL of this server's /oidc_auth, got %q", o.RedirectURL)
	}
	e.client(o.ClientID, o.ClientSecret, o.ClientSecretFile)
	if len(o.LabelsClaims) > 0 && len(o.LabelClaims) > 0 {
		e.add("label_claims", "give labels_claims only (label_claims is its deprecated spelling)")
	}
	if len(o.Scopes) > 0 && !slices.Contains(o.Scopes, "openid") {
		e.add("scopes", "scopes must include openid")
	}
	e.common(&o.SignInCommon)
	return e.err()
}

// warnings lists what oidc_auth accepts but ignores or deprecates, as
// (message, key) pairs.
func (o *OIDCAuth) warnings() [][2]string {
	var out [][2]string
	if len(o.LabelClaims) > 0 {
		out = append(out, [2]string{"label_claims is deprecated (docker_auth's reference.yml spelling; its code reads labels_claims): write labels_claims", "label_claims"})
	}
	out = append(out, o.tokenDBWarnings()...)
	return out
}
