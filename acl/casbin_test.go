package acl

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The model and policy are copies of docker_auth's examples (see
// testdata/docker_auth/README.md).
var casbinExample = CasbinConfig{
	ModelPath:  "../testdata/docker_auth/casbin_authz_model.conf",
	PolicyPath: "../testdata/docker_auth/casbin_authz_policy.csv",
}

// TestCasbinDockerAuthDecisions replays docker_auth's TestPermissions
// (auth_server/authz/casbin_authz_test.go) on its example model and policy:
// every case must give the actions docker_auth's test expects.
func TestCasbinDockerAuthDecisions(t *testing.T) {
	c, err := NewCasbin(casbinExample)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"write", "read", "delete"}
	type labels = map[string][]string
	cases := []struct {
		name                            string
		account, typ, repo, service, ip string
		labels                          labels
		want                            []string
	}{
		// alice is a user.
		{"alice all fields match", "alice", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b"}}, []string{"read", "write"}},
		{"alice wrong ip", "alice", "book", "book1", "bookstore1", "1.2.3.3", labels{"a": {"b"}}, nil},
		{"alice wrong name and service", "alice", "book", "book2", "bookstore2", "1.2.3.4", labels{"a": {"b"}}, nil},
		{"alice wrong type", "alice", "pen", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b"}}, nil},
		{"alice wrong label value", "alice", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"c"}}, nil},
		{"alice more label values than needed", "alice", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b", "c"}}, []string{"read", "write"}},
		// bob is a member of role1, so bob has role1's permissions.
		{"bob through role1", "bob", "book", "book2", "bookstore1", "192.168.1.123", labels{"a": {"b", "c"}, "d": {"e"}}, []string{"read"}},
		{"bob missing a label value", "bob", "book", "book2", "bookstore1", "192.168.1.123", labels{"a": {"b"}, "d": {"e"}}, nil},
		{"bob outside the subnet", "bob", "book", "book2", "bookstore1", "192.168.0.123", labels{"a": {"b", "c"}, "d": {"e"}}, nil},
		{"bob without the extra label", "bob", "book", "book2", "bookstore1", "192.168.1.123", labels{"a": {"b", "c"}}, []string{"read"}},
		{"bob wrong service", "bob", "book", "book2", "restaurant", "192.168.1.123", labels{"a": {"b", "c"}, "d": {"e"}}, nil},
		// admin can do anything.
		{"admin", "admin", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b"}}, []string{"delete", "read", "write"}},
		{"admin wrong ip", "admin", "book", "book1", "bookstore1", "1.2.3.3", labels{"a": {"b"}}, []string{"delete", "read", "write"}},
		{"admin other book", "admin", "book", "book2", "bookstore2", "1.2.3.4", labels{"a": {"b"}}, []string{"delete", "read", "write"}},
		{"admin other type", "admin", "pen", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b"}}, []string{"delete", "read", "write"}},
		{"admin other label", "admin", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"c"}}, []string{"delete", "read", "write"}},
		{"admin two labels", "admin", "book", "book1", "bookstore1", "1.2.3.4", labels{"a": {"b", "c"}}, []string{"delete", "read", "write"}},
		// Beyond docker_auth's test.
		{"alice without labels", "alice", "book", "book1", "bookstore1", "1.2.3.4", nil, nil},
		{"alice from an IPv4-mapped address", "alice", "book", "book1", "bookstore1", "::ffff:1.2.3.4", labels{"a": {"b"}}, []string{"read", "write"}},
		{"alice without a client address", "alice", "book", "book1", "bookstore1", "", labels{"a": {"b"}}, nil},
		{"admin without a client address", "admin", "book", "book1", "bookstore1", "", nil, []string{"delete", "read", "write"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{Account: tc.account, Type: tc.typ, Name: tc.repo, Service: tc.service, Labels: tc.labels, Actions: all}
			if tc.ip != "" {
				r.IP = netip.MustParseAddr(tc.ip)
			}
			d, err := c.Decide(r)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Actions, tc.want) && (len(d.Actions) != 0 || len(tc.want) != 0) {
				t.Fatalf("granted %q, want %q", d.Actions, tc.want)
			}
			if d.Actions == nil {
				t.Fatal("Actions is nil, want an empty slice")
			}
			if d.Matched != (len(tc.want) > 0) || (d.Matched && d.Rule != 0) || (!d.Matched && d.Rule != -1) {
				t.Fatalf("Matched %v Rule %d, want matched only when something is granted", d.Matched, d.Rule)
			}
		})
	}
}

