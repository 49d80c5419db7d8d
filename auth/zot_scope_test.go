package auth

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/config"
)

// TestEmptyRepositoryName: zot asks for its catalog with the scope
// "repository::pull". It is a scope like any other, as in docker_auth: the
// ACL decides, so a rule for every name grants it and a rule for a
// namespace does not.
func TestEmptyRepositoryName(t *testing.T) {
	dir := t.TempDir()
	s := serverFromYAML(t, dir, fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
users:
  admin: {password: %[2]q}
  alice: {password: %[2]q}
acl:
  - match: {account: admin}
    actions: ["*"]
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
`, dir, alicePW))
	for _, tc := range []struct{ user, want string }{
		{"admin", "repository::pull"},
		{"alice", "repository::"},
	} {
		r := get(s, "service=registry&scope=repository::pull", tc.user, "alicepw")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tc.user, r.status, r.raw)
		}
		if g := grants(claimsOf(t, r.body.Token)); g != tc.want {
			t.Errorf("%s was granted %q on the empty name, want %q", tc.user, g, tc.want)
		}
	}
}

// serverFromYAML builds a Server from an auth_config.yml text whose
// relative paths are under dir; it is closed when the test ends.
func serverFromYAML(t testing.TB, dir, yml string) *Server {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
