package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGitlab serves GitLab's documented OAuth endpoints (/oauth/authorize,
// /oauth/token with authorization_code + PKCE S256 and refresh_token, which
// rotates the refresh token) and REST endpoints (/api/v4/user,
// /api/v4/groups) for one user.
type fakeGitlab struct {
	*httptest.Server
	mu        sync.Mutex
	codes     map[string]string // code → PKCE challenge
	access    map[string]bool   // valid access tokens
	refresh   map[string]bool   // valid refresh tokens
	n         int
	blocked   bool
	groups    string // /api/v4/groups' answer
	refreshes atomic.Int64
	// grants counts the refresh grants asked for, refused ones too; each
	// waits refreshDelay (nanoseconds) first.
	grants       atomic.Int64
	refreshDelay atomic.Int64
	lastState    string
	callback     string
}

func newFakeGitlab(t *testing.T) *fakeGitlab {
	f := &fakeGitlab{codes: map[string]string{}, access: map[string]bool{}, refresh: map[string]bool{},
		groups: `[{"id":1,"full_path":"acme"},{"id":2,"full_path":"acme/platform"}]`}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "gl-client" || q.Get("redirect_uri") != f.callback || q.Get("response_type") != "code" ||
			q.Get("code_challenge_method") != "S256" || q.Get("state") == "" {
			http.Error(w, "bad authorize request", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		code := fmt.Sprintf("code-%d", len(f.codes)+f.n)
		f.codes[code] = q.Get("code_challenge")
		f.lastState = q.Get("state")
		f.mu.Unlock()
		http.Redirect(w, r, f.callback+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("grant_type") == "refresh_token" {
			f.grants.Add(1)
			time.Sleep(time.Duration(f.refreshDelay.Load()))
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fail := func() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		}
		if r.Form.Get("client_id") != "gl-client" || r.Form.Get("client_secret") != "gl-secret" {
			fail()
			return
		}
		switch r.Form.Get("grant_type") {
		case "authorization_code":
			challenge, ok := f.codes[r.Form.Get("code")]
			delete(f.codes, r.Form.Get("code"))
			sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
			if !ok || r.Form.Get("redirect_uri") != f.callback || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
				fail()
				return
			}
		case "refresh_token":
			if !f.refresh[r.Form.Get("refresh_token")] || f.blocked {
				fail()
				return
			}
			delete(f.refresh, r.Form.Get("refresh_token")) // rotated
			f.refreshes.Add(1)
		default:
			fail()
			return
		}
		f.n++
		at, rt := fmt.Sprintf("glat-%d", f.n), fmt.Sprintf("glrt-%d", f.n)
		f.access[at], f.refresh[rt] = true, true
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "token_type": "Bearer", "expires_in": 7200})
	})
	api := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			valid := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
			f.mu.Unlock()
			if !valid {
				http.Error(w, `{"message":"401 Unauthorized"}`, http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, body)
		}
	}
	mux.HandleFunc("GET /api/v4/user", api(`{"id":42,"username":"tanuki","state":"active"}`))
	mux.HandleFunc("GET /api/v4/groups", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("min_access_level") != "10" {
			http.Error(w, "want min_access_level=10", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		groups := f.groups
		f.mu.Unlock()
		api(groups)(w, r)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// newGitlabEnv is a Gatehouse with gitlab_auth against the fake GitLab.
func newGitlabEnv(t *testing.T, f *fakeGitlab) *siEnv {
	t.Helper()
	e := newEnv(t, nil)
	e.serve(t, gitlabSections(f, e))
	return e
}

// gitlabSections is the gitlab_auth section and the ACL of newGitlabEnv,
// whose callback is e's.
func gitlabSections(f *fakeGitlab, e *siEnv) string {
	f.callback = e.base + "/gitlab_auth"
	return fmt.Sprintf(`gitlab_auth:
  client_id: gl-client
  client_secret: gl-secret
  redirect_uri: %[2]s
  grant_type: authorization_code
  gitlab_web_uri: %[1]s/
  revalidate_after: 1m
  token_db: /tmp/unused
acl:
  - match: {labels: {groups: acme/platform}, name: "platform/*"}
    actions: [push, pull]
`, f.URL, f.callback)
}

// signInFlow drives / → the configured flow → provider → callback with a
// cookie jar and returns the final response and body.
func signInFlow(t *testing.T, e *siEnv) (*http.Response, string) {
	t.Helper()
	return githubFlow(t, e)
}

const glScope = "service=registry&scope=repository:platform/app:push,pull"

// TestGitlabSignIn: the flow gives tanuki a credential with her groups'
// full paths as label groups, which an ACL rule grants on; it is
// revalidated with GitLab's refresh-token grant after revalidate_after
// (the rotated refresh token used next) and refused once GitLab refuses.
func TestGitlabSignIn(t *testing.T) {
	f := newFakeGitlab(t)
	e := newGitlabEnv(t, f)
	cred, _ := flowCredential(t, e, "tanuki", "acme, acme/platform")
	login := func(want int, what string) {
		t.Helper()
		r := get(e.s, glScope, "tanuki", cred)
		if r.status != want {
			t.Fatalf("%s: %d %s, want %d", what, r.status, r.raw, want)
		}
		if want != http.StatusOK {
			return
		}
		if g := grants(claimsOf(t, r.body.Token)); g != "repository:platform/app:pull,push" {
			t.Fatalf("%s: groups label granted %q", what, g)
		}
	}
	login(http.StatusOK, "fresh credential (groups label grants platform/*)")
	if n := f.refreshes.Load(); n != 0 {
		t.Fatalf("GitLab refreshed %d times within revalidate_after", n)
	}
	for i := 1; i <= 2; i++ { // the second refresh needs the rotated token
		e.advance(2 * time.Minute)
		login(http.StatusOK, "revalidated")
		if n := f.refreshes.Load(); n != int64(i) {
			t.Fatalf("refreshes after revalidation %d: %d", i, n)
		}
	}
	f.mu.Lock()
	f.blocked = true
	f.mu.Unlock()
	login(http.StatusOK, "blocked, within revalidate_after (cached)")
	e.advance(2 * time.Minute)
	login(http.StatusUnauthorized, "blocked, after revalidate_after")
}

// TestGitlabSignInRefused: a callback without state, with a forged one, or
// with GitLab's state but without the browser's cookie is a 400 errcode.
func TestGitlabSignInRefused(t *testing.T) {
	f := newFakeGitlab(t)
	e := newGitlabEnv(t, f)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/gitlab_auth" {
		t.Fatalf("/: %d %s, want a redirect to /gitlab_auth", resp.StatusCode, resp.Header.Get("Location"))
	}
	signInFlow(t, e) // an attacker's own flow: a valid state, bound to the attacker's cookie
	f.mu.Lock()
	state := f.lastState
	f.mu.Unlock()
	checkForgedCallbacks(t, e.base+"/gitlab_auth", state)
}
