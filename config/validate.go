package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// TLSVersions maps the names tls_min_version accepts to their values.
var TLSVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10,
	"TLS11": tls.VersionTLS11,
	"TLS12": tls.VersionTLS12,
	"TLS13": tls.VersionTLS13,
}

// validate checks every section and returns all problems joined, each
// placed at its key. It reads no files.
func (c *Config) validate() error {
	var errs []error
	add := func(err error, path ...string) {
		if err != nil {
			errs = append(errs, cfgerr.At(err, path...))
		}
	}

	add(c.unsupported())
	add(c.Server.validate(), "server")
	add(c.Log.validate(), "log")
	add(c.Cache.validate(), "cache")
	add(c.Limits.validate(), "limits")
	add(c.Throttle.validate(), "throttle")
	if c.AccessTokens != nil {
		add(c.AccessTokens.validate(), "access_tokens")
	}

	// docker_auth signs with the server's TLS key pair when token has none.
	if c.Token.Certificate == "" && c.Token.Key == "" && !c.Token.GenerateIfMissing {
		c.Token.Certificate, c.Token.Key = c.Server.Certificate, c.Server.Key
	}
	if !c.has("token") {
		add(errors.New("section is required (issuer, expiration, certificate, key)"), "token")
	} else {
		add(c.Token.Validate(), "token")
	}

	add(c.Users.Validate(), "users")
	if c.Htpasswd != nil {
		add(c.Htpasswd.Validate(), "htpasswd_auth")
	}
	if c.LDAP != nil {
		add(c.LDAP.Validate(), "ldap_auth")
	}
	if c.Mongo != nil {
		add(c.Mongo.Validate(), "mongo_auth")
	} else if c.has("mongo_auth") {
		add(errors.New("section is empty: give dial_info (or uri) and collection, or remove it"), "mongo_auth")
	}
	if c.ExtAuth != nil {
		add(c.ExtAuth.Validate(), "ext_auth")
	} else if c.has("ext_auth") {
		add(errors.New("section is empty: give command, or remove it"), "ext_auth")
	}
	if c.Xorm != nil {
		add(c.Xorm.Validate(), "xorm_auth")
	} else if c.has("xorm_auth") {
		add(errors.New("section is empty: give database_type and conn_string, or remove it"), "xorm_auth")
	}
	add(c.Workload.Validate(), "workload_identity")
	if c.OIDCAuth != nil {
		add(c.OIDCAuth.validate(), "oidc_auth")
	} else if c.has("oidc_auth") {
		add(errors.New("section is empty: give issuer, redirect_url, client_id and client_secret, or remove it"), "oidc_auth")
	}
	if c.GithubAuth != nil {
		add(c.GithubAuth.validate(), "github_auth")
	} else if c.has("github_auth") {
		add(errors.New("section is empty: give client_id and client_secret, or remove it"), "github_auth")
	}
	if c.GitlabAuth != nil {
		add(c.GitlabAuth.validate(), "gitlab_auth")
	} else if c.has("gitlab_auth") {
		add(errors.New("section is empty: give client_id, client_secret and redirect_uri, or remove it"), "gitlab_auth")
	}
	if c.GoogleAuth != nil {
		add(c.GoogleAuth.validate(), "google_auth")
	} else if c.has("google_auth") {
		add(errors.New("section is empty: give client_id and client_secret, or remove it"), "google_auth")
	}
	if len(c.Users) == 0 && c.Htpasswd == nil && c.LDAP == nil && c.Mongo == nil && c.ExtAuth == nil && c.Xorm == nil && len(c.Workload) == 0 && c.OIDCAuth == nil && c.GithubAuth == nil && c.GitlabAuth == nil && c.GoogleAuth == nil {
		add(errors.New("no authenticator is configured: add users, htpasswd_auth, ext_auth, ldap_auth, mongo_auth, xorm_auth, workload_identity, oidc_auth, google_auth, github_auth or gitlab_auth"), "users")
	}

	if c.ACLMongo != nil {
		add(c.ACLMongo.Validate(), "acl_mongo")
	} else if c.has("acl_mongo") {
		add(errors.New("section is empty: give dial_info (or uri) and collection, or remove it"), "acl_mongo")
	}
	if c.ACLXorm != nil {
		add(c.ACLXorm.Validate(), "acl_xorm")
	} else if c.has("acl_xorm") {
		add(errors.New("section is empty: give database_type and conn_string, or remove it"), "acl_xorm")
	}
	if c.ExtAuthz != nil {
		add(c.ExtAuthz.Validate(), "ext_authz")
	} else if c.has("ext_authz") {
		add(errors.New("section is empty: give command, or remove it"), "ext_authz")
	}
	if c.Casbin != nil {
		add(c.Casbin.Validate(), "casbin_authz")
	} else if c.has("casbin_authz") {
		add(errors.New("section is empty: give model_path and policy_path, or remove it"), "casbin_authz")
	}
	// With acl_mongo, acl_xorm, ext_authz or casbin_authz the static acl is
	// optional: the rules may all be elsewhere.
	if !c.has("acl") && c.ACLMongo == nil && c.ACLXorm == nil && c.ExtAuthz == nil && c.Casbin == nil {
		add(errors.New("section is required: without it every request would be denied; write `acl: []` if that is what you want"), "acl")
	} else {
		add(c.nullMatches())
		if _, err := acl.Compile(c.ACL); err != nil {
			add(err, "acl")
		}
	}
	return errors.Join(errs...)
}

