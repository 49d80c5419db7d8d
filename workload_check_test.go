package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckWorkloadLabels: `gatehouse check --label` takes the labels a
// workload identity's claims would give, so a rule on ${labels:repository}
// and the ref label can be tried without a token (and without reaching the
// issuer, whose keys are fetched only when a token comes).
func TestCheckWorkloadLabels(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "auth_config.yml")
	yml := fmt.Sprintf(`server: {addr: ":5001"}
token: {issuer: gh, expiration: 900, generate_if_missing: true, certificate: %[1]s/t.pem, key: %[1]s/t.key}
workload_identity:
  - issuer: https://token.actions.githubusercontent.com
    audience: https://registry.example.com
    account: "ci:${claims:repository}"
    labels: {repository: repository, ref: ref}
acl:
  - match: {account: "/^ci:.+/", labels: {ref: refs/heads/main}, name: "${labels:repository}/*"}
    actions: [push, pull]
`, dir)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref, want string
	}{
		{"main", "refs/heads/main", "pull,push (rule 0)"},
		{"another branch", "refs/heads/dev", "nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := []string{"check", cfg, "--account", "ci:octo-org/octo-repo", "--label", "repository=octo-org/octo-repo",
				"--label", "ref=" + tc.ref, "repository:octo-org/octo-repo/app:push,pull"}
			if code := run(args, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("stdout %q, want %q", out.String(), tc.want)
			}
		})
	}
}
