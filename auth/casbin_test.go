package auth

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/config"
)

// TestCasbinThroughTheServer serves tokens from docker_auth's casbin
// example (model and policy copied in testdata/docker_auth) with no acl
// section but one rule, which the static acl decides first.
func TestCasbinThroughTheServer(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs("../testdata/docker_auth")
	if err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: test-issuer, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
users:
  admin: {password: %[2]q}
  alice: {password: %[2]q, labels: {a: [b]}}
  bob: {password: %[2]q, labels: {a: [b, c], d: [e]}}
acl:
  - match: {name: book9}
    actions: [read]
    comment: the static acl decides first
casbin_authz:
  model_path: %[3]s/casbin_authz_model.conf
  policy_path: %[3]s/casbin_authz_policy.csv
`, dir, hash, example)
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tests := []struct {
		name, user, ip, service, scope string
		want                           string // granted actions
		wantACL                        string // the deciding authorizer, "" for the static acl
		wantRule                       int
	}{
		{"alice gets read and write", "alice", "1.2.3.4", "bookstore1", "book:book1:write,read,delete", "read,write", "casbin_authz", 0},
		{"alice from another address", "alice", "1.2.3.3", "bookstore1", "book:book1:write,read,delete", "", "casbin_authz", -1},
		{"bob through role1 in the subnet", "bob", "192.168.1.123", "bookstore1", "book:book2:write,read,delete", "read", "casbin_authz", 0},
		{"bob for another service", "bob", "192.168.1.123", "restaurant", "book:book2:write,read,delete", "", "casbin_authz", -1},
		{"admin anything", "admin", "10.9.9.9", "registry", "repository:any/thing:pull,push", "pull,push", "casbin_authz", 0},
		{"static acl first", "alice", "1.2.3.3", "bookstore1", "book:book9:read", "read", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/auth?service="+tc.service+"&scope="+tc.scope, nil)
			req.RemoteAddr = tc.ip + ":40000"
			req.SetBasicAuth(tc.user, "pw")
			r := do(s, req)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			c := claimsOf(t, r.body.Token)
			if len(c.Access) != 1 || strings.Join(c.Access[0].Actions, ",") != tc.want {
				t.Fatalf("access %+v, want %q", c.Access, tc.want)
			}
			d := s.Explain(tc.user, cfg.Users[tc.user].Labels, netip.MustParseAddr(tc.ip), tc.service, mustScopes(t, tc.scope))
			if len(d) != 1 || d[0].ACL != tc.wantACL || d[0].Rule != tc.wantRule || d[0].Granted != tc.want {
				t.Fatalf("decision %+v, want acl %q rule %d granted %q", d, tc.wantACL, tc.wantRule, tc.want)
			}
		})
	}
}

// TestCasbinEvaluationFailure: a policy casbin cannot evaluate (an ip that
// is neither an address nor a CIDR) grants nothing: the request is a 503
// whose body holds no internal detail.
func TestCasbinEvaluationFailure(t *testing.T) {
	dir := t.TempDir()
	model, err := filepath.Abs("../testdata/docker_auth/casbin_authz_model.conf")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.csv")
	if err := os.WriteFile(policy, []byte("p, alice, repository, app, registry, not-an-ip, pull, \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: test-issuer, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
users:
  alice: {password: %[2]q}
casbin_authz: {model_path: %[3]s, policy_path: %[4]s}
`, dir, hash, model, policy)
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := get(s, "service=registry&scope=repository:app:pull", "alice", "pw")
	if r.status != 503 || strings.Contains(r.raw, "panic") || strings.Contains(r.raw, "not-an-ip") {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	d := s.Explain("alice", nil, netip.MustParseAddr("10.0.0.1"), "registry", mustScopes(t, "repository:app:pull"))
	if len(d) != 1 || d[0].Granted != "" || !strings.Contains(d[0].Comment, "neither an IP address nor a CIDR") || strings.Contains(d[0].Comment, "goroutine") {
		t.Fatalf("decision %+v, want nothing granted and casbin's first line as the reason", d)
	}
}

func mustScopes(t *testing.T, s ...string) []Scope {
	t.Helper()
	scopes, err := ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return scopes
}
