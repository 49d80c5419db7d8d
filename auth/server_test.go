package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
)

// testServer starts a Server on the seed policy plus extra YAML appended to
// the acl, with a generated key pair in a temporary directory.
func testServer(t *testing.T, extra string) (*Server, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("carol:"+hash("carolpw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0", path_prefix: /gh}
token:
  issuer: test-issuer
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
users:
  admin: {password: %[2]q}
  alice: {password: %[3]q, labels: {team: [blue]}}
  bob: {password: %[4]q}
  "": {}
htpasswd_auth: {path: %[5]s}
acl:
  - match: {account: admin}
    actions: ["*"]
    comment: admin
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
    comment: own namespace
  - match: {labels: {team: blue}, name: "blue/*"}
    actions: [pull]
  - match: {account: "", name: "public/*"}
    actions: [pull]
%[6]s`, dir, hash("adminpw"), hash("alicepw"), hash("bobpw"), htpasswd, extra)
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Access []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	} `json:"access"`
}

func TestTokenEndpoint(t *testing.T) {
	s, _ := testServer(t, "")
	signer := s.state.Load().signer
	tests := []struct {
		name       string
		method     string
		path       string
		user, pass string // user "-" sends no Authorization header
		wantStatus int
		wantSub    string
		wantAccess string // "type:name:actions;..." for 200
		wantCode   string // errcode for errors
	}{
		{"own namespace", "GET", "/gh/auth?service=registry&scope=repository:alice/app:pull,push", "alice", "alicepw", 200, "alice", "repository:alice/app:pull,push", ""},
		{"auth/token alias", "GET", "/gh/auth/token?service=registry&scope=repository:alice/app:pull", "alice", "alicepw", 200, "alice", "repository:alice/app:pull", ""},
		{"other namespace is an empty grant", "GET", "/gh/auth?service=registry&scope=repository:bob/app:pull,push", "alice", "alicepw", 200, "alice", "repository:bob/app:", ""},
		{"partial grant by label", "GET", "/gh/auth?service=registry&scope=repository:blue/app:pull,push", "alice", "alicepw", 200, "alice", "repository:blue/app:pull", ""},
		{"several scopes", "GET", "/gh/auth?service=registry&scope=repository:alice/a:push&scope=repository:bob/b:pull", "alice", "alicepw", 200, "alice", "repository:alice/a:push;repository:bob/b:", ""},
		{"login without scope", "GET", "/gh/auth?service=registry&account=alice&offline_token=true&client_id=docker", "alice", "alicepw", 200, "alice", "", ""},
		{"admin catalog", "GET", "/gh/auth?service=registry&scope=registry:catalog:*", "admin", "adminpw", 200, "admin", "registry:catalog:*", ""},
		{"user cannot list the catalog", "GET", "/gh/auth?service=registry&scope=registry:catalog:*", "bob", "bobpw", 200, "bob", "registry:catalog:", ""},
		{"htpasswd user", "GET", "/gh/auth?service=registry&scope=repository:carol/app:push", "carol", "carolpw", 200, "carol", "repository:carol/app:push", ""},
		{"anonymous pull of public", "GET", "/gh/auth?service=registry&scope=repository:public/app:pull,push", "-", "", 200, "", "repository:public/app:pull", ""},
		{"anonymous elsewhere gets nothing", "GET", "/gh/auth?service=registry&scope=repository:alice/app:pull", "-", "", 200, "", "repository:alice/app:", ""},
		{"wrong password", "GET", "/gh/auth?service=registry&scope=repository:alice/app:pull", "alice", "nope", 401, "", "", CodeUnauthorized},
		{"wrong password never falls back to anonymous", "GET", "/gh/auth?service=registry&scope=repository:public/app:pull", "alice", "nope", 401, "", "", CodeUnauthorized},
		{"unknown user", "GET", "/gh/auth?service=registry", "mallory", "x", 401, "", "", CodeUnauthorized},
		{"password without user", "GET", "/gh/auth?service=registry", "", "x", 401, "", "", CodeUnauthorized},
		{"htpasswd wrong password", "GET", "/gh/auth?service=registry", "carol", "x", 401, "", "", CodeUnauthorized},
		{"bad scope", "GET", "/gh/auth?service=registry&scope=nonsense", "alice", "alicepw", 400, "", "", CodeBadRequest},
		{"missing service", "GET", "/gh/auth?scope=repository:alice/app:pull", "alice", "alicepw", 400, "", "", CodeBadRequest},
		{"POST without a form", "POST", "/gh/auth", "alice", "alicepw", 400, "", "", CodeBadRequest},
		{"PUT", "PUT", "/gh/auth?service=registry", "alice", "alicepw", 405, "", "", CodeUnsupported},
		{"outside the prefix", "GET", "/auth?service=registry", "alice", "alicepw", 404, "", "", CodeNotFound},
		{"oidc_auth not configured", "GET", "/gh/oidc_auth", "-", "", 404, "", "", CodeNotFound},
		{"google_auth not configured", "GET", "/gh/google_auth", "-", "", 404, "", "", CodeNotFound},
		{"github_auth not configured", "GET", "/gh/github_auth", "-", "", 404, "", "", CodeNotFound},
		{"gitlab_auth not configured", "GET", "/gh/gitlab_auth", "-", "", 404, "", "", CodeNotFound},
		{"a sign-in path outside the prefix", "GET", "/github_auth", "-", "", 404, "", "", CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.user != "-" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus != 200 {
				checkErrorBody(t, res, body, tc.wantCode)
				if res.StatusCode == 401 && res.Header.Get("WWW-Authenticate") != `Basic realm="test-issuer"` {
					t.Errorf("WWW-Authenticate = %q", res.Header.Get("WWW-Authenticate"))
				}
				return
			}
			var tr struct {
				Token       string `json:"token"`
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
				IssuedAt    string `json:"issued_at"`
			}
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 600 {
				t.Fatalf("response %s", body)
			}
			var claims tokenClaims
			_, err := jwt.ParseWithClaims(tr.Token, &claims, func(*jwt.Token) (any, error) { return signer.PublicKey(), nil },
				jwt.WithAudience("registry"), jwt.WithIssuer("test-issuer"), jwt.WithValidMethods([]string{signer.Algorithm()}))
			if err != nil {
				t.Fatal(err)
			}
			if claims.Subject != tc.wantSub {
				t.Errorf("sub %q, want %q", claims.Subject, tc.wantSub)
			}
			issued, err := time.Parse(time.RFC3339, tr.IssuedAt)
			if err != nil || !issued.Equal(claims.IssuedAt.Time) {
				t.Errorf("issued_at %q vs iat %v (%v)", tr.IssuedAt, claims.IssuedAt, err)
			}
			var got []string
			for _, a := range claims.Access {
				got = append(got, a.Type+":"+a.Name+":"+strings.Join(a.Actions, ","))
			}
			if strings.Join(got, ";") != tc.wantAccess {
				t.Errorf("access %q, want %q", strings.Join(got, ";"), tc.wantAccess)
			}
		})
	}
}

func checkErrorBody(t *testing.T, res *http.Response, body []byte, code string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("body %q is not an errcode list: %v", body, err)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s", eb.Errors[0], code)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
}

func TestNoAnonymousWithoutEmptyAccount(t *testing.T) {
	s, cfg := testServer(t, "")
	delete(cfg.Users, "")
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_ = s
	rec := httptest.NewRecorder()
	s2.ServeHTTP(rec, httptest.NewRequest("GET", "/gh/auth?service=registry&scope=repository:public/app:pull", nil))
	if rec.Code != 401 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	checkErrorBody(t, rec.Result(), rec.Body.Bytes(), CodeUnauthorized)
}

// fakeAuthenticator answers with a fixed outcome; it counts its calls.
type fakeAuthenticator struct {
	name   string
	labels authn.Labels
	err    error
	calls  int
}

func (f *fakeAuthenticator) Name() string { return f.name }
func (f *fakeAuthenticator) Lookup(ctx context.Context, account string) (authn.Account, error) {
	return authn.Account{Name: account, Labels: f.labels}, f.err
}
func (f *fakeAuthenticator) Authenticate(ctx context.Context, account, password string) (authn.Account, error) {
	f.calls++
	return authn.Account{Name: account, Labels: f.labels}, f.err
}

func TestChain(t *testing.T) {
	creds := &Request{Account: "alice", Password: "pw", HasCredentials: true}
	tests := []struct {
		name        string
		backends    []*fakeAuthenticator
		wantStatus  int // 0: authenticated
		wantBackend string
		wantCalls   []int
	}{
		{"first answers", []*fakeAuthenticator{{name: "a"}, {name: "b"}}, 0, "a", []int{1, 0}},
		{"no match passes on", []*fakeAuthenticator{{name: "a", err: authn.ErrNoMatch}, {name: "b"}}, 0, "b", []int{1, 1}},
		{"wrong password stops", []*fakeAuthenticator{{name: "a", err: authn.ErrWrongPassword}, {name: "b"}}, 401, "", []int{1, 0}},
		{"nobody knows", []*fakeAuthenticator{{name: "a", err: authn.ErrNoMatch}}, 401, "", []int{1}},
		{"backend down is 503", []*fakeAuthenticator{{name: "a", err: fmt.Errorf("%w: dial: refused", authn.ErrUnavailable)}, {name: "b"}}, 503, "", []int{1, 0}},
		{"unexpected error is 503 too", []*fakeAuthenticator{{name: "a", err: errors.New("boom")}}, 503, "", []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var bs []authn.Authenticator
			for _, b := range tc.backends {
				bs = append(bs, b)
			}
			c, err := newChain(bs, "realm", newMetrics("test"), chainOptions{checks: 2, checkWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			id, e := c.authenticate(context.Background(), creds)
			switch {
			case tc.wantStatus == 0 && (e != nil || id.Backend != tc.wantBackend):
				t.Fatalf("id %+v, err %v", id, e)
			case tc.wantStatus != 0 && (e == nil || e.Status != tc.wantStatus):
				t.Fatalf("err %v, want status %d", e, tc.wantStatus)
			}
			if e != nil && e.Status == 503 && strings.Contains(e.Message, "refused") {
				t.Fatalf("internal reason leaked into the message: %q", e.Message)
			}
			for i, b := range tc.backends {
				if b.calls != tc.wantCalls[i] {
					t.Errorf("backend %s called %d times, want %d", b.name, b.calls, tc.wantCalls[i])
				}
			}
		})
	}
}

func TestBasicHeaderForms(t *testing.T) {
	s, _ := testServer(t, "")
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"lowercase scheme", "basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw")), 200},
		{"garbage", "Basic %%%", 400},
		{"digest", "Digest username=alice", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/gh/auth?service=registry", nil)
			req.Header.Set("Authorization", tc.header)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

func TestRealIPFeedsTheACL(t *testing.T) {
	s, cfg := testServer(t, "  - match: {ip: 10.0.0.0/8, name: \"internal/*\"}\n    actions: [pull]\n")
	cfg.Server.RealIPHeader, cfg.Server.RealIPPos = "X-Forwarded-For", -1
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_ = s
	for _, tc := range []struct{ xff, want string }{
		{"203.0.113.1, 10.1.2.3", "pull"},
		{"10.1.2.3, 203.0.113.1", ""},
	} {
		req := httptest.NewRequest("GET", "/gh/auth?service=registry&scope=repository:internal/x:pull", nil)
		req.Header.Set("X-Forwarded-For", tc.xff)
		rec := httptest.NewRecorder()
		s2.ServeHTTP(rec, req)
		var tr struct{ Token string }
		json.Unmarshal(rec.Body.Bytes(), &tr)
		var claims tokenClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tr.Token, &claims); err != nil {
			t.Fatalf("%s: %v %s", tc.xff, err, rec.Body)
		}
		if got := strings.Join(claims.Access[0].Actions, ","); got != tc.want {
			t.Errorf("xff %q: granted %q, want %q", tc.xff, got, tc.want)
		}
	}
	req := httptest.NewRequest("GET", "/gh/auth?service=registry", nil)
	rec := httptest.NewRecorder()
	s2.ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Fatalf("missing header: status %d", rec.Code)
	}
}

func TestBuildErrorsNameLines(t *testing.T) {
	dir := t.TempDir()
	yml := fmt.Sprintf("server: {addr: \":0\"}\ntoken:\n  issuer: i\n  expiration: 60\n  certificate: %[1]s/absent.pem\n  key: %[1]s/absent.key\nhtpasswd_auth: {path: %[1]s/absent}\nacl: []\n", dir)
	cfg, err := config.Parse("auth_config.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err %T %v", err, err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, fmt.Sprintf("%d:%s", p.Line, p.Key))
	}
	if want := []string{"5:token.certificate", "6:token.key", "7:htpasswd_auth.path"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %v, want %v:\n%v", got, want, err)
	}
}
