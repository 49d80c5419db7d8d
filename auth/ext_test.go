package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/config"
)

// execScript writes an executable shell script and returns its path.
func execScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ghGet is get under testServer's path prefix.
func ghGet(s *Server, query, user, pass string) result {
	req := httptest.NewRequest(http.MethodGet, "/gh/auth?"+query, nil)
	req.SetBasicAuth(user, pass)
	return do(s, req)
}

// runs counts the lines a script appended to its log.
func runs(t *testing.T, log string) int {
	t.Helper()
	data, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// TestExtAuthThroughTheChain: ext_auth sits after the static users (a
// static account never reaches the program), its answers go through the
// credential cache (a repeat login does not run the program again), and
// its accounts get no refresh token.
func TestExtAuthThroughTheChain(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	p := execScript(t, dir, "auth.sh", `read u p
echo "$u" >> `+log+`
[ "$u" = dora ] && [ "$p" = dora-pw ] && { echo '{"labels": {"team": ["blue"]}}'; exit 0; }
[ "$u" = dora ] && exit 1
exit 2
`)
	s, _ := testServer(t, fmt.Sprintf("ext_auth:\n  command: %s\n", p))

	for i := range 3 {
		r := ghGet(s, "service=registry&scope=repository:blue/app:pull,push&offline_token=true", "dora", "dora-pw")
		if r.status != 200 {
			t.Fatalf("login %d: %d %s", i, r.status, r.raw)
		}
		if r.body.RefreshToken != "" {
			t.Fatalf("login %d: an ext_auth account got a refresh token", i)
		}
		// team blue (from the program's labels) may pull blue/*.
		if got := claimsOf(t, r.body.Token).Access; len(got) != 1 || !reflect.DeepEqual(got[0].Actions, []string{"pull"}) {
			t.Fatalf("login %d: access %+v, want pull on blue/app", i, got)
		}
	}
	if n := runs(t, log); n != 1 {
		t.Fatalf("three logins ran the program %d times, want 1 (the credential cache answers repeats)", n)
	}
	if r := ghGet(s, "service=registry", "dora", "not-dora-pw"); r.status != 401 {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	// A static user is answered before ext_auth.
	if r := ghGet(s, "service=registry", "alice", "alicepw"); r.status != 200 {
		t.Fatalf("static alice: %d %s", r.status, r.raw)
	}
	// The program does not know eve (exit 2): nobody else does, so 401.
	if r := ghGet(s, "service=registry", "eve", "x"); r.status != 401 {
		t.Fatalf("unknown eve: %d %s", r.status, r.raw)
	}
	if data, _ := os.ReadFile(log); string(data) != "dora\ndora\neve\n" {
		t.Fatalf("the program was asked about\n%s\nwant dora (login), dora (wrong password), eve", data)
	}
}

// TestExtAuthUnavailableIs503: a program that fails or hangs makes a 503,
// never a 401 or 500.
func TestExtAuthUnavailableIs503(t *testing.T) {
	for _, tc := range []struct{ name, body, extra string }{
		{"exit 3", "read u p\nexit 3\n", ""},
		{"timeout", "read u p\nsleep 30\n", "  timeout: 200ms\n"},
		{"bad labels", "read u p\necho '{labels'\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := execScript(t, t.TempDir(), "auth.sh", tc.body)
			s, _ := testServer(t, fmt.Sprintf("ext_auth:\n  command: %s\n%s", p, tc.extra))
			r := ghGet(s, "service=registry", "dora", "dora-pw")
			if r.status != 503 || strings.Contains(r.raw, p) {
				t.Fatalf("got %d %s, want 503 without the program's path", r.status, r.raw)
			}
		})
	}
}

// TestExtAuthzThroughTheChain: ext_authz decides, per scope, what the
// static acl does not match; its deny is final.
func TestExtAuthzThroughTheChain(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "scopes")
	p := execScript(t, dir, "authz.sh", `in=$(cat)
printf '%s\n' "$in" >> `+log+`
case "$in" in *'"Name":"shared/'*) exit 0 ;; esac
exit 1
`)
	s, _ := testServer(t, fmt.Sprintf("ext_authz:\n  command: %s\n", p))
	r := ghGet(s, "service=registry&scope=repository:shared/app:pull,push&scope=repository:bob/app:pull&scope=repository:other/app:pull", "bob", "bobpw")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	got := map[string][]string{}
	for _, a := range claimsOf(t, r.body.Token).Access {
		got[a.Name] = a.Actions
	}
	want := map[string][]string{"shared/app": {"pull", "push"}, "bob/app": {"pull"}, "other/app": {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("access %v, want %v", got, want)
	}
	// bob/app is decided by the static acl (own namespace): only the other
	// two reach the program, one run each.
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if w := `{"Account":"bob","Type":"repository","Name":"shared/app","Service":"registry","IP":"192.0.2.1","Actions":["pull","push"],"Labels":null}
{"Account":"bob","Type":"repository","Name":"other/app","Service":"registry","IP":"192.0.2.1","Actions":["pull"],"Labels":null}
`; string(data) != w {
		t.Fatalf("the program read\n%s\nwant\n%s", data, w)
	}
}

// TestExtCommandCheckedAtLoad: a missing or non-executable command is
// refused when the configuration is built, at the line of its key.
func TestExtCommandCheckedAtLoad(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, section, command, want string }{
		{"ext_auth missing", "ext_auth", filepath.Join(dir, "absent"), "not found"},
		{"ext_authz not executable", "ext_authz", notExec, "not executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yml := fmt.Sprintf("server: {addr: \":0\"}\ntoken: {issuer: i, expiration: 60, certificate: %[1]s/t.pem, key: %[1]s/t.key, generate_if_missing: true}\nusers: {\"\": {}}\nacl: []\n%[2]s:\n  args: [x]\n  command: %[3]s\n", dir, tc.section, tc.command)
			cfg, err := config.Parse("auth_config.yml", []byte(yml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(cfg)
			var ce *config.Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("err %v, want one problem", err)
			}
			if p := ce.Problems[0]; p.Line != 7 || p.Key != tc.section+".command" || !strings.Contains(p.Msg, tc.want) {
				t.Fatalf("problem %s, want line 7 %s.command saying %q", p, tc.section, tc.want)
			}
		})
	}
}
