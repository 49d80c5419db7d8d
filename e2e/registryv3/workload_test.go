package registryv3

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/oidctest"
)

// TestWorkloadIdentityPushPull pushes and pulls through registry v3.1.2
// (go-containerregistry, crane's library) with a GitHub Actions-shaped
// OIDC token as the password, verified against a test issuer served over
// HTTPS (discovery and JWKS): the token's repository claim becomes the
// label that grants octo-org/octo-repo/*. The issuer then rotates its key
// and a token under the new kid works at once; a token for another
// audience and one from an issuer not configured are refused by Gatehouse.
func TestWorkloadIdentityPushPull(t *testing.T) {
	const aud = "https://registry.example.com"
	is := oidctest.New(t)
	other := oidctest.New(t)
	e := newWorkloadEnv(t, is, aud)
	job := func() harness.Cred {
		return harness.Cred{User: "ci", Password: is.Sign(t, oidctest.GitHubClaims(is.URL, aud, time.Now()))}
	}
	ci := job()
	d := e.MustPush(t, ci, "octo-org/octo-repo/app")
	e.MustPullDigest(t, ci, "octo-org/octo-repo/app", d)

	_, err := e.Push(t, ci, "other-org/app")
	e.RequireDeniedByRegistry(t, err, "the job pushing another repository's image")

	is.Rotate(t, "ES256")
	time.Sleep(1100 * time.Millisecond) // past jwks_min_refresh
	e.MustPullDigest(t, job(), "octo-org/octo-repo/app", d)

	wrongAud := harness.Cred{User: "ci", Password: is.Sign(t, oidctest.GitHubClaims(is.URL, "https://github.com/octo-org", time.Now()))}
	_, err = e.Pull(t, wrongAud, "octo-org/octo-repo/app")
	e.RequireRejectedByGatehouse(t, err, "a token minted for another audience")
	stranger := harness.Cred{User: "ci", Password: other.Sign(t, oidctest.GitHubClaims(other.URL, aud, time.Now()))}
	_, err = e.Pull(t, stranger, "octo-org/octo-repo/app")
	e.RequireRejectedByGatehouse(t, err, "a token from an issuer not configured")
}

// newWorkloadEnv is registry v3.1.2 behind a Gatehouse trusting is for
// tokens minted for aud, with GitHub's mapping: account
// ci:${claims:repository}, labels repository and ref, owner octo-org
// required; a job on main may push its own repository's images.
func newWorkloadEnv(t *testing.T, is *oidctest.Issuer, aud string) *harness.Env {
	t.Helper()
	return harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		ExtraACL: `  # A CI job on main may push its own repository's images.
  - match: {account: "/^ci:.+/", labels: {ref: refs/heads/main}, name: "${labels:repository}/*"}
    actions: [push, pull]
`,
		ExtraSections: fmt.Sprintf(`workload_identity:
  - issuer: %s
    audience: %s
    ca_file: %s
    account: "ci:${claims:repository}"
    labels: {repository: repository, ref: ref}
    required_claims: {repository_owner: octo-org}
    jwks_min_refresh: 1s
`, is.URL, aud, is.CAFile),
	})
}

// TestWorkloadIdentityDockerLogin: the real docker CLI logs in with a
// GitHub Actions-shaped token as the password (`docker login -u ci
// --password-stdin`), by itself (no engine), and a client reading the
// config.json it wrote pushes and pulls with it; a token from an issuer
// not configured, and one minted for another audience, fail the login.
func TestWorkloadIdentityDockerLogin(t *testing.T) {
	const aud = "https://registry.example.com"
	is, other := oidctest.New(t), oidctest.New(t)
	e := newWorkloadEnv(t, is, aud)
	job := harness.Cred{User: "ci", Password: is.Sign(t, oidctest.GitHubClaims(is.URL, aud, time.Now()))}
	harness.DockerLoginKeepsPassword(t, e, job, "octo-org/octo-repo/docker")
	harness.DockerWorkloadLoginRefused(t, e, harness.Cred{User: "ci", Password: other.Sign(t, oidctest.GitHubClaims(other.URL, aud, time.Now()))},
		"a token from an issuer not configured")
	harness.DockerWorkloadLoginRefused(t, e, harness.Cred{User: "ci", Password: is.Sign(t, oidctest.GitHubClaims(is.URL, "https://github.com/octo-org", time.Now()))},
		"a token minted for another audience")
}

// TestWorkloadIdentityDockerEngine: the Docker engine logs in with the
// token, pushes an image with `docker push` and pulls it back with
// `docker pull`. It needs an engine: skipped where requireEngine skips,
// failed under CI=true when none answers (scripts/test.sh starts one).
func TestWorkloadIdentityDockerEngine(t *testing.T) {
	const aud = "https://registry.example.com"
	is := oidctest.New(t)
	e := newWorkloadEnv(t, is, aud)
	job := harness.Cred{User: "ci", Password: is.Sign(t, oidctest.GitHubClaims(is.URL, aud, time.Now()))}
	harness.DockerWorkloadEngine(t, e, job, "octo-org/octo-repo/engine")
}

// TestWorkloadIdentityContainerdPOST: containerd's authorizer (also
// BuildKit's and, through the CRI, the kubelet's) POSTs grant_type=password
// with the token as the password, scopes joined by spaces and
// access_type=offline; Gatehouse answers 200 without a refresh token (so
// containerd POSTs the token again for each new scope, the way it does for
// a password) and the access token pushes and pulls. containerd's GET
// fallback, Basic "user:token", is harness.DockerWorkloadLogin's and
// TestWorkloadIdentityPushPull's request.
func TestWorkloadIdentityContainerdPOST(t *testing.T) {
	const aud, repo = "https://registry.example.com", "octo-org/octo-repo/containerd"
	is := oidctest.New(t)
	e := newWorkloadEnv(t, is, aud)
	scope := "repository:" + repo + ":pull,push repository:octo-org/octo-repo/base:pull"
	a := e.PostToken(t, url.Values{
		"grant_type": {"password"}, "username": {"ci"}, "password": {is.Sign(t, oidctest.GitHubClaims(is.URL, aud, time.Now()))},
		"service": {harness.Service}, "client_id": {"containerd-client"}, "access_type": {"offline"}, "scope": {scope},
	}).RequireOK(t, "POST grant_type=password with the token")
	if a.Scope != scope {
		t.Errorf("scope = %q, want the granted %q", a.Scope, scope)
	}
	if a.RefreshToken != "" {
		t.Errorf("a refresh token was issued for a workload identity: %s", a.Body)
	}
	tok := authn.FromConfig(authn.AuthConfig{RegistryToken: a.AccessToken})
	d := e.MustPushWith(t, tok, repo, "containerd pushing with the token's access token")
	e.MustPullDigestWith(t, tok, repo, d, "containerd pulling with the token's access token")
}
