package registryv3

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/commands"
)

// tokenSections turns access tokens on in the e2e configuration.
const tokenSections = "access_tokens:\n  max_ttl: 30d\n"

// createToken mints an access token as an operator does, with gatehouse
// token create on the environment's configuration file.
func createToken(t *testing.T, e *harness.Env, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	args = append([]string{"create", e.Gatehouse.ConfigPath, "--ttl", "1d"}, args...)
	if code := commands.Token(args, &out, &errs); code != 0 {
		t.Fatalf("gatehouse token %s: exit %d: %s", strings.Join(args, " "), code, errs.String())
	}
	return strings.TrimSpace(out.String())
}

// TestAccessTokenPushPull pushes and pulls through registry v3.1.2 with an
// access token as the password of alice (go-containerregistry, as crane
// does), and shows what it grants is the intersection of its patterns and
// alice's ACL: outside its patterns, beyond its actions or beyond alice's
// rights the registry refuses; the token is no registry token, and another
// user name is refused by Gatehouse.
func TestAccessTokenPushPull(t *testing.T) {
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{ExtraSections: tokenSections})
	ci := createToken(t, e, "--owner", "alice", "--name", "ci", "--scope", "repository:alice/ci-*:pull,push", "--scope", "repository:alice/base:pull")
	wide := createToken(t, e, "--owner", "alice", "--name", "wide", "--scope", "repository:*:*")
	asAlice := harness.Cred{User: harness.Alice.User, Password: ci}

	d := e.MustPush(t, asAlice, "alice/ci-app")
	e.MustPullDigest(t, asAlice, "alice/ci-app", d)

	base := e.MustPush(t, harness.Alice, "alice/base") // with her password
	e.MustPullDigest(t, asAlice, "alice/base", base)
	_, err := e.Push(t, asAlice, "alice/base")
	e.RequireDeniedByRegistry(t, err, "pushing alice/base with a token that may only pull it")
	_, err = e.Push(t, asAlice, "alice/other")
	e.RequireDeniedByRegistry(t, err, "pushing alice/other, outside the token's patterns")

	bobs := e.MustPush(t, harness.Bob, "bob/app")
	_, err = e.Pull(t, harness.Cred{User: harness.Alice.User, Password: wide}, "bob/app")
	e.RequireDeniedByRegistry(t, err, "pulling bob/app with alice's token for everything (her ACL does not grant it)")
	e.MustPullDigest(t, harness.Bob, "bob/app", bobs)

	_, err = e.PullWith(t, authn.FromConfig(authn.AuthConfig{RegistryToken: ci}), "alice/ci-app")
	e.RequireDeniedByRegistry(t, err, "the access token as a registry bearer token")
	_, err = e.Pull(t, harness.Cred{User: harness.Bob.User, Password: ci}, "alice/ci-app")
	e.RequireRejectedByGatehouse(t, err, "alice's token with the user name bob")
}

// TestAccessTokenDockerLogin logs in with the docker CLI (no engine: the
// CLI asks for the token itself) using an access token as the password:
// config.json keeps the refresh token issued to that login, never the
// access token, and a push and pull with it stay within the token's
// patterns.
func TestAccessTokenDockerLogin(t *testing.T) {
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{ExtraSections: tokenSections})
	raw := createToken(t, e, "--owner", "alice", "--name", "docker", "--scope", "repository:alice/docker:pull,push")
	e.DockerLogin(t, harness.Cred{User: harness.Alice.User, Password: raw}, "alice/docker", false)
}

// TestAccessTokenDockerEngineLogin is the same login made by the Docker
// engine (the engine asks for the token); it runs wherever an engine
// answers, which scripts/test.sh arranges in CI.
func TestAccessTokenDockerEngineLogin(t *testing.T) {
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{ExtraSections: tokenSections})
	raw := createToken(t, e, "--owner", "alice", "--name", "engine", "--scope", "repository:alice/docker:pull,push")
	e.DockerLogin(t, harness.Cred{User: harness.Alice.User, Password: raw}, "alice/docker", true)
}
