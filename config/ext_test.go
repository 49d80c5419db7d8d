package config

import (
	"strings"
	"testing"
	"time"
)

// head is base's server and token sections alone.
const head = `server:
  addr: ":5001"
token:
  issuer: "test issuer"
  expiration: 900
  certificate: /ssl/token.pem
  key: /ssl/token.key
`

// TestExtSections: ext_auth and ext_authz are decoded strictly and checked
// without looking for the program (the server resolves it when it builds).
func TestExtSections(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []string // "line|key|fragment"; nil: valid
	}{
		{name: "ext_auth alone is an authenticator, ext_authz alone an acl",
			yml: head + "ext_auth:\n  command: /usr/local/bin/auth\n  args: [a, b]\n  timeout: 2s\n  max_concurrent: 3\next_authz:\n  command: authz\n"},
		{name: "docker_auth's keys only",
			yml: head + "ext_auth: {command: /usr/local/bin/auth, args: []}\nacl: []\n"},
		{name: "command missing",
			yml:  head + "ext_auth:\n  args: [x]\nacl: []\n",
			want: []string{"8|ext_auth.command|required"}},
		{name: "empty section",
			yml:  head + "ext_authz:\nusers: {\"\": {}}\nacl: []\n",
			want: []string{"8|ext_authz|section is empty"}},
		{name: "unknown key",
			yml:  head + "ext_authz:\n  command: x\n  comand: y\nusers: {\"\": {}}\n",
			want: []string{"10|ext_authz.comand|unknown key"}},
		{name: "timeout too short",
			yml:  head + "ext_auth:\n  command: x\n  timeout: 1ns\nacl: []\n",
			want: []string{"10|ext_auth.timeout|at least 10ms"}},
		{name: "timeout without unit and negative max_concurrent",
			yml:  head + "ext_auth:\n  command: x\n  timeout: 5\n  max_concurrent: -1\nacl: []\n",
			want: []string{"10|ext_auth.timeout|want a duration such as 5s", "11|ext_auth.max_concurrent|positive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, tc.yml)
			if tc.want == nil {
				if perr != nil {
					t.Fatal(perr)
				}
				if c.ExtAuth != nil && c.ExtAuth.Timeout != 0 && c.ExtAuth.Timeout != 2*time.Second {
					t.Errorf("timeout decoded as %s", c.ExtAuth.Timeout)
				}
				return
			}
			if perr == nil || len(perr.Problems) != len(tc.want) {
				t.Fatalf("got %v, want %d problems %v", perr, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				parts := strings.SplitN(w, "|", 3)
				p := perr.Problems[i]
				if got := p.String(); !strings.HasPrefix(got, "auth_config.yml:"+parts[0]+": "+parts[1]+": ") || !strings.Contains(p.Msg, parts[2]) {
					t.Errorf("problem %q, want line %s key %s saying %q", got, parts[0], parts[1], parts[2])
				}
			}
		})
	}
}

// TestExtFiles: a command given as a path is watched for reloads; a bare
// name looked up in PATH is not a file to watch.
func TestExtFiles(t *testing.T) {
	c, perr := parse(t, head+"ext_auth: {command: /opt/auth}\next_authz: {command: authz}\n")
	if perr != nil {
		t.Fatal(perr)
	}
	files := strings.Join(c.Files(), " ")
	if !strings.Contains(files, "/opt/auth") || strings.Contains(files, "authz") {
		t.Fatalf("Files() = %q, want /opt/auth and not authz", files)
	}
}
