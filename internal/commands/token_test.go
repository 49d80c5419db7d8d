package commands

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
)

// tokenConfig writes a configuration with access tokens on and its key
// pair (generated once, as serving would), and returns its path.
func tokenConfig(t *testing.T) (path, revoked string) {
	t.Helper()
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("cipw"), bcrypt.MinCost)
	revoked = filepath.Join(dir, "revoked")
	if err := os.WriteFile(revoked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: test, expiration: 600, certificate: %[1]s/t.pem, key: %[1]s/t.key, generate_if_missing: true}
users:
  ci: {password: %[2]q, labels: {kind: [ci]}}
acl:
  - match: {account: ci, name: "web/*"}
    actions: [pull, push]
access_tokens:
  max_ttl: 30d
  max_ttl_by_label: {"kind=ci": 90d}
  revoked_file: %[3]s
`, dir, h, revoked)
	path = filepath.Join(dir, "auth_config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := auth.New(cfg) // writes the key pair
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return path, revoked
}

func runToken(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Token(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenCommands(t *testing.T) {
	path, revokedFile := tokenConfig(t)
	code, raw, stderr := runToken("create", path, "--owner", "ci", "--name", "deploy-web", "--scope", "repository:web/*:pull", "--ttl", "60d")
	if code != 0 || strings.Count(raw, ".") != 2 {
		t.Fatalf("create: %d %q %q", code, raw, stderr)
	}
	raw = strings.TrimSpace(raw)
	code, out, stderr := runToken("inspect", path, raw)
	if code != 0 || !strings.Contains(out, "owner: ci (static)") || !strings.Contains(out, "repository:web/*:pull -> [pull]") || strings.Contains(out, raw) {
		t.Fatalf("inspect: %d\n%s%s", code, out, stderr)
	}
	code, line, _ := runToken("revoke", raw)
	if code != 0 || !strings.Contains(line, "# deploy-web of ci") {
		t.Fatalf("revoke: %d %q", code, line)
	}
	if err := os.WriteFile(revokedFile, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runToken("inspect", path, raw); code != 1 || !strings.Contains(out, "is revoked") {
		t.Fatalf("inspect after revoking: %d\n%s", code, out)
	}

	refusals := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"longer than the owner's maximum", []string{"create", path, "--owner", "ci", "--name", "x", "--scope", "repository:web/*:pull", "--ttl", "91d"}, 1, "longer than"},
		{"no expiry", []string{"create", path, "--owner", "ci", "--name", "x", "--scope", "repository:web/*:pull", "--no-expiry"}, 1, "allow_no_expiry"},
		{"unknown owner", []string{"create", path, "--owner", "ghost", "--name", "x", "--scope", "repository:web/*:pull"}, 1, "knows \"ghost\""},
		{"bad pattern", []string{"create", path, "--owner", "ci", "--name", "x", "--scope", "repository:web"}, 1, "TYPE:NAME:ACTIONS"},
		{"no scope", []string{"create", path, "--owner", "ci", "--name", "x"}, 2, "required"},
		{"bad ttl", []string{"create", path, "--owner", "ci", "--name", "x", "--scope", "a:b:c", "--ttl", "soon"}, 2, "--ttl"},
		{"a password is not a token", []string{"inspect", path, "cipw"}, 1, ""},
		{"revoke nonsense", []string{"revoke", "a b"}, 2, "neither"},
		{"unknown subcommand", []string{"list"}, 2, "unknown subcommand"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runToken(tc.args...)
			if code != tc.code || !strings.Contains(out+stderr, tc.msg) {
				t.Fatalf("exit %d (want %d), output %q %q, want %q", code, tc.code, out, stderr, tc.msg)
			}
			if tc.args[0] == "create" && strings.Count(out, ".") == 2 {
				t.Fatalf("a token was printed: %q", out)
			}
		})
	}
}
