package config

import (
	"time"

	"gopkg.in/yaml.v3"
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
