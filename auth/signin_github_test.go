package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
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

// fakeGithub serves GitHub's documented OAuth web flow and REST endpoints
// (/login/oauth/authorize, /login/oauth/access_token, /user,
// /orgs/{org}/members/{user}, /user/teams) for one user, checking the
// client secret and PKCE S256.
type fakeGithub struct {
	*httptest.Server
	mu        sync.Mutex
	codes     map[string]string // code → PKCE challenge
	tokens    map[string]bool   // issued access tokens (false: revoked)
	member    bool
	teams     string // /user/teams' answer
	apiCalls  atomic.Int64
	lastState string
	callback  string // the Gatehouse's /github_auth, set once it listens
}

// githubTeams are octocat's teams: backend (in engineering) and ops in
// acme, and one in another organization.
const githubTeams = `[{"slug":"backend","organization":{"login":"acme"},"parent":{"slug":"engineering"}},
	{"slug":"ops","organization":{"login":"ACME"},"parent":null},
	{"slug":"elsewhere","organization":{"login":"other"}}]`

func newFakeGithub(t *testing.T) *fakeGithub {
	f := &fakeGithub{codes: map[string]string{}, tokens: map[string]bool{}, member: true, teams: githubTeams}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "gh-client" || q.Get("code_challenge_method") != "S256" || q.Get("state") == "" {
			http.Error(w, "bad authorize request", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		code := fmt.Sprintf("code-%d", len(f.codes))
		f.codes[code] = q.Get("code_challenge")
		f.lastState = q.Get("state")
		f.mu.Unlock()
		// GitHub redirects to the OAuth app's registered callback URL.
		http.Redirect(w, r, f.callback+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		challenge, ok := f.codes[r.Form.Get("code")]
		delete(f.codes, r.Form.Get("code"))
		sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
		w.Header().Set("Content-Type", "application/json")
		if !ok || r.Form.Get("client_secret") != "gh-secret" || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code"})
			return
		}
		tok := fmt.Sprintf("gho_%d", len(f.tokens))
		f.tokens[tok] = true
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:org"})
	})
	api := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.apiCalls.Add(1)
			f.mu.Lock()
			valid := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
			f.mu.Unlock()
			if !valid {
				http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/user", api(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"login":"octocat","id":583231}`)
	}))
	mux.HandleFunc("GET /api/orgs/acme/members/octocat", api(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.member {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /api/user/teams", api(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, _ = io.WriteString(w, f.teams)
	}))
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGithub) setMember(m bool)      { f.mu.Lock(); f.member = m; f.mu.Unlock() }
func (f *fakeGithub) setTeams(teams string) { f.mu.Lock(); f.teams = teams; f.mu.Unlock() }
func (f *fakeGithub) revokeAll() {
	f.mu.Lock()
	for k := range f.tokens {
		f.tokens[k] = false
	}
	f.mu.Unlock()
}

// newGithubEnv is a Gatehouse with github_auth (organization acme)
// against the fake GitHub.
func newGithubEnv(t *testing.T, f *fakeGithub) *siEnv {
	t.Helper()
	e := newEnv(t, nil)
	e.serve(t, githubSections(f, e))
	return e
}

// githubSections is the github_auth section and the ACL of
// newGithubEnv, whose callback is e's.
func githubSections(f *fakeGithub, e *siEnv) string {
	f.callback = e.base + "/github_auth"
	return fmt.Sprintf(`github_auth:
  organization: acme
  client_id: gh-client
  client_secret: gh-secret
  github_web_uri: %[1]s/
  github_api_uri: %[1]s/api
  revalidate_after: 1m
  level_token_db: {path: /tmp/unused}
acl:
  - match: {labels: {teams: engineering}, name: "eng/*"}
    actions: [push, pull]
`, f.URL)
}

