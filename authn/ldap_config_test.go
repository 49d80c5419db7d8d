package authn

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// validLDAPConfig is a complete configuration that passes Validate.
func validLDAPConfig() LDAPConfig {
	return LDAPConfig{
		Addr:             "ldap.example.com:389",
		TLS:              LDAPTLSStartTLS,
		BindDN:           "cn=gatehouse,dc=example,dc=com",
		BindPasswordFile: "/run/secrets/ldap",
		Base:             "ou=people,dc=example,dc=com",
		Filter:           "(uid=${account})",
		Labels:           map[string]LDAPLabel{"groups": {Attribute: "memberOf", ParseCN: true}},
		GroupSearch:      &LDAPGroupSearch{Base: "ou=groups,dc=example,dc=com", Filter: "(member=${dn})", Attribute: "cn", Label: "groups"},
	}
}

func TestLDAPConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*LDAPConfig)
		keys   []string // problems expected, by key
		msg    string   // a substring of the message, when set
	}{
		{"valid", func(*LDAPConfig) {}, nil, ""},
		{"addrs instead of addr", func(c *LDAPConfig) { c.Addr, c.Addrs = "", []string{"a:389", "[::1]:389"} }, nil, ""},
		{"anonymous search", func(c *LDAPConfig) { c.BindDN, c.BindPasswordFile = "", "" }, nil, ""},
		{"initial bind as user", func(c *LDAPConfig) {
			c.InitialBindAsUser, c.BindDN, c.BindPasswordFile = true, "${account}@example.com", ""
		}, nil, ""},
		{"tls omitted on port 636 means always", func(c *LDAPConfig) {
			c.Addr, c.TLS, c.CACertificate = "ldap:636", "", "/ca.pem"
		}, nil, ""},
		{"no address", func(c *LDAPConfig) { c.Addr = "" }, []string{"addr"}, "is required"},
		{"addr and addrs", func(c *LDAPConfig) { c.Addrs = []string{"b:389"} }, []string{"addrs"}, "not both"},
		{"address without port", func(c *LDAPConfig) { c.Addr = "ldap.example.com" }, []string{"addr"}, "host:port"},
		{"bad port in addrs", func(c *LDAPConfig) { c.Addr, c.Addrs = "", []string{"a:389", "b:ldap"} }, []string{"addrs[1]"}, "invalid port"},
		{"unknown tls mode", func(c *LDAPConfig) { c.TLS = "StartTLS" }, []string{"tls"}, "none, always or starttls"},
		{"ca_certificate without tls", func(c *LDAPConfig) { c.TLS, c.CACertificate = "none", "/ca.pem" }, []string{"ca_certificate"}, "in clear"},
		{"skip verify without tls", func(c *LDAPConfig) { c.TLS, c.InsecureTLSSkipVerify = "", true }, []string{"insecure_tls_skip_verify"}, ""},
		{"skip verify and a CA", func(c *LDAPConfig) { c.InsecureTLSSkipVerify, c.CACertificate = true, "/ca.pem" }, []string{"insecure_tls_skip_verify"}, "remove one"},
		{"bind_dn without password file", func(c *LDAPConfig) { c.BindPasswordFile = "" }, []string{"bind_password_file"}, "required"},
		{"password file without bind_dn", func(c *LDAPConfig) { c.BindDN = "" }, []string{"bind_password_file"}, "needs bind_dn"},
		{"template bind_dn without initial bind", func(c *LDAPConfig) { c.BindDN = "uid=${account},dc=x" }, []string{"bind_dn"}, "initial_bind_as_user"},
		{"initial bind without ${account}", func(c *LDAPConfig) {
			c.InitialBindAsUser, c.BindPasswordFile = true, ""
		}, []string{"bind_dn"}, "${account}"},
		{"initial bind with a password file", func(c *LDAPConfig) {
			c.InitialBindAsUser, c.BindDN = true, "uid=${account},dc=x"
		}, []string{"bind_password_file"}, "not used"},
		{"no base", func(c *LDAPConfig) { c.Base = "" }, []string{"base"}, ""},
		{"no filter", func(c *LDAPConfig) { c.Filter = "" }, []string{"filter"}, "required"},
		{"filter without ${account}", func(c *LDAPConfig) { c.Filter = "(uid=alice)" }, []string{"filter"}, "must use ${account}"},
		{"malformed filter", func(c *LDAPConfig) { c.Filter = "(uid=${account}" }, []string{"filter"}, "not a valid LDAP filter"},
		{"label without attribute", func(c *LDAPConfig) { c.Labels["team"] = LDAPLabel{} }, []string{"labels.team.attribute"}, ""},
		{"empty label name", func(c *LDAPConfig) { c.Labels[""] = LDAPLabel{Attribute: "ou"} }, []string{"labels"}, ""},
		{"group search incomplete", func(c *LDAPConfig) { c.GroupSearch = &LDAPGroupSearch{Filter: "(cn=x)"} }, []string{
			"group_search.attribute", "group_search.base", "group_search.filter", "group_search.label",
		}, ""},
		{"negative timeouts and pool size", func(c *LDAPConfig) {
			c.ConnectTimeout, c.RequestTimeout, c.PoolSize = -time.Second, -time.Second, -1
		}, []string{"connect_timeout", "pool_size", "request_timeout"}, ""},
		{"every problem at once", func(c *LDAPConfig) { *c = LDAPConfig{TLS: "ssl"} }, []string{"addr", "base", "filter", "tls"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := validLDAPConfig()
			cfg.Labels = map[string]LDAPLabel{"groups": cfg.Labels["groups"]}
			c.change(&cfg)
			err := cfg.Validate()
			if got := cfgerr.Keys(err); !slices.Equal(got, c.keys) {
				t.Fatalf("problems at %v, want %v: %v", got, c.keys, err)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not say %q", err, c.msg)
			}
		})
	}
}

func TestNewLDAPFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	password := write("password", "secret\n")
	blank := write("blank", " \n")
	notPEM := write("not-pem", "hello")
	for _, c := range []struct {
		name     string
		pwFile   string
		caFile   string
		keys     []string
		password string
	}{
		{"files read", password, "", nil, "secret"},
		{"password file missing", filepath.Join(dir, "missing"), "", []string{"bind_password_file"}, ""},
		{"password file blank", blank, "", []string{"bind_password_file"}, ""},
		{"CA file missing", password, filepath.Join(dir, "missing.pem"), []string{"ca_certificate"}, ""},
		{"CA file without a certificate", password, notPEM, []string{"ca_certificate"}, ""},
		{"both wrong", blank, notPEM, []string{"bind_password_file", "ca_certificate"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := validLDAPConfig()
			cfg.BindPasswordFile, cfg.CACertificate = c.pwFile, c.caFile
			a, err := NewLDAP(cfg)
			if got := cfgerr.Keys(err); !slices.Equal(got, c.keys) {
				t.Fatalf("problems at %v, want %v: %v", got, c.keys, err)
			}
			if err != nil {
				if !strings.HasPrefix(errors.Unwrap(cfgerr.Flatten(err)[0]).Error(), "ldap: ") {
					t.Errorf("error %q is not prefixed with \"ldap: \"", err)
				}
				return
			}
			defer a.Close()
			if a.pool.bindPW != c.password {
				t.Errorf("bind password = %q, want %q", a.pool.bindPW, c.password)
			}
		})
	}
}

func TestLDAPDefaults(t *testing.T) {
	a, err := NewLDAP(LDAPConfig{Addr: "ldap:636", Base: "dc=x", Filter: "(uid=${account})"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	p := a.pool
	if p.servers[0].tls != LDAPTLSAlways || p.servers[0].host != "ldap" {
		t.Errorf("server = %+v, want tls always (port 636) and host ldap", p.servers[0])
	}
	if p.connectTimeout != DefaultLDAPConnectTimeout || p.requestTimeout != DefaultLDAPRequestTimeout || cap(p.slots) != DefaultLDAPPoolSize {
		t.Errorf("connect %s, request %s, pool %d: want the defaults", p.connectTimeout, p.requestTimeout, cap(p.slots))
	}
	if !slices.Equal(a.attrs, []string{"uid"}) || a.accountAttr != "uid" {
		t.Errorf("attributes requested = %v, account attribute %q; want only uid, the filter's account attribute, without labels", a.attrs, a.accountAttr)
	}
}

func TestCNOf(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"cn=pushers,ou=groups,dc=example,dc=org", "pushers"},
		{"CN=Domain Admins,CN=Users,DC=corp,DC=example", "Domain Admins"},
		{"ou=x,cn=inner,dc=y", "inner"},
		{`cn=a\,b,dc=x`, "a,b"},
		{"ou=no-cn,dc=x", "ou=no-cn,dc=x"},
		{"not a dn", "not a dn"},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := cnOf(c.in); got != c.want {
				t.Errorf("cnOf(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
