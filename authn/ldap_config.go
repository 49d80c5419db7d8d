package authn

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Defaults of the LDAP connection settings.
const (
	DefaultLDAPConnectTimeout = 3 * time.Second
	DefaultLDAPRequestTimeout = 5 * time.Second
	DefaultLDAPPoolSize       = 8
	maxLDAPPoolSize           = 1024
)

// The tls modes of ldap_auth.
const (
	LDAPTLSNone     = "none"
	LDAPTLSAlways   = "always"
	LDAPTLSStartTLS = "starttls"
)

// LDAPConfig is the `ldap_auth:` section: docker_auth's LDAP authenticator
// (search for the account with a service account, then bind as the entry
// found), plus failover across several servers, a group search, timeouts and
// a connection pool.
//
//	ldap_auth:
//	  addr: ldap.example.com:636        # or addrs: [ldap1:389, ldap2:389], tried in order
//	  tls: always                       # none | always (LDAPS) | starttls; default none, always on port 636
//	  ca_certificate: /etc/ssl/ldap-ca.pem   # CA of the server certificate; default: system roots
//	  insecure_tls_skip_verify: false
//	  bind_dn: cn=gatehouse,ou=services,dc=example,dc=com
//	  bind_password_file: /run/secrets/ldap-bind   # read at load and reload
//	  base: ou=people,dc=example,dc=com
//	  filter: (&(objectClass=person)(uid=${account}))
//	  labels:
//	    groups: {attribute: memberOf, parse_cn: true, lower_case: true}
//	  group_search:                     # for directories without memberOf
//	    base: ou=groups,dc=example,dc=com
//	    filter: (&(objectClass=posixGroup)(memberUid=${account}))   # ${account}, ${dn}
//	    attribute: cn
//	    label: groups
//	  connect_timeout: 3s               # TCP, TLS and service bind
//	  request_timeout: 5s               # each search or bind
//	  pool_size: 8                      # service connections kept open
//	  account_attribute: uid            # default: the attribute the filter compares with ${account}
//	  account_spelling: directory       # directory (default): the account is the entry's own spelling; exact: refuse other spellings
//	  credential_attribute: pwdChangedTime   # changes with the password: refresh tokens end when it does
//
// With initial_bind_as_user: true there is no service account: bind_dn is a
// template such as "uid=${account},ou=people,dc=example,dc=com" or
// "${account}@example.com", and Gatehouse binds as the user to search.
type LDAPConfig struct {
	Addr                  string               `yaml:"addr"`
	Addrs                 []string             `yaml:"addrs"`
	TLS                   string               `yaml:"tls"`
	InsecureTLSSkipVerify bool                 `yaml:"insecure_tls_skip_verify"`
	CACertificate         string               `yaml:"ca_certificate"`
	BindDN                string               `yaml:"bind_dn"`
	BindPasswordFile      string               `yaml:"bind_password_file"`
	InitialBindAsUser     bool                 `yaml:"initial_bind_as_user"`
	Base                  string               `yaml:"base"`
	Filter                string               `yaml:"filter"`
	Labels                map[string]LDAPLabel `yaml:"labels"`
	GroupSearch           *LDAPGroupSearch     `yaml:"group_search"`
	ConnectTimeout        time.Duration        `yaml:"connect_timeout"`
	RequestTimeout        time.Duration        `yaml:"request_timeout"`
	PoolSize              int                  `yaml:"pool_size"`
	// AccountAttribute names the attribute whose value is the account's
	// name, as the directory spells it. Default: the attribute the filter
	// compares with ${account}, as uid in (&(objectClass=person)(uid=${account})).
	AccountAttribute string `yaml:"account_attribute"`
	// AccountSpelling is LDAPSpellingDirectory (default) or
	// LDAPSpellingExact.
	AccountSpelling string `yaml:"account_spelling"`
	// CredentialAttribute names an attribute whose value changes when the
	// password does (pwdChangedTime with the ppolicy overlay, or
	// modifyTimestamp); refresh tokens carry a fingerprint of it. Without
	// it an LDAP account's refresh tokens live until they expire.
	CredentialAttribute string `yaml:"credential_attribute"`
}

// The account_spelling modes of ldap_auth.
const (
	// LDAPSpellingDirectory takes the directory's spelling of a name the
	// directory matched ("BOB" logs in as "bob").
	LDAPSpellingDirectory = "directory"
	// LDAPSpellingExact refuses a login whose name is not spelled exactly
	// as in the directory.
	LDAPSpellingExact = "exact"
)

