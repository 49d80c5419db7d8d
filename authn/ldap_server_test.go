package authn_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/ldaptest"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// ldapServerConfig is an auth_config.yml with only ldap_auth, over
// StartTLS, whose ACL grants by group: every member of a memberOf group
// gets everything on ${labels:groups}/*, every member of a posixGroup pull
// on ${labels:teams}/*. The credential cache is off, so every request
// reaches the directory.
func ldapServerConfig(srv *ldaptest.Server, dir string) string {
	return fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: ldap-test
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
cache: {ttl: 0} # every request asks the directory
ldap_auth:
  addr: %[2]s
  tls: starttls
  ca_certificate: %[3]s
  bind_dn: %[4]s
  bind_password_file: %[5]s
  base: %[6]s
  filter: (&(objectClass=inetOrgPerson)(uid=${account}))
  labels:
    groups: {attribute: memberOf, parse_cn: true, lower_case: true}
  group_search:
    base: %[7]s
    filter: (&(objectClass=posixGroup)(memberUid=${account}))
    attribute: cn
    label: teams
  connect_timeout: 300ms
  request_timeout: 300ms
  pool_size: 4
acl:
  - match: {name: "${labels:groups}/*"}
    actions: ["*"]
  - match: {name: "${labels:teams}/*"}
    actions: [pull]
`, dir, srv.Addr, srv.CAFile, ldaptest.ServiceDN, srv.BindPasswordFile, ldaptest.People, ldaptest.Groups)
}

// tokenGrants asks the server for scopes as user and returns the status,
// the body, and what the token grants: repository name → actions.
func tokenGrants(t *testing.T, h http.Handler, user, password string, scopes ...string) (int, string, map[string][]string) {
	t.Helper()
	q := url.Values{"service": {"registry"}, "scope": scopes}
	r := httptest.NewRequest(http.MethodGet, "/auth?"+q.Encode(), nil)
	r.SetBasicAuth(user, password)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		return w.Code, body, nil
	}
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("token response: %v: %s", err, body)
	}
	parts := strings.Split(resp.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", resp.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Access []struct {
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	grants := map[string][]string{}
	for _, a := range claims.Access {
		if len(a.Actions) > 0 {
			grants[a.Name] = a.Actions
		}
	}
	return w.Code, body, grants
}

// TestLDAPThroughServer runs ldap_auth through config.Parse, auth.New and
// the HTTP handler: group labels feed ${labels:KEY} rules, wrong
// credentials are 401, and a directory that is stopped or hung is a 503
// with an errcode body, after which the same server recovers.
func TestLDAPThroughServer(t *testing.T) {
	srv := ldaptest.Start(t)
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(ldapServerConfig(srv, dir)))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	var log testutil.SyncBuffer
	s, err := auth.New(cfg, auth.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	scopes := []string{"repository:pushers/app:push,pull", "repository:developers/app:push,pull", "repository:admins/app:pull"}

	type step struct {
		name           string
		before         func()
		user, password string
		status         int
		grants         map[string][]string
		code           string // errcode of a refusal
	}
	alice := func(name string, before func(), status int, code string) step {
		s := step{name, before, "alice", ldaptest.Alice.Password, status, nil, code}
		if status == http.StatusOK {
			s.grants = map[string][]string{"pushers/app": {"pull", "push"}, "developers/app": {"pull"}}
		}
		return s
	}
	nothing := func() {}
	for _, st := range []step{
		alice("memberOf and posixGroup member", nothing, http.StatusOK, ""),
		{"posixGroup member", nothing, "bob", ldaptest.Bob.Password, http.StatusOK, map[string][]string{"developers/app": {"pull"}}, ""},
		{"memberOf label, lower-cased CN", nothing, "carol", ldaptest.Carol.Password, http.StatusOK, map[string][]string{"admins/app": {"pull"}}, ""},
		{"wrong password", nothing, "alice", "nope", http.StatusUnauthorized, nil, "UNAUTHORIZED"},
		{"unknown user", nothing, "mallory", "x", http.StatusUnauthorized, nil, "UNAUTHORIZED"},
		{"empty password", nothing, "alice", "", http.StatusUnauthorized, nil, "UNAUTHORIZED"},
		{"wildcard account", nothing, "*", ldaptest.Alice.Password, http.StatusUnauthorized, nil, "UNAUTHORIZED"},
		alice("slapd stopped", srv.Stop, http.StatusServiceUnavailable, "UNAVAILABLE"),
		alice("still stopped", nothing, http.StatusServiceUnavailable, "UNAVAILABLE"),
		alice("slapd restarted", srv.Restart, http.StatusOK, ""),
		alice("slapd hung", srv.Pause, http.StatusServiceUnavailable, "UNAVAILABLE"),
		alice("slapd resumed", srv.Resume, http.StatusOK, ""),
	} {
		t.Run(st.name, func(t *testing.T) {
			st.before()
			start := time.Now()
			status, body, grants := tokenGrants(t, s, st.user, st.password, scopes...)
			if status != st.status {
				t.Fatalf("status %d, want %d: %s\n--- log ---\n%s", status, st.status, body, log.String())
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered in %s, want well under 2s with 300ms timeouts", d)
			}
			if st.status == http.StatusOK {
				if !reflect.DeepEqual(grants, st.grants) {
					t.Errorf("token grants %v, want %v", grants, st.grants)
				}
				return
			}
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != st.code {
				t.Fatalf("body %s, want an errcode body with code %s", body, st.code)
			}
			if strings.Contains(strings.ToLower(body), "ldap") || strings.Contains(body, "127.0.0.1") {
				t.Errorf("body %s reveals internal detail", body)
			}
		})
	}
	if l := log.String(); !strings.Contains(l, "connection refused") || !strings.Contains(l, "deadline exceeded") {
		t.Errorf("the log does not give the reasons of the 503s (connection refused, deadline exceeded):\n%s", l)
	}
}

// TestLDAPConfigErrorLines shows ldap_auth problems reported with the
// file's line and key.
func TestLDAPConfigErrorLines(t *testing.T) {
	yml := `server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: c.pem, key: k.pem}