func (c *Config) unsupported() error {
	var errs []error
	v := reflect.ValueOf(c.Unsupported)
	t := v.Type()
	for i := range t.NumField() {
		if v.Field(i).Interface().(yaml.Node).Kind == 0 {
			continue
		}
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		errs = append(errs, cfgerr.At(fmt.Errorf("docker_auth section %s: %s", key, unsupportedReason[key]), key))
	}
	return errors.Join(errs...)
}

func (s *Server) validate() error {
	var errs []error
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }

	switch s.Net {
	case "", "tcp", "unix":
	default:
		add(fmt.Errorf("must be tcp or unix, got %q", s.Net), "net")
	}
	if s.Addr == "" {
		add(errors.New("is required, e.g. \":5001\""), "addr")
	}
	if s.PathPrefix != "" {
		if !strings.HasPrefix(s.PathPrefix, "/") {
			add(fmt.Errorf("must start with /, got %q", s.PathPrefix), "path_prefix")
		}
		s.PathPrefix = strings.TrimRight(s.PathPrefix, "/")
	}
	if (s.Certificate == "") != (s.Key == "") {
		add(errors.New("certificate and key go together: set both to serve HTTPS, or neither"), "certificate")
	}
	if s.MaxConnections < 0 {
		add(fmt.Errorf("must be positive (unset or 0 means %d)", DefaultMaxConnections), "max_connections")
	}
	if s.RealIPPos != 0 && s.RealIPHeader == "" {
		add(errors.New("needs real_ip_header"), "real_ip_pos")
	}
	if s.TLSMinVersion != "" {
		if _, ok := TLSVersions[s.TLSMinVersion]; !ok {
			add(fmt.Errorf("must be one of TLS10, TLS11, TLS12, TLS13, got %q", s.TLSMinVersion), "tls_min_version")
		}
		if s.Certificate == "" {
			add(errors.New("applies only with certificate and key"), "tls_min_version")
		}
	}
	for key, n := range map[string]yaml.Node{
		"letsencrypt":           s.LetsEncrypt,
		"tls_curve_preferences": s.TLSCurvePreferences,
		"tls_cipher_suites":     s.TLSCipherSuites,
	} {
		if n.Kind != 0 {
			add(errors.New("not supported by Gatehouse (Go's TLS defaults apply; put a TLS-terminating proxy in front for ACME)"), key)
		}
	}
	return errors.Join(errs...)
}

// nullMatches rejects match keys written without a value ("account:"):
// they decode as absent and would match every request, as docker_auth's
// do.
func (c *Config) nullMatches() error {
	var errs []error
	seq := c.value("acl")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	for i, rule := range seq.Content {
		match := mappingValue(rule, "match")
		if match == nil {
			continue
		}
		for j := 0; j+1 < len(match.Content); j += 2 {
			k, v := match.Content[j], match.Content[j+1]
			if v.Tag == "!!null" {
				errs = append(errs, cfgerr.At(errors.New(`has no value, which would match every request; write "" to mean empty, or remove the key`), "acl", strconv.Itoa(i), "match", k.Value))
			}
			if k.Value == "labels" && v.Kind == yaml.MappingNode {
				for l := 0; l+1 < len(v.Content); l += 2 {
					if v.Content[l+1].Tag == "!!null" {
						errs = append(errs, cfgerr.At(errors.New("has no value; write a pattern or remove the key"), "acl", strconv.Itoa(i), "match", "labels", v.Content[l].Value))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// value returns the node of a top-level key, or nil.
func (c *Config) value(key string) *yaml.Node { return mappingValue(c.root, key) }

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (l *Log) validate() error {
	var errs []error
	switch l.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, cfgerr.At(fmt.Errorf("must be debug, info, warn or error, got %q", l.Level), "level"))
	}
	switch l.Format {
	case "", "text", "json":
	default:
		errs = append(errs, cfgerr.At(fmt.Errorf("must be text or json, got %q", l.Format), "format"))
	}
	return errors.Join(errs...)
}
