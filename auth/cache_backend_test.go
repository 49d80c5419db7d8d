package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/authn"
)

// passingOn wraps a real backend so that it answers a wrong password as an
// unknown account, as LDAP with initial_bind_as_user does (the directory
// refuses the bind alike for both): the next authenticator is then asked
// about the same account name. With gone set it knows nobody, as a backend
// from which the account was removed. It counts Authenticate calls.
type passingOn struct {
	authn.Authenticator
	gone  bool
	calls int
}

func (p *passingOn) Knows(account string) bool {
	k, ok := p.Authenticator.(authn.Knower)
	return !p.gone && (!ok || k.Knows(account))
}

func (p *passingOn) Authenticate(ctx context.Context, account, password string) (authn.Account, error) {
	p.calls++
	if p.gone {
		return authn.Account{}, authn.ErrNoMatch
	}
	acct, err := p.Authenticator.Authenticate(ctx, account, password)
	if errors.Is(err, authn.ErrWrongPassword) {
		return authn.Account{}, fmt.Errorf("%w: bind refused", authn.ErrNoMatch)
	}
	return acct, err
}

// sameNameBackends returns a static backend and an htpasswd backend that
// both have an account "alice": static's with password "static-pw" and
// label team: blue, htpasswd's with password "htpasswd-pw" and no labels.
func sameNameBackends(t *testing.T) (static, htpasswd *passingOn) {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	staticHash := hash("static-pw")
	s, err := authn.NewStatic(authn.StaticConfig{"alice": {Password: &staticHash, Labels: authn.Labels{"team": {"blue"}}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("alice:"+hash("htpasswd-pw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := authn.NewHtpasswd(authn.HtpasswdConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return &passingOn{Authenticator: s}, &passingOn{Authenticator: h}
}

// TestCredentialCacheIsPerBackend holds the credential cache's key to the
// authenticator that answered: a success cached for one backend's "alice"
// must never answer for another backend's "alice". If it did, a repeat
// login would be reported as the wrong backend with its labels (and a
// refresh token minted for that backend would carry its account's labels
// on every refresh), and a password one backend accepted would be taken
// for the other's account.
func TestCredentialCacheIsPerBackend(t *testing.T) {
	type step struct {
		name        string
		password    string
		staticGone  bool
		wantBackend string // "": refused with 401
		wantLabels  string
		wantCalls   [2]int // Authenticate calls so far: static, htpasswd
	}
	orders := []struct {
		name        string
		staticFirst bool
		steps       []step
	}{
		{"static first: htpasswd's cached success is not static's", true, []step{
			{"static's alice", "static-pw", false, "static", "map[team:[blue]]", [2]int{1, 0}},
			{"htpasswd's alice, passed on by static", "htpasswd-pw", false, "htpasswd", "map[]", [2]int{2, 1}},
			{"htpasswd's alice again: static asked, htpasswd cached", "htpasswd-pw", false, "htpasswd", "map[]", [2]int{3, 1}},
			{"static's alice again: cached", "static-pw", false, "static", "map[team:[blue]]", [2]int{3, 1}},
			{"static's password once alice left static", "static-pw", true, "", "", [2]int{3, 2}},
			{"htpasswd's alice once alice left static: cached", "htpasswd-pw", true, "htpasswd", "map[]", [2]int{3, 2}},
		}},
		{"htpasswd first: static's cached success is not htpasswd's", false, []step{
			{"htpasswd's alice", "htpasswd-pw", false, "htpasswd", "map[]", [2]int{0, 1}},
			{"static's alice, passed on by htpasswd", "static-pw", false, "static", "map[team:[blue]]", [2]int{1, 2}},
			{"static's alice again: htpasswd asked, static cached", "static-pw", false, "static", "map[team:[blue]]", [2]int{1, 3}},
			{"htpasswd's alice again: cached", "htpasswd-pw", false, "htpasswd", "map[]", [2]int{1, 3}},
		}},
	}
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			static, htpasswd := sameNameBackends(t)
			backends := []authn.Authenticator{static, htpasswd}
			if !o.staticFirst {
				backends = []authn.Authenticator{htpasswd, static}
			}
			c, err := newChain(backends, "r", newMetrics("t"), chainOptions{
				cacheTTL: time.Minute, cacheEntries: 16, checks: 1, checkWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range o.steps {
				static.gone = st.staticGone
				id, e := c.authenticate(context.Background(), creds("alice", st.password))
				switch {
				case st.wantBackend == "" && (e == nil || e.Status != 401):
					t.Fatalf("%s: authenticated as %+v (err %v), want 401", st.name, id, e)
				case st.wantBackend != "" && (e != nil || id.Backend != st.wantBackend || fmt.Sprint(id.Labels) != st.wantLabels):
					t.Fatalf("%s: got backend %q labels %v (err %v), want %q %s", st.name, id.Backend, id.Labels, e, st.wantBackend, st.wantLabels)
				}
				if got := [2]int{static.calls, htpasswd.calls}; got != st.wantCalls {
					t.Fatalf("%s: Authenticate calls (static, htpasswd) %v, want %v", st.name, got, st.wantCalls)
				}
			}
		})
	}
}
