package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// SignInCommon holds the keys every browser sign-in section (oidc_auth,
// github_auth, gitlab_auth, google_auth) shares; it is inlined into each.
//
//	http_timeout: 10s          # each call to the provider
//	revalidate_after: 1h       # ask the provider again after this long
//	registry_url: registry.example.com   # shown in the page's docker login line
//	credential_ttl: 720h       # lifetime of the credential the page shows
//	token_db / level_token_db / redis_token_db / gcs_token_db: accepted, ignored (warning)
type SignInCommon struct {
	HTTPTimeout     Duration `yaml:"http_timeout"`
	RevalidateAfter Duration `yaml:"revalidate_after"`
	RegistryURL     string   `yaml:"registry_url"`
	CredentialTTL   Duration `yaml:"credential_ttl"`
	// docker_auth's token databases: Gatehouse's credentials are
	// stateless, so these are accepted with a warning and ignored.
	TokenDB      yaml.Node `yaml:"token_db"` // docker_auth's older LevelDB path
	LevelTokenDB yaml.Node `yaml:"level_token_db"`
	RedisTokenDB yaml.Node `yaml:"redis_token_db"`
	GCSTokenDB   yaml.Node `yaml:"gcs_token_db"`
}

// Timeout returns http_timeout or its default.
func (c *SignInCommon) Timeout() time.Duration { return c.HTTPTimeout.Or(DefaultOIDCHTTPTimeout) }

// Revalidate returns revalidate_after or its default.
func (c *SignInCommon) Revalidate() time.Duration {
	return c.RevalidateAfter.Or(DefaultOIDCRevalidateAfter)
}

// TTL returns credential_ttl or its default.
func (c *SignInCommon) TTL() time.Duration { return c.CredentialTTL.Or(DefaultOIDCCredentialTTL) }

// tokenDBWarnings lists the token-DB sub-sections that are set, as
// (message, key) pairs.
func (c *SignInCommon) tokenDBWarnings() [][2]string {
	var out [][2]string
	for _, k := range []struct {
		key string
		n   *yaml.Node
	}{{"token_db", &c.TokenDB}, {"level_token_db", &c.LevelTokenDB}, {"redis_token_db", &c.RedisTokenDB}, {"gcs_token_db", &c.GCSTokenDB}} {
		if !k.n.IsZero() {
			out = append(out, [2]string{k.key + " is ignored: Gatehouse's sign-in credentials are stateless and need no token database", k.key})
		}
	}
	return out
}

// signInErrs collects a sign-in section's validation errors, each at its key.
type signInErrs []error

// add records the error format(a...) at key.
func (e *signInErrs) add(key, format string, a ...any) {
	*e = append(*e, cfgerr.At(fmt.Errorf(format, a...), key))
}

// err joins the errors, nil when there are none.
func (e signInErrs) err() error { return errors.Join(e...) }

// client checks client_id and that exactly one of client_secret and
// client_secret_file is set.
func (e *signInErrs) client(id, secret, secretFile string) {
	if id == "" {
		e.add("client_id", "client_id is required")
	}
	switch {
	case secret == "" && secretFile == "":
		e.add("client_secret", "client_secret or client_secret_file is required")
	case secret != "" && secretFile != "":
		e.add("client_secret_file", "give client_secret or client_secret_file, not both")
	}
}

// urls checks that each set key of web and api is an absolute http(s) URL.
func (e *signInErrs) urls(web, api [2]string) {
	for _, k := range [][2]string{web, api} {
		if k[1] == "" {
			continue
		}
		if u, err := url.Parse(k[1]); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			e.add(k[0], "%s must be an absolute http(s) URL, got %q", k[0], k[1])
		}
	}
}

// common checks revalidate_after, credential_ttl and http_timeout.
func (e *signInErrs) common(c *SignInCommon) {
	if v := c.Revalidate(); v < time.Minute {
		e.add("revalidate_after", "revalidate_after must be at least 1m, got %s", v)
	}
	if v := c.TTL(); v < time.Hour {
		e.add("credential_ttl", "credential_ttl must be at least 1h, got %s", v)
	}
	if v := c.Timeout(); v <= 0 {
		e.add("http_timeout", "http_timeout must be positive, got %s", v)
	}
}

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
