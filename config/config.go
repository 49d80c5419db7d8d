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
	Htpasswd *authn.HtpasswdConfig `yaml:"htpasswd_auth"`
	ACL      []acl.Rule            `yaml:"acl"`

	// docker_auth sections that Gatehouse does not implement. They are
	// decoded only so that Load can name them in its error.
	Unsupported unsupportedSections `yaml:",inline"`

	file string
	root *yaml.Node
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

	// docker_auth server keys Gatehouse does not implement.
	LetsEncrypt         yaml.Node `yaml:"letsencrypt"`
	TLSCurvePreferences yaml.Node `yaml:"tls_curve_preferences"`
	TLSCipherSuites     yaml.Node `yaml:"tls_cipher_suites"`
}

type unsupportedSections struct {
	GoogleAuth  yaml.Node `yaml:"google_auth"`
	GithubAuth  yaml.Node `yaml:"github_auth"`
	OIDCAuth    yaml.Node `yaml:"oidc_auth"`
	GitlabAuth  yaml.Node `yaml:"gitlab_auth"`
	LDAPAuth    yaml.Node `yaml:"ldap_auth"`
	MongoAuth   yaml.Node `yaml:"mongo_auth"`
	XormAuth    yaml.Node `yaml:"xorm_auth"`
	ExtAuth     yaml.Node `yaml:"ext_auth"`
	PluginAuthn yaml.Node `yaml:"plugin_authn"`
	ACLMongo    yaml.Node `yaml:"acl_mongo"`
	ACLXorm     yaml.Node `yaml:"acl_xorm"`
	ExtAuthz    yaml.Node `yaml:"ext_authz"`
	PluginAuthz yaml.Node `yaml:"plugin_authz"`
	CasbinAuthz yaml.Node `yaml:"casbin_authz"`
}

// unsupportedReason explains, per docker_auth section, why Load rejects it.
var unsupportedReason = map[string]string{
	"google_auth":  "browser sign-in flows are not supported by Gatehouse",
	"github_auth":  "browser sign-in flows are not supported by Gatehouse",
	"oidc_auth":    "browser sign-in flows are not supported by Gatehouse",
	"gitlab_auth":  "browser sign-in flows are not supported by Gatehouse",
	"ldap_auth":    "not supported by this version of Gatehouse yet",
	"mongo_auth":   "not supported by this version of Gatehouse yet",
	"acl_mongo":    "not supported by this version of Gatehouse yet",
	"xorm_auth":    "SQL user stores are not supported by Gatehouse",
	"acl_xorm":     "SQL ACL stores are not supported by Gatehouse",
	"ext_auth":     "external programs are not supported by Gatehouse",
	"ext_authz":    "external programs are not supported by Gatehouse",
	"plugin_authn": "Go plugins are not supported by Gatehouse",
	"plugin_authz": "Go plugins are not supported by Gatehouse",
	"casbin_authz": "casbin is not supported by Gatehouse",
}

// File returns the path the configuration was read from.
func (c *Config) File() string { return c.file }