// TestCasbinLabelMatch holds docker_auth's TestLabels cases, and the
// policy labels that are not JSON, which match nobody here (docker_auth
// reads them as no constraint).
func TestCasbinLabelMatch(t *testing.T) {
	cases := []struct {
		name       string
		have, want string
		match      bool
	}{
		{"same value", `{"a":["b"]}`, `{"a":["b"]}`, true},
		{"other value", `{"a":["b"]}`, `{"a":["c"]}`, false},
		{"more values held", `{"a":["b","c"]}`, `{"a":["b"]}`, true},
		{"a value missing", `{"a":["b"]}`, `{"a":["b","c"]}`, false},
		{"extra label held", `{"a":["b","c"],"d":["e"]}`, `{"a":["b","c"]}`, true},
		{"a label missing", `{"a":["b"]}`, `{"a":["b","c"],"d":["f"]}`, false},
		{"no labels held", `null`, `{"a":["b"]}`, false},
		{"empty policy labels", `null`, ``, true},
		{"null policy labels", `{"a":["b"]}`, `null`, true},
		{"policy labels not JSON", `{"a":["b"]}`, `{a:[b]}`, false},
		{"policy labels of the wrong shape", `{"a":["b"]}`, `{"a":"b"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := labelMatchFunc(tc.have, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.match {
				t.Fatalf("labelMatch(%s, %s) = %v, want %v", tc.have, tc.want, got, tc.match)
			}
		})
	}
}

// TestNewCasbinRefuses: files that cannot work are refused at load, with
// the key to blame.
func TestNewCasbinRefuses(t *testing.T) {
	model, err := os.ReadFile(casbinExample.ModelPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("model.conf", string(model))
	cases := []struct {
		name       string
		cfg        CasbinConfig
		key, inMsg string
	}{
		{"no paths", CasbinConfig{}, "model_path", "is required"},
		{"missing model", CasbinConfig{ModelPath: filepath.Join(dir, "none.conf"), PolicyPath: casbinExample.PolicyPath}, "model_path", "no such file"},
		{"missing policy", CasbinConfig{ModelPath: good, PolicyPath: filepath.Join(dir, "none.csv")}, "policy_path", "no such file"},
		{"three request fields", CasbinConfig{ModelPath: write("short.conf", strings.Replace(string(model), "r = account, type, name, service, ip, action, labels", "r = account, type, name", 1)), PolicyPath: casbinExample.PolicyPath}, "model_path", "request_definition has 3 fields, want 7"},
		{"labels not JSON", CasbinConfig{ModelPath: good, PolicyPath: write("bad.csv", "p, alice, repository, app, registry, 10.0.0.0/8, pull, {team:[a]}\n")}, "policy_path", `p rule 1 (alice, repository, app, registry, 10.0.0.0/8, pull, {team:[a]}): labels "{team:[a]}" are not JSON`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCasbin(tc.cfg)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("error %q, want it at %s and to say %q", err, tc.key, tc.inMsg)
			}
		})
	}
}

// TestCasbinEmptyPolicyLabels: a policy row with no labels column value
// constrains nothing, as in docker_auth.
func TestCasbinEmptyPolicyLabels(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(p, []byte("p, alice, repository, app, registry, 10.0.0.0/8, pull, \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewCasbin(CasbinConfig{ModelPath: casbinExample.ModelPath, PolicyPath: p})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Decide(&Request{Account: "alice", Type: "repository", Name: "app", Service: "registry", IP: netip.MustParseAddr("10.1.2.3"), Actions: []string{"pull", "push"}})
	if err != nil || !slices.Equal(d.Actions, []string{"pull"}) {
		t.Fatalf("got %+v, %v; want pull", d, err)
	}
}

// TestCasbinConcurrentDecide: one enforcer answers concurrent requests (run
// with -race).
func TestCasbinConcurrentDecide(t *testing.T) {
	c, err := NewCasbin(casbinExample)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string)
	for range 8 {
		go func() {
			var got []string
			for range 50 {
				d, err := c.Decide(&Request{Account: "bob", Type: "book", Name: "book2", Service: "bookstore1",
					IP: netip.MustParseAddr("192.168.1.7"), Labels: map[string][]string{"a": {"b", "c"}}, Actions: []string{"read", "write"}})
				if err != nil {
					got = []string{err.Error()}
					break
				}
				got = d.Actions
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; !slices.Equal(got, []string{"read"}) {
			t.Errorf("granted %q, want read", got)
		}
	}
}
