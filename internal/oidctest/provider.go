package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Client is an OAuth client registered with the issuer's authorization
// server.
type Client struct {
	ID, Secret  string
	RedirectURI string
}

// User is a person who can sign in at the issuer's login form.
type User struct {
	Name, Password string
	// Claims go into the ID token besides iss, sub, aud, iat, exp, nonce.
	Claims map[string]any
}

// authServer is the issuer's authorization endpoint (a login form) and
// token endpoint (authorization_code with PKCE S256, refresh_token).
type authServer struct {
	is        *Issuer
	mu        sync.Mutex
	clients   map[string]Client
	users     map[string]User
	codes     map[string]grant // one use each
	refreshes map[string]string
	access    map[string]string // access token → user, for userinfo
	Refreshes atomic.Int64      // refresh grants answered
	// noRefreshIDToken: refresh grants are answered without an ID token,
	// which OpenID Connect allows (the claims are then userinfo's).
	noRefreshIDToken atomic.Bool
}

type grant struct {
	client, redirect, challenge, nonce, user string
	expires                                  time.Time
}

func newAuthServer(is *Issuer) *authServer {
	return &authServer{is: is, clients: map[string]Client{}, users: map[string]User{},
		codes: map[string]grant{}, refreshes: map[string]string{}, access: map[string]string{}}
}

// AddClient registers an OAuth client.
func (is *Issuer) AddClient(c Client) {
	is.auth.mu.Lock()
	defer is.auth.mu.Unlock()
	is.auth.clients[c.ID] = c
}

// AddUser adds (or replaces) a user; its sub is its name.
func (is *Issuer) AddUser(u User) {
	is.auth.mu.Lock()
	defer is.auth.mu.Unlock()
	is.auth.users[u.Name] = u
}

// RemoveUser removes a user: its refresh tokens stop working.
func (is *Issuer) RemoveUser(name string) {
	is.auth.mu.Lock()
	defer is.auth.mu.Unlock()
	delete(is.auth.users, name)
}

// OmitRefreshIDToken makes refresh grants answer without (omit true) or
// with an ID token.
func (is *Issuer) OmitRefreshIDToken(omit bool) { is.auth.noRefreshIDToken.Store(omit) }

// RefreshGrants returns how many refresh grants were answered with tokens.
func (is *Issuer) RefreshGrants() int64 { return is.auth.Refreshes.Load() }

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider sign-in</title></head>
<body><main><h1>Sign in to the test provider</h1>
<form method="post" action="/authorize">
{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<label for="username">User name</label> <input id="username" name="username" autocomplete="username">
<label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password">
<button id="submit" type="submit">Sign in</button>
</form></main></body></html>`))

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize shows the login form (GET) and, on a right password (POST),
// redirects to the client's redirect URI with a code and the state.
func (a *authServer) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.Form
	a.mu.Lock()
	c, ok := a.clients[f.Get("client_id")]
	a.mu.Unlock()
	if !ok || f.Get("redirect_uri") != c.RedirectURI || f.Get("response_type") != "code" {
		http.Error(w, "unknown client, redirect_uri or response_type", http.StatusBadRequest)
		return
	}
	if f.Get("code_challenge_method") != "S256" || f.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 is required", http.StatusBadRequest)
		return
	}
	keep := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
		keep[k] = f.Get(k)
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = loginForm.Execute(w, keep)
		return
	}
	a.mu.Lock()
	u, ok := a.users[f.Get("username")]
	a.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(f.Get("password"))) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginForm.Execute(w, keep)
		return
	}
	code := random()
	a.mu.Lock()
	a.codes[code] = grant{client: c.ID, redirect: c.RedirectURI, challenge: f.Get("code_challenge"),
		nonce: f.Get("nonce"), user: u.Name, expires: time.Now().Add(time.Minute)}
	a.mu.Unlock()
	q := url.Values{"code": {code}}
	if s := f.Get("state"); s != "" {
		q.Set("state", s)
	}
	http.Redirect(w, r, c.RedirectURI+"?"+q.Encode(), http.StatusFound)
}

// token answers the authorization_code (with the PKCE verifier) and
// refresh_token grants with an ID token and a new refresh token.
func (a *authServer) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		fail("invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, known := a.clients[id]
	if !known || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		fail("invalid_client")
		return
	}
	var user, nonce string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g, ok := a.codes[r.PostForm.Get("code")]
		delete(a.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || g.client != id || g.redirect != r.PostForm.Get("redirect_uri") || time.Now().After(g.expires) ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			fail("invalid_grant")
			return
		}
		user, nonce = g.user, g.nonce
	case "refresh_token":
		u, ok := a.refreshes[r.PostForm.Get("refresh_token")]
		delete(a.refreshes, r.PostForm.Get("refresh_token")) // rotated
		if !ok {
			fail("invalid_grant")
			return
		}
		user = u
	default:
		fail("unsupported_grant_type")
		return
	}
	u, ok := a.users[user]
	if !ok {
		fail("invalid_grant") // removed since
		return
	}
	if r.PostForm.Get("grant_type") == "refresh_token" {
		a.Refreshes.Add(1)
	}
	now := time.Now()
	claims := map[string]any{"iss": a.is.URL, "sub": u.Name, "aud": id, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	maps.Copy(claims, u.Claims)
	rt, at := random(), random()
	a.refreshes[rt] = u.Name
	a.access[at] = u.Name
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt}
	if r.PostForm.Get("grant_type") != "refresh_token" || !a.noRefreshIDToken.Load() {
		out["id_token"] = SignWith(noT{}, a.is.SigningKey(), claims)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// userinfo answers an access token the token endpoint issued with the
// user's sub and claims; a removed user's token is a 401.
func (a *authServer) userinfo(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	u, ok := a.users[a.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]]
	a.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	claims := map[string]any{"sub": u.Name}
	maps.Copy(claims, u.Claims)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(claims)
}

// noT is a testing.TB for signing inside a handler, where a failure
// cannot stop the test; signing with a generated key does not fail.
type noT struct{ testing.TB }

func (noT) Helper()               {}
func (noT) Fatal(args ...any)     { panic(args) }
func (noT) Fatalf(string, ...any) { panic("oidctest: signing failed") }
