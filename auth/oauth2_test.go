package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// oauthEnv is a key pair and htpasswd file in a directory, from which
// servers with different configurations are built: the same key across
// servers, as across a reload.
type oauthEnv struct {
	t   *testing.T
	dir string
	top string // YAML appended at the top level
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	e := &oauthEnv{t: t, dir: t.TempDir()}
	h, _ := bcrypt.GenerateFromPassword([]byte("carolpw"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(e.dir, "htpasswd"), []byte("carol:"+string(h)+"\n"), 0o600)
	return e
}

var alicePW, _ = bcrypt.GenerateFromPassword([]byte("alicepw"), bcrypt.MinCost)

// server builds a Server; tokenExtra is added to the token section, users
// replaces the default users (alice with label team: blue, anonymous).
func (e *oauthEnv) server(tokenExtra, users string, opts ...Option) *Server {
	e.t.Helper()
	if users == "" {
		users = fmt.Sprintf("  alice: {password: %q, labels: {team: [blue]}}\n  \"\": {}\n", alicePW)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: test-issuer
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
%[2]susers:
%[3]shtpasswd_auth: {path: %[1]s/htpasswd}
acl:
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
  - match: {labels: {team: blue}, name: "blue/*"}
    actions: [pull]
  - match: {name: "public/*"}
    actions: [pull]
%[4]s`, e.dir, tokenExtra, users, e.top)
	cfg, err := config.Parse(filepath.Join(e.dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := New(cfg, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

type result struct {
	status int
	body   tokenResponse
	raw    string
	header http.Header
}

func post(s *Server, form url.Values) result {
	req := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(s, req)
}

func get(s *Server, query, user, pass string) result {
	req := httptest.NewRequest(http.MethodGet, "/auth?"+query, nil)
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	return do(s, req)
}

func do(s *Server, req *http.Request) result {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Result().Body)
	r := result{status: rec.Code, raw: string(raw), header: rec.Header()}
	json.Unmarshal(raw, &r.body)
	return r
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// claimsOf parses an access token without verifying it (tests verify
// signatures elsewhere).
func claimsOf(t *testing.T, raw string) tokenClaims {
	t.Helper()
	var c tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		t.Fatalf("token %q: %v", raw, err)
	}
	return c
}

func grants(c tokenClaims) string {
	var out []string
	for _, a := range c.Access {
		out = append(out, a.Type+":"+a.Name+":"+strings.Join(a.Actions, ","))
	}
	return strings.Join(out, " ")
}

func TestOAuth2Post(t *testing.T) {
	s := newOAuthEnv(t).server("", "")
	pw := []string{"grant_type", "password", "service", "registry", "client_id", "containerd-client", "username", "alice", "password", "alicepw"}
	tests := []struct {
		name        string
		form        url.Values
		wantStatus  int
		wantScope   string
		wantRefresh bool
		wantCode    string
	}{
		{"password grant", form(append(pw, "scope", "repository:alice/app:pull,push")...), 200, "repository:alice/app:pull,push", false, ""},
		{"space separated scopes", form(append(pw, "scope", "repository:alice/a:pull repository:blue/b:pull,push")...), 200, "repository:alice/a:pull repository:blue/b:pull", false, ""},
		{"repeated scopes (containers/image)", form(append(pw, "scope", "repository:alice/a:push", "scope", "repository:bob/b:pull")...), 200, "repository:alice/a:push", false, ""},
		{"no scope (login)", form(pw...), 200, "", false, ""},
		{"offline access", form(append(pw, "access_type", "offline")...), 200, "", true, ""},
		{"online access", form(append(pw, "access_type", "online")...), 200, "", false, ""},
		{"wrong password", form("grant_type", "password", "service", "registry", "client_id", "c", "username", "alice", "password", "x"), 401, "", false, CodeUnauthorized},
		{"unknown user", form("grant_type", "password", "service", "registry", "client_id", "c", "username", "mallory", "password", "x"), 401, "", false, CodeUnauthorized},
		{"never anonymous: empty username", form("grant_type", "password", "service", "registry", "client_id", "c", "username", "", "password", ""), 400, "", false, CodeBadRequest},
		{"missing password", form("grant_type", "password", "service", "registry", "client_id", "c", "username", "alice"), 400, "", false, CodeBadRequest},
		{"missing grant_type", form("service", "registry", "client_id", "c", "username", "alice", "password", "alicepw"), 400, "", false, CodeBadRequest},
		{"missing service", form("grant_type", "password", "client_id", "c", "username", "alice", "password", "alicepw"), 400, "", false, CodeBadRequest},
		{"missing client_id", form("grant_type", "password", "service", "registry", "username", "alice", "password", "alicepw"), 400, "", false, CodeBadRequest},
		{"unsupported grant", form("grant_type", "authorization_code", "service", "registry", "client_id", "c", "code", "x"), 400, "", false, CodeBadRequest},
		{"bad access_type", form(append(pw, "access_type", "forever")...), 400, "", false, CodeBadRequest},
		{"missing refresh token", form("grant_type", "refresh_token", "service", "registry", "client_id", "c"), 400, "", false, CodeBadRequest},
		{"forged refresh token", form("grant_type", "refresh_token", "service", "registry", "client_id", "c", "refresh_token", "eyJhbGciOiJIUzI1NiJ9.e30.x"), 401, "", false, CodeUnauthorized},
		{"bad scope", form(append(pw, "scope", "nonsense")...), 400, "", false, CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(s, tc.form)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.raw)
			}
			if tc.wantStatus != 200 {
				var eb errorBody
				if json.Unmarshal([]byte(r.raw), &eb) != nil || len(eb.Errors) != 1 || eb.Errors[0].Code != tc.wantCode {
					t.Fatalf("error body %s, want code %s", r.raw, tc.wantCode)
				}
				return
			}
			if r.body.AccessToken == "" || r.body.AccessToken != r.body.Token || r.body.ExpiresIn != 600 || r.body.IssuedAt == "" {
				t.Fatalf("response %s", r.raw)
			}
			if r.body.Scope != tc.wantScope {
				t.Errorf("scope %q, want %q", r.body.Scope, tc.wantScope)
			}
			if (r.body.RefreshToken != "") != tc.wantRefresh {
				t.Errorf("refresh_token present = %v, want %v", r.body.RefreshToken != "", tc.wantRefresh)
			}
			if c := claimsOf(t, r.body.AccessToken); c.Subject != "alice" {
				t.Errorf("sub %q", c.Subject)
			}
		})
	}
	t.Run("oversized body", func(t *testing.T) {
		r := post(s, form("grant_type", "password", "padding", strings.Repeat("x", MaxFormBytes)))
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("json body", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(`{"grant_type":"password"}`))
		req.Header.Set("Content-Type", "application/json")
		if r := do(s, req); r.status != 400 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
}

func TestRefreshTokenFlows(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	login := get(s, "service=registry&account=alice&client_id=docker&offline_token=true", "alice", "alicepw")
	if login.status != 200 || login.body.RefreshToken == "" {
		t.Fatalf("docker login: %d %s", login.status, login.raw)
	}
	rt := login.body.RefreshToken
	refresh := func(s *Server, rt, service string, scopes ...string) result {
		f := form("grant_type", "refresh_token", "service", service, "client_id", "docker", "refresh_token", rt)
		for _, sc := range scopes {
			f.Add("scope", sc)
		}
		return post(s, f)
	}

	t.Run("docker push with the identity token", func(t *testing.T) {
		r := refresh(s, rt, "registry", "repository:alice/app:pull,push")
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		c := claimsOf(t, r.body.AccessToken)
		if c.Subject != "alice" || grants(c) != "repository:alice/app:pull,push" || r.body.RefreshToken != "" {
			t.Fatalf("sub %q grants %q refresh %q", c.Subject, grants(c), r.body.RefreshToken)
		}
	})
	t.Run("offline refresh grant returns the same token", func(t *testing.T) {
		f := form("grant_type", "refresh_token", "service", "registry", "client_id", "c", "refresh_token", rt, "access_type", "offline")
		if r := post(s, f); r.status != 200 || r.body.RefreshToken != rt {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("labels come with the refresh", func(t *testing.T) {
		r := refresh(s, rt, "registry", "repository:blue/x:pull")
		if c := claimsOf(t, r.body.AccessToken); grants(c) != "repository:blue/x:pull" {
			t.Fatalf("grants %q", grants(c))
		}
	})
	t.Run("GET with the refresh token as Basic password and no user", func(t *testing.T) {
		r := get(s, "service=registry&scope=repository:alice/app:pull", "", rt)
		if r.status != 200 || claimsOf(t, r.body.Token).Subject != "alice" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("bound to the service", func(t *testing.T) {
		if r := refresh(s, rt, "other-registry"); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("not a password", func(t *testing.T) {
		if r := get(s, "service=registry", "alice", rt); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("access token is not a refresh token", func(t *testing.T) {
		if r := refresh(s, login.body.AccessToken, "registry"); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("refresh token is not an access token", func(t *testing.T) {
		signer := s.state.Load().signer
		_, err := jwt.Parse(rt, func(*jwt.Token) (any, error) { return signer.PublicKey(), nil },
			jwt.WithValidMethods([]string{signer.Algorithm()}), jwt.WithAudience("registry"))
		if err == nil {
			t.Fatal("the refresh token verified as an access token")
		}
		hdr, _, _ := strings.Cut(rt, ".")
		if !strings.Contains(string(mustB64(t, hdr)), `"HS256"`) {
			t.Fatalf("refresh header %s", mustB64(t, hdr))
		}
	})
	t.Run("anonymous gets no refresh token", func(t *testing.T) {
		if r := get(s, "service=registry&offline_token=true", "-", ""); r.status != 200 || r.body.RefreshToken != "" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("htpasswd account is looked up in htpasswd", func(t *testing.T) {
		l := get(s, "service=registry&offline_token=true", "carol", "carolpw")
		if r := refresh(s, l.body.RefreshToken, "registry", "repository:carol/x:push"); r.status != 200 || grants(claimsOf(t, r.body.AccessToken)) != "repository:carol/x:push" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("labels are read afresh after a reload", func(t *testing.T) {
		users := fmt.Sprintf("  alice: {password: %q, labels: {team: [red]}}\n", alicePW)
		s2 := env.server("", users)
		r := refresh(s2, rt, "registry", "repository:blue/x:pull")
		if r.status != 200 || grants(claimsOf(t, r.body.AccessToken)) != "repository:blue/x:" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("a password change revokes it (static users)", func(t *testing.T) {
		newPW, _ := bcrypt.GenerateFromPassword([]byte("alice-new-pw"), bcrypt.MinCost)
		s2 := env.server("", fmt.Sprintf("  alice: {password: %q, labels: {team: [blue]}}\n", newPW))
		if r := refresh(s2, rt, "registry"); r.status != 401 || !strings.Contains(r.raw, "log in again") {
			t.Fatalf("refresh token issued before the password change: %d %s", r.status, r.raw)
		}
		rt2 := get(s2, "service=registry&offline_token=true", "alice", "alice-new-pw").body.RefreshToken
		if r := refresh(s2, rt2, "registry"); r.status != 200 {
			t.Fatalf("refresh token issued after the change: %d %s", r.status, r.raw)
		}
	})
	t.Run("a password change revokes it (htpasswd)", func(t *testing.T) {
		l := get(s, "service=registry&offline_token=true", "carol", "carolpw")
		if r := refresh(env.server("", ""), l.body.RefreshToken, "registry"); r.status != 200 {
			t.Fatalf("unchanged file: %d %s", r.status, r.raw)
		}
		old, _ := os.ReadFile(filepath.Join(env.dir, "htpasswd"))
		t.Cleanup(func() { os.WriteFile(filepath.Join(env.dir, "htpasswd"), old, 0o600) })
		h, _ := bcrypt.GenerateFromPassword([]byte("carol-new-pw"), bcrypt.MinCost)
		os.WriteFile(filepath.Join(env.dir, "htpasswd"), []byte("carol:"+string(h)+"\n"), 0o600)
		if r := refresh(env.server("", ""), l.body.RefreshToken, "registry"); r.status != 401 {
			t.Fatalf("refresh token issued before the password change: %d %s", r.status, r.raw)
		}
	})
	t.Run("a removed account stops at once", func(t *testing.T) {
		s2 := env.server("", "  bob: {password: \"$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG\"}\n")
		if r := refresh(s2, rt, "registry"); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("a refresh secret file replaces the derived secret", func(t *testing.T) {
		secret := filepath.Join(env.dir, "refresh.secret")
		os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600)
		s2 := env.server("  refresh_secret_file: "+secret+"\n", "")
		if r := refresh(s2, rt, "registry"); r.status != 401 {
			t.Fatalf("old token accepted: %d %s", r.status, r.raw)
		}
		rt2 := get(s2, "service=registry&offline_token=true", "alice", "alicepw").body.RefreshToken
		if r := refresh(s2, rt2, "registry"); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		os.WriteFile(secret, []byte(strings.Repeat("t", 40)), 0o600)
		s3 := env.server("  refresh_secret_file: "+secret+"\n", "")
		if r := refresh(s3, rt2, "registry"); r.status != 401 {
			t.Fatalf("changing the secret did not revoke: %d %s", r.status, r.raw)
		}
	})
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := jwt.NewParser().DecodeSegment(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefreshTokenExpiry(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newOAuthEnv(t).server("  refresh_expiration: 3600\n", "", WithClock(clock))
	rt := get(s, "service=registry&offline_token=true", "alice", "alicepw").body.RefreshToken
	f := form("grant_type", "refresh_token", "service", "registry", "client_id", "c", "refresh_token", rt)
	now = now.Add(59 * time.Minute)
	if r := post(s, f); r.status != 200 {
		t.Fatalf("before expiry: %d %s", r.status, r.raw)
	}
	now = now.Add(2 * time.Minute)
	if r := post(s, f); r.status != 401 {
		t.Fatalf("after expiry: %d %s", r.status, r.raw)
	}
}

func TestOAuth2Off(t *testing.T) {
	s := newOAuthEnv(t).server("  oauth2: false\n", "")
	r := post(s, form("grant_type", "password", "service", "registry", "client_id", "c", "username", "alice", "password", "alicepw"))
	if r.status != 404 {
		t.Fatalf("POST: %d %s", r.status, r.raw)
	}
	if r := get(s, "service=registry&offline_token=true", "alice", "alicepw"); r.status != 200 || r.body.RefreshToken != "" {
		t.Fatalf("GET offline: %d %s", r.status, r.raw)
	}
	if r := get(s, "service=registry", "", "sometoken"); r.status != 401 {
		t.Fatalf("GET with a token as password: %d %s", r.status, r.raw)
	}
}

func TestJWKSAndBundle(t *testing.T) {
	env := newOAuthEnv(t)
	// The next key pair, made like an operator would with openssl.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "next"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(env.dir, "next.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(env.dir, "next.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	for _, tc := range []struct {
		name     string
		extra    string
		wantKeys int // distinct public keys
	}{
		{"current key only", "", 1},
		{"with the next key", fmt.Sprintf("  next_certificate: %[1]s/next.pem\n  next_key: %[1]s/next.key\n", env.dir), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := env.server(tc.extra, "")
			signer := s.state.Load().signer
			r := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
			if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			var set token.JWKS
			if err := json.Unmarshal([]byte(r.raw), &set); err != nil {
				t.Fatal(err)
			}
			kids := map[string]bool{}
			keys := map[string]bool{}
			for _, k := range set.Keys {
				kids[k.Kid] = true
				keys[k.X+k.N] = true
				if k.Use != "sig" || k.Alg == "" {
					t.Errorf("entry %+v", k)
				}
			}
			libtrust, _ := token.LibtrustKeyID(signer.PublicKey())
			thumb, _ := token.ThumbprintKeyID(signer.PublicKey())
			if !kids[libtrust] || !kids[thumb] || !kids[signer.KeyID()] {
				t.Fatalf("kids %v lack %s / %s", kids, libtrust, thumb)
			}
			if len(keys) != tc.wantKeys {
				t.Fatalf("%d keys, want %d", len(keys), tc.wantKeys)
			}
			if tc.wantKeys == 2 {
				next, _ := token.LibtrustKeyID(&key.PublicKey)
				if !kids[next] {
					t.Fatalf("next key not published: %v", kids)
				}
				// The next key must not sign yet.
				tok := get(s, "service=registry", "alice", "alicepw").body.Token
				if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return signer.PublicKey(), nil }); err != nil {
					t.Fatalf("token not signed by the current key: %v", err)
				}
			}
			b := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/rootcertbundle.pem", nil))
			if got := strings.Count(b.raw, "BEGIN CERTIFICATE"); b.status != 200 || got != tc.wantKeys {
				t.Fatalf("bundle: %d, %d certificates", b.status, got)
			}
			if r := do(s, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil)); r.status != 405 {
				t.Fatalf("POST jwks: %d", r.status)
			}
		})
	}
}
