package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/oidctest"
)

// TestSignInLabelsRevalidated: a person removed at the provider from the
// team or group whose label an ACL rule grants on keeps the grant until
// revalidate_after has passed, and loses it (still logging in, with the
// provider's new labels) at the next revalidation: GitHub's teams,
// GitLab's groups, and an OIDC groups claim from the refreshed ID token
// or, when the refresh gives none, from userinfo.
func TestSignInLabelsRevalidated(t *testing.T) {
	tests := []struct {
		name, user, scope, granted string
		// signIn builds the env, signs in and returns the credential and
		// a function that removes the person from the granting team.
		signIn func(t *testing.T) (e *siEnv, cred string, remove func())
	}{
		{"github_auth teams", "octocat", ghScope, "repository:eng/app:pull,push", func(t *testing.T) (*siEnv, string, func()) {
			f := newFakeGithub(t)
			e := newGithubEnv(t, f)
			cred, _ := flowCredential(t, e, "backend, engineering, ops")
			// Out of backend, and so of its parent engineering.
			return e, cred, func() { f.setTeams(`[{"slug":"ops","organization":{"login":"acme"}}]`) }
		}},
		{"gitlab_auth groups", "tanuki", glScope, "repository:platform/app:pull,push", func(t *testing.T) (*siEnv, string, func()) {
			f := newFakeGitlab(t)
			e := newGitlabEnv(t, f)
			cred, _ := flowCredential(t, e, "acme, acme/platform")
			return e, cred, func() {
				f.mu.Lock()
				f.groups = `[{"id":1,"full_path":"acme"}]`
				f.mu.Unlock()
			}
		}},
		{"oidc_auth groups claim, refreshed ID token", "dana@example.com", siScope, "repository:devs/app:pull,push", func(t *testing.T) (*siEnv, string, func()) {
			is := oidctest.New(t)
			e := newSIEnv(t, is, "gatehouse")
			return e, e.signIn(t, "dana", "dana-pw"), func() { removeFromDevs(is) }
		}},
		{"oidc_auth groups claim, userinfo (no refreshed ID token)", "dana@example.com", siScope, "repository:devs/app:pull,push", func(t *testing.T) (*siEnv, string, func()) {
			is := oidctest.New(t)
			is.OmitRefreshIDToken(true)
			e := newSIEnv(t, is, "gatehouse")
			return e, e.signIn(t, "dana", "dana-pw"), func() { removeFromDevs(is) }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, cred, remove := tc.signIn(t)
			login := func(want, what string) {
				t.Helper()
				r := get(e.s, tc.scope, tc.user, cred)
				if r.status != http.StatusOK {
					t.Fatalf("%s: %d %s, want 200", what, r.status, r.raw)
				}
				if g := grants(claimsOf(t, r.body.Token)); g != want {
					t.Fatalf("%s: granted %q, want %q", what, g, want)
				}
			}
			login(tc.granted, "signed in")
			e.advance(2 * time.Minute)
			login(tc.granted, "revalidated, still in the team")
			remove()
			login(tc.granted, "removed, within revalidate_after (cached)")
			e.advance(2 * time.Minute)
			denied := strings.TrimSuffix(tc.granted, "pull,push") // the scope, no actions
			login(denied, "removed, after revalidate_after")
			login(denied, "removed, revalidated just now")
		})
	}
}

// removeFromDevs replaces dana at the provider with her groups less devs.
func removeFromDevs(is *oidctest.Issuer) {
	is.AddUser(oidctest.User{Name: "dana", Password: "dana-pw",
		Claims: map[string]any{"email": "dana@example.com", "groups": []string{"ops"}}})
}
