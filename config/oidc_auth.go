package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
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
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", cfgerr.At(fmt.Errorf("oidc_auth: reading client secret: %w", err), "client_secret_file")
	}
	return strings.TrimSpace(string(b)), nil
}

// Files lists client_secret_file, so a change triggers a reload.
func (o *OIDCAuth) Files() []string { return []string{o.ClientSecretFile, o.CAFile} }

// validate checks the section without reading client_secret_file.
func (o *OIDCAuth) validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, cfgerr.At(fmt.Errorf(format, a...), key))
	}
	if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		add("issuer", "issuer must be the provider's URL (https://…), got %q", o.Issuer)
	}
	if u, err := url.Parse(o.RedirectURL); o.RedirectURL == "" || err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/oidc_auth") {
		add("redirect_url", "redirect_url must be the absolute URL of this server's /oidc_auth, got %q", o.RedirectURL)
	}
	if o.ClientID == "" {
		add("client_id", "client_id is required")
	}
	switch {
	case o.ClientSecret == "" && o.ClientSecretFile == "":
		add("client_secret", "client_secret or client_secret_file is required")
	case o.ClientSecret != "" && o.ClientSecretFile != "":
		add("client_secret_file", "give client_secret or client_secret_file, not both")
	}
	if len(o.LabelsClaims) > 0 && len(o.LabelClaims) > 0 {
		add("label_claims", "give labels_claims only (label_claims is its deprecated spelling)")
	}
	if len(o.Scopes) > 0 && !slices.Contains(o.Scopes, "openid") {
		add("scopes", "scopes must include openid")
	}
	if v := o.Revalidate(); v < time.Minute {
		add("revalidate_after", "revalidate_after must be at least 1m, got %s", v)
	}
	if v := o.TTL(); v < time.Hour {
		add("credential_ttl", "credential_ttl must be at least 1h, got %s", v)
	}
	if v := o.Timeout(); v <= 0 {
		add("http_timeout", "http_timeout must be positive, got %s", v)
	}
	return errors.Join(errs...)
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
