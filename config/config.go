// Package config reads Gatehouse's auth_config.yml, which uses
// cesanta/docker_auth's format, so an existing docker_auth configuration
// file works unchanged.
//
// Decoding is strict: an unknown key, a value of the wrong type, a docker_auth
// section Gatehouse does not implement and every validation failure are all
// reported together, each with the file, line and key it is about:
//
//	auth_config.yml:14: acl[2].match.acount: unknown key
//	auth_config.yml:20: token.expiration: must be at least 60 seconds, got 30
//
// Load checks the file as a whole without reading the files it names (keys,
// certificates, htpasswd); the server reads those when it builds its
// components and reports their problems through Config.Annotate, so they
// carry a line too.
package config

import (
	"log/slog"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// Config is a decoded auth_config.yml.
type Config struct {
	Server   Server                `yaml:"server"`
	Token    token.Config          `yaml:"token"`
	Users    authn.StaticConfig    `yaml:"users"`
	ExtAuth  *authn.ExtConfig      `yaml:"ext_auth"`
	Htpasswd *authn.HtpasswdConfig `yaml:"htpasswd_auth"`
	LDAP     *authn.LDAPConfig     `yaml:"ldap_auth"`
	Mongo    *authn.MongoConfig    `yaml:"mongo_auth"`
	Xorm     *authn.XormConfig     `yaml:"xorm_auth"`
	// Workload lists the issuers whose OIDC ID tokens are accepted as the
	// password (Gatehouse's own; docs/workload-identity.md).
	Workload authn.WorkloadConfig `yaml:"workload_identity"`
	ACL      []acl.Rule           `yaml:"acl"`
	ACLMongo *acl.MongoConfig     `yaml:"acl_mongo"`
	ACLXorm  *acl.XormConfig      `yaml:"acl_xorm"`
	ExtAuthz *acl.ExtConfig       `yaml:"ext_authz"`
	Casbin   *acl.CasbinConfig    `yaml:"casbin_authz"`
	Log      Log                  `yaml:"log"`
	Cache    Cache                `yaml:"cache"`
	Limits   Limits               `yaml:"limits"`
	Throttle Throttle             `yaml:"throttle"`
	// AccessTokens enables access tokens (nil: off).
	AccessTokens *AccessTokens `yaml:"access_tokens"`
	// OIDCAuth is docker_auth's browser sign-in (nil: off;
	// docs/sign-in.md).
	OIDCAuth *OIDCAuth `yaml:"oidc_auth"`
	// GithubAuth is docker_auth's GitHub browser sign-in (nil: off;
	// docs/sign-in.md).
	GithubAuth *GithubAuth `yaml:"github_auth"`
	// GitlabAuth is docker_auth's GitLab browser sign-in (nil: off;
	// docs/sign-in.md).
	GitlabAuth *GitlabAuth `yaml:"gitlab_auth"`
	// GoogleAuth is docker_auth's Google browser sign-in (nil: off;
	// docs/sign-in.md).
	GoogleAuth *GoogleAuth `yaml:"google_auth"`

	// docker_auth sections that Gatehouse does not implement. They are
	// decoded only so that Load can name them in its error.
	Unsupported unsupportedSections `yaml:",inline"`

	file string
	root *yaml.Node
}

// Log is the `log:` section (Gatehouse's own).
//
//	log:
//	  level: info     # debug | info | warn | error
//	  format: text    # text | json
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// SlogLevel returns the configured level (info when unset).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Server is the `server:` section.
//
//	server:
//	  addr: ":5001"              # host:port, or a socket path with net: unix
//	  net: tcp                   # tcp (default) | unix
//	  path_prefix: ""            # serve under this prefix, e.g. /registry-auth
//	  certificate: /ssl/server.pem   # with key: serve HTTPS
//	  key: /ssl/server.key
//	  real_ip_header: X-Forwarded-For  # take the client IP from this header
//	  real_ip_pos: -1            # which comma-separated entry; negative counts from the end
//	  metrics_addr: ":9090"      # serve /metrics here instead of on addr
//	  max_connections: 10000     # connections open at once; more wait to be accepted
type Server struct {
	Addr          string `yaml:"addr"`
	Net           string `yaml:"net"`
	PathPrefix    string `yaml:"path_prefix"`
	Certificate   string `yaml:"certificate"`
	Key           string `yaml:"key"`
	RealIPHeader  string `yaml:"real_ip_header"`
	RealIPPos     int    `yaml:"real_ip_pos"`
	HSTS          bool   `yaml:"hsts"`
	TLSMinVersion string `yaml:"tls_min_version"`
	MetricsAddr   string `yaml:"metrics_addr"`
	// MaxConnections bounds the open connections on addr; 0 (unset)
	// means DefaultMaxConnections. See Connections.
	MaxConnections int `yaml:"max_connections"`

	// docker_auth server keys Gatehouse does not implement.
	LetsEncrypt         yaml.Node `yaml:"letsencrypt"`
	TLSCurvePreferences yaml.Node `yaml:"tls_curve_preferences"`
	TLSCipherSuites     yaml.Node `yaml:"tls_cipher_suites"`
}

// DefaultMaxConnections is server.max_connections when unset.
const DefaultMaxConnections = 10000

// Connections returns max_connections or its default.
func (s Server) Connections() int { return orInt(s.MaxConnections, DefaultMaxConnections) }

type unsupportedSections struct {
	PluginAuthn yaml.Node `yaml:"plugin_authn"`
	PluginAuthz yaml.Node `yaml:"plugin_authz"`
}

// unsupportedReason explains, per docker_auth section, why Load rejects it.
var unsupportedReason = map[string]string{
	"plugin_authn": goPlugins + "; run the authenticator as a program with ext_auth instead (docs/ext.md)",
	"plugin_authz": goPlugins + "; run the authorizer as a program with ext_authz instead (docs/ext.md)",
}

// goPlugins says why plugin_authn and plugin_authz cannot work.
const goPlugins = "Go plugins cannot be loaded by Gatehouse: a plugin only loads into a server built " +
	"with the very same Go toolchain and dependency versions, and Gatehouse ships as a static " +
	"binary (a FROM-scratch image) that cannot load shared objects at all"

// File returns the path the configuration was read from.
func (c *Config) File() string { return c.file }

// Files lists the files the configuration refers to (keys, certificates,
// password and htpasswd files; not key references such as awskms:…): what
// a change to should trigger a reload.
// Sections that refer to files report them through a Files method.
func (c *Config) Files() []string {
	files := []string{c.Server.Certificate, c.Server.Key, c.Token.Certificate, c.Token.Key,
		c.Token.NextCertificate, c.Token.NextKey, c.Token.RefreshSecretFile}
	if c.Htpasswd != nil {
		files = append(files, c.Htpasswd.Path)
	}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() || v.Field(i).IsZero() {
			continue
		}
		if f, ok := v.Field(i).Interface().(interface{ Files() []string }); ok {
			files = append(files, f.Files()...)
		}
	}
	out := files[:0]
	for _, f := range files {
		// A key held by a key service (awskms:…) is no file to watch.
		if f != "" && !token.IsKeyReference(f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