// filterAccountAttr finds the attribute of a filter's (attr=${account})
// comparison.
var filterAccountAttr = regexp.MustCompile(`\(\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*\$\{account\}\s*\)`)

// ldapAttrName is an attribute description: a name or an OID.
var ldapAttrName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*)$`)

// accountAttribute returns account_attribute, or the attribute the filter
// compares with ${account}; "" when there is none (names stay as typed).
func (c *LDAPConfig) accountAttribute() string {
	if c.AccountAttribute != "" {
		return c.AccountAttribute
	}
	if m := filterAccountAttr.FindStringSubmatch(c.Filter); m != nil {
		return m[1]
	}
	return ""
}

// LDAPLabel maps an attribute of the account's entry to a label.
type LDAPLabel struct {
	// Attribute names the attribute whose values become the label's values.
	Attribute string `yaml:"attribute"`
	// ParseCN keeps only the CN of values that are DNs (memberOf).
	ParseCN bool `yaml:"parse_cn"`
	// LowerCase lower-cases the values.
	LowerCase bool `yaml:"lower_case"`
}

// LDAPGroupSearch is a second search whose entries are the account's groups:
// the values of Attribute on every entry found become the label Label.
type LDAPGroupSearch struct {
	Base string `yaml:"base"`
	// Filter may use ${account} (the account name) and ${dn} (the DN of
	// the account's entry); both are escaped.
	Filter    string `yaml:"filter"`
	Attribute string `yaml:"attribute"`
	Label     string `yaml:"label"`
}

// ldapServer is one directory address and how to speak to it.
type ldapServer struct {
	addr string // host:port
	host string // for TLS server name verification
	tls  string // none, always or starttls
}

// Validate checks the section without reading files or connecting; every
// problem is placed at its key.
func (c *LDAPConfig) Validate() error {
	_, err := c.servers()
	errs := []error{err}
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }

	switch c.TLS {
	case "", LDAPTLSNone, LDAPTLSAlways, LDAPTLSStartTLS:
	default:
		add(fmt.Errorf("must be none, always or starttls, got %q", c.TLS), "tls")
	}
	if c.TLS == LDAPTLSNone || (c.TLS == "" && !c.anyTLSPort()) {
		if c.CACertificate != "" {
			add(errors.New("applies only with tls: always or starttls; without them passwords travel in clear"), "ca_certificate")
		}
		if c.InsecureTLSSkipVerify {
			add(errors.New("applies only with tls: always or starttls"), "insecure_tls_skip_verify")
		}
	}
	if c.InsecureTLSSkipVerify && c.CACertificate != "" {
		add(errors.New("ca_certificate is not used with insecure_tls_skip_verify: remove one of them"), "insecure_tls_skip_verify")
	}

	if c.InitialBindAsUser {
		if !strings.Contains(c.BindDN, "${account}") {
			add(errors.New(`with initial_bind_as_user, must contain ${account}, e.g. "uid=${account},ou=people,dc=example,dc=com"`), "bind_dn")
		}
		if c.BindPasswordFile != "" {
			add(errors.New("not used with initial_bind_as_user: Gatehouse binds with the user's password"), "bind_password_file")
		}
	} else {
		if strings.Contains(c.BindDN, "${account}") {
			add(errors.New("contains ${account}: set initial_bind_as_user: true to bind as the user"), "bind_dn")
		}
		if c.BindDN != "" && c.BindPasswordFile == "" {
			add(errors.New("is required with bind_dn"), "bind_password_file")
		}
		if c.BindDN == "" && c.BindPasswordFile != "" {
			add(errors.New("needs bind_dn"), "bind_password_file")
		}
	}
	if c.Base == "" {
		add(errors.New("is required: the subtree that holds the accounts"), "base")
	}
	add(checkFilter(c.Filter, "${account}"), "filter")

	for _, name := range slices.Sorted(maps.Keys(c.Labels)) {
		switch {
		case name == "":
			add(errors.New("a label name must not be empty"), "labels")
		case c.Labels[name].Attribute == "":
			add(errors.New("is required"), "labels", name, "attribute")
		}
	}
	if g := c.GroupSearch; g != nil {
		if g.Base == "" {
			add(errors.New("is required"), "group_search", "base")
		}
		add(checkFilter(g.Filter, "${account}", "${dn}"), "group_search", "filter")
		if g.Attribute == "" {
			add(errors.New("is required, e.g. cn"), "group_search", "attribute")
		}
		if g.Label == "" {
			add(errors.New("is required: the label that receives the groups"), "group_search", "label")
		}
	}

	if c.ConnectTimeout < 0 {
		add(fmt.Errorf("must be positive, got %s", c.ConnectTimeout), "connect_timeout")
	}
	if c.RequestTimeout < 0 {
		add(fmt.Errorf("must be positive, got %s", c.RequestTimeout), "request_timeout")
	}
	switch c.AccountSpelling {
	case "", LDAPSpellingDirectory, LDAPSpellingExact:
	default:
		add(fmt.Errorf("must be directory or exact, got %q", c.AccountSpelling), "account_spelling")
	}
	if c.AccountSpelling == LDAPSpellingExact && c.accountAttribute() == "" {
		add(errors.New("needs account_attribute: the filter compares no attribute with ${account}"), "account_spelling")
	}
	for key, attr := range map[string]string{"account_attribute": c.AccountAttribute, "credential_attribute": c.CredentialAttribute} {
		if attr != "" && !ldapAttrName.MatchString(attr) {
			add(fmt.Errorf("%q is not an attribute name", attr), key)
		}
	}
	if c.PoolSize < 0 || c.PoolSize > maxLDAPPoolSize {
		add(fmt.Errorf("must be between 1 and %d, got %d", maxLDAPPoolSize, c.PoolSize), "pool_size")
	}
	return errors.Join(errs...)
}

// checkFilter checks that filter is an LDAP filter once its placeholders
// are filled, and that it uses at least one of them.
func checkFilter(filter string, placeholders ...string) error {
	if filter == "" {
		return fmt.Errorf("is required, e.g. (uid=%s)", placeholders[0])
	}
	used := false
	probe := filter
	for _, p := range placeholders {
		used = used || strings.Contains(filter, p)
		probe = strings.ReplaceAll(probe, p, "x")
	}
	if !used {
		return fmt.Errorf("must use %s: without it every account would find the same entries", strings.Join(placeholders, " or "))
	}
	if _, err := ldap.CompileFilter(probe); err != nil {
		return fmt.Errorf("not a valid LDAP filter: %w", err)
	}
	return nil
}

// servers returns the addresses in the order they are tried, each with its
// TLS mode: tls, or when it is omitted, always on port 636 and none
// elsewhere (docker_auth's rule).
func (c *LDAPConfig) servers() ([]ldapServer, error) {
	var (
		addrs []string
		key   string
	)
	switch {
	case c.Addr != "" && len(c.Addrs) > 0:
		return nil, cfgerr.At(errors.New("set addr or addrs, not both"), "addrs")
	case c.Addr != "":
		addrs, key = []string{c.Addr}, "addr"
	case len(c.Addrs) > 0:
		addrs, key = c.Addrs, "addrs"
	default:
		return nil, cfgerr.At(errors.New(`is required: host:port of the directory, e.g. "ldap.example.com:389"`), "addr")
	}
	var (
		out  []ldapServer
		errs []error
	)
	for i, a := range addrs {
		path := []string{key}
		if key == "addrs" {
			path = append(path, strconv.Itoa(i))
		}
		host, port, err := net.SplitHostPort(a)
		if err == nil && host == "" {
			err = errors.New("missing host")
		}
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("invalid port %q", port)
			}
		}
		if err != nil {
			errs = append(errs, cfgerr.At(fmt.Errorf("want host:port, got %q: %w", a, err), path...))
			continue
		}
		mode := c.TLS
		if mode == "" {
			mode = LDAPTLSNone
			if port == "636" {
				mode = LDAPTLSAlways
			}
		}
		out = append(out, ldapServer{addr: a, host: host, tls: mode})
	}
	return out, errors.Join(errs...)
}

// anyTLSPort reports whether an address uses port 636, where tls defaults
// to always.
func (c *LDAPConfig) anyTLSPort() bool {
	for _, a := range append([]string{c.Addr}, c.Addrs...) {
		if _, port, err := net.SplitHostPort(a); err == nil && port == "636" {
			return true
		}
	}
	return false
}

// Files lists the files the section names (bind_password_file,
// ca_certificate): they are read at load, so a change to them needs a
// reload.
func (c *LDAPConfig) Files() []string {
	var files []string
	for _, f := range []string{c.BindPasswordFile, c.CACertificate} {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}