// githubFlow drives / → /github_auth → GitHub → callback with a cookie
// jar and returns the final response and body.
func githubFlow(t *testing.T, e *siEnv) (*http.Response, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// flowCredential runs the configured OAuth flow (githubFlow), which must
// end in a page showing each of want, and returns its credential and the
// page.
func flowCredential(t *testing.T, e *siEnv, want ...string) (cred, page string) {
	t.Helper()
	resp, body := githubFlow(t, e)
	m := credentialRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q: %s", w, body)
		}
	}
	return html.UnescapeString(m[1]), body
}

const ghScope = "service=registry&scope=repository:eng/app:push,pull"

// TestGithubSignIn: the flow gives octocat a credential with her teams in
// acme (parents included, other organizations' left out) that logs in;
// it is revalidated with GitHub after revalidate_after and refused once
// she leaves the organization or the token is revoked.
func TestGithubSignIn(t *testing.T) {
	f := newFakeGithub(t)
	e := newGithubEnv(t, f)
	cred, body := flowCredential(t, e, "octocat", "backend, engineering, ops")
	if strings.Contains(body, "elsewhere") {
		t.Errorf("page shows another organization's team: %s", body)
	}
	login := func(want int, what string) {
		t.Helper()
		if r := get(e.s, ghScope, "octocat", cred); r.status != want || want == http.StatusOK && !strings.Contains(r.raw, "token") {
			t.Fatalf("%s: %d %s, want %d", what, r.status, r.raw, want)
		}
	}
	calls := f.apiCalls.Load()
	login(http.StatusOK, "fresh credential (teams label grants eng/*)")
	if got := f.apiCalls.Load(); got != calls {
		t.Fatalf("GitHub asked %d times within revalidate_after", got-calls)
	}
	if r := get(e.s, ghScope, "someone", cred); r.status != http.StatusUnauthorized {
		t.Fatalf("another user name: %d, want 401", r.status)
	}
	e.advance(2 * time.Minute)
	login(http.StatusOK, "revalidated")
	if got := f.apiCalls.Load(); got == calls {
		t.Fatal("GitHub not asked after revalidate_after")
	}
	f.setMember(false)
	login(http.StatusOK, "left acme, within revalidate_after (cached)")
	e.advance(2 * time.Minute)
	login(http.StatusUnauthorized, "left acme, after revalidate_after")

	f.setMember(true)
	_, body = githubFlow(t, e)
	cred = html.UnescapeString(credentialRE.FindStringSubmatch(body)[1])
	f.revokeAll()
	e.advance(2 * time.Minute)
	login(http.StatusUnauthorized, "token revoked, after revalidate_after")
}

// TestGithubSignInRefused: a non-member gets no credential (403); a
// callback without state, or with GitHub's state but without the
// browser's cookie (login CSRF), is a 400 errcode.
func TestGithubSignInRefused(t *testing.T) {
	f := newFakeGithub(t)
	e := newGithubEnv(t, f)
	f.setMember(false)
	if resp, body := githubFlow(t, e); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code"`) {
		t.Fatalf("non-member: %d %s, want 403 errcode", resp.StatusCode, body)
	}
	f.setMember(true)
	githubFlow(t, e) // an attacker's own flow: a valid state, bound to the attacker's cookie
	f.mu.Lock()
	state := f.lastState
	f.mu.Unlock()
	checkForgedCallbacks(t, e.base+"/github_auth", state)
}

// checkForgedCallbacks: a callback at flow without state, with a forged
// one, or with state (valid, but bound to another browser's cookie) and
// no cookie is a 400 errcode.
func checkForgedCallbacks(t *testing.T, flow, state string) {
	t.Helper()
	for name, q := range map[string]string{
		"no state":                "code=code-9",
		"forged state":            "code=code-9&state=a.9999999999.AAAA",
		"another browser's state": "code=code-9&state=" + url.QueryEscape(state),
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(flow + "?" + q)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"errors"`) {
				t.Fatalf("%d %s, want 400 errcode", resp.StatusCode, body)
			}
		})
	}
}