ldap_auth:
  addr: ldap.example.com
  tls: StartTLS
  base: dc=example,dc=com
  filter: (uid=alice)
  request_timeout: 5
  pool: 3
acl: []
`
	_, err := config.Parse("auth_config.yml", []byte(yml))
	if err == nil {
		t.Fatal("config.Parse accepted an invalid ldap_auth")
	}
	for _, want := range []string{
		"auth_config.yml:4: ldap_auth.addr: want host:port",
		"auth_config.yml:5: ldap_auth.tls: must be none, always or starttls",
		"auth_config.yml:7: ldap_auth.filter: must use ${account}",
		"auth_config.yml:8: ldap_auth.request_timeout:",
		"auth_config.yml:9: ldap_auth.pool: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%s", want, err)
		}
	}
}

// TestLDAPConfigFiles shows the files ldap_auth names are watched for
// reloads: they are read at load only.
func TestLDAPConfigFiles(t *testing.T) {
	yml := `server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: c.pem, key: k.pem}
ldap_auth:
  addr: ldap.example.com:389
  tls: starttls
  ca_certificate: /etc/ldap-ca.pem
  bind_dn: cn=svc,dc=example,dc=com
  bind_password_file: /run/secrets/ldap
  base: dc=example,dc=com
  filter: (uid=${account})
acl: []
`
	cfg, err := config.Parse("auth_config.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	files := cfg.Files()
	for _, want := range []string{"/etc/ldap-ca.pem", "/run/secrets/ldap"} {
		if !slices.Contains(files, want) {
			t.Errorf("Files() = %v, missing %s", files, want)
		}
	}
}

// TestLDAPRefreshToken redeems a refresh token issued to an LDAP user:
// Lookup finds the account and its current group labels again, and a
// directory that is down makes the redemption a 503, not a 401.
func TestLDAPRefreshToken(t *testing.T) {
	srv := ldaptest.Start(t)
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(ldapServerConfig(srv, dir)))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	s, err := auth.New(cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })

	r := httptest.NewRequest(http.MethodGet, "/auth?service=registry&client_id=docker&offline_token=true", nil)
	r.SetBasicAuth("alice", ldaptest.Alice.Password)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var login struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &login); w.Code != http.StatusOK || err != nil || login.RefreshToken == "" {
		t.Fatalf("login with offline_token: %d %s", w.Code, w.Body)
	}
	redeem := func() (int, string) {
		form := url.Values{"grant_type": {"refresh_token"}, "service": {"registry"}, "client_id": {"docker"},
			"refresh_token": {login.RefreshToken}, "scope": {"repository:pushers/app:push,pull"}}
		r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, step := range []struct {
		name   string
		before func()
		status int
		body   string // a substring of the answer
	}{
		{"redeemed with the group's rights", func() {}, http.StatusOK, `"scope":"repository:pushers/app:pull,push"`},
		{"directory stopped", srv.Stop, http.StatusServiceUnavailable, `"code":"UNAVAILABLE"`},
		{"directory restarted", srv.Restart, http.StatusOK, `"access_token"`},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.before()
			status, body := redeem()
			if status != step.status || !strings.Contains(body, step.body) {
				t.Fatalf("refresh: %d %s, want %d with %s", status, body, step.status, step.body)
			}
		})
	}
}
