package harness

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// dockerAuth is a registry's entry in the config.json `docker login`
// wrote.
type dockerAuth struct {
	User, Password, IdentityToken string
	Raw                           string // the whole file
}

// readDockerAuth reads registry's entry from dir/config.json, failing the
// test when there is none or the credentials are in a helper, not the file.
func readDockerAuth(t testing.TB, dir, registry string) dockerAuth {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatalf("docker login wrote no config.json: %v", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("config.json: %v: %s", err, raw)
	}
	if cfg.CredsStore != "" || len(cfg.CredHelpers) > 0 {
		t.Fatalf("config.json names a credential helper, the credentials are not in the file: %s", raw)
	}
	entry, ok := cfg.Auths[registry]
	if !ok {
		t.Fatalf("config.json has no entry for %s: %s", registry, raw)
	}
	out := dockerAuth{IdentityToken: entry.IdentityToken, Raw: string(raw)}
	if entry.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(entry.Auth)
		if err != nil {
			t.Fatalf("config.json auth is not base64: %v", err)
		}
		out.User, out.Password, _ = strings.Cut(string(dec), ":")
	}
	return out
}

// DockerLoginKeepsPassword runs `docker login -u USER --password-stdin` with
// who's password, a credential for which Gatehouse issues no refresh token
// (a workload identity token, a sign-in credential), by the CLI itself (no
// engine: DOCKER_HOST names a socket that does not exist). Gatehouse must
// answer the CLI's GET (offline_token=true, client_id=docker, Basic) with
// 200 and no refresh token, so config.json keeps the credential as the
// password and no identitytoken; a client reading that file (ggcr's
// keychain, as crane does) then pushes and pulls repo with it.
func DockerLoginKeepsPassword(t *testing.T, e *Env, who Cred, repo string) {
	bin := RequireTool(t, "docker")
	dir := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + dir, "DOCKER_HOST=unix://" + filepath.Join(dir, "no-engine.sock")}
	mark := e.Gatehouse.exchanges.count()
	RunTool(t, bin, env, who.Password+"\n", "login", e.Registry, "-u", who.User, "--password-stdin")
	e.requireTokenRequests(t, mark, "GET /auth?", "offline_token=true", "client_id=docker", `[basic user="`+who.User+`"]`, "(Docker-Client/")
	entry := readDockerAuth(t, dir, e.Registry)
	if entry.IdentityToken != "" {
		t.Fatalf("config.json keeps an identitytoken (no refresh token may be issued for this credential): %s", entry.Raw)
	}
	if entry.User != who.User || entry.Password != who.Password {
		t.Fatalf("config.json keeps user %q and another password than the token", entry.User)
	}
	e.mustPushPull(t, authn.FromConfig(authn.AuthConfig{Username: entry.User, Password: entry.Password}), repo, "ggcr with docker's config.json")
}

// DockerWorkloadLoginRefused runs `docker login` by the CLI with who's
// password, a token Gatehouse must refuse, and fails the test unless the
// login fails and leaves no credentials for the registry.
func DockerWorkloadLoginRefused(t *testing.T, e *Env, who Cred, what string) {
	bin := RequireTool(t, "docker")
	dir := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + dir, "DOCKER_HOST=unix://" + filepath.Join(dir, "no-engine.sock")}
	out := RunToolFails(t, dir, bin, env, who.Password+"\n", "login", e.Registry, "-u", who.User, "--password-stdin")
	if !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("%s: docker login failed without saying unauthorized: %s", what, out)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil && strings.Contains(string(raw), e.Registry) {
		t.Errorf("%s: the refused login left credentials in config.json: %s", what, raw)
	}
}

// pushedDigest finds the digest in `docker push`'s last line
// ("latest: digest: sha256:... size: N").
var pushedDigest = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)

// DockerWorkloadEngine logs the Docker engine in with who's workload
// identity token (the engine asks Gatehouse itself), then loads an image
// into the engine, pushes it to repo:latest with `docker push`, checks with ggcr
// that the registry holds the pushed manifest, removes it from the engine
// and pulls it back with `docker pull`. Without an engine it skips where
// requireEngine does and fails under CI=true.
func DockerWorkloadEngine(t *testing.T, e *Env, who Cred, repo string) {
	testutil.UsesComponent(t, "Docker engine")
	bin := RequireTool(t, "docker")
	version := dockerEngineVersion(bin)
	if version == "" {
		requireEngine(t)
	}
	dir := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + dir}
	docker := func(args ...string) string { t.Helper(); return RunTool(t, bin, env, "", args...) }

	mark := e.Gatehouse.exchanges.count()
	RunTool(t, bin, env, who.Password+"\n", "login", e.Registry, "-u", who.User, "--password-stdin")
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="`+who.User+`"]`, "(docker/"+version+")")
	if entry := readDockerAuth(t, dir, e.Registry); entry.IdentityToken != "" {
		t.Fatalf("config.json keeps an identitytoken for a workload identity: %s", entry.Raw)
	}

	ref := e.Registry + "/" + repo + ":latest"
	archive := filepath.Join(dir, "image.tar")
	writeEngineImage(t, ref, archive)
	docker("load", "--input", archive)
	t.Cleanup(func() { _, _ = runTool("", bin, env, "", "image", "rm", "--force", ref) })

	mark = e.Gatehouse.exchanges.count()
	out := docker("push", ref)
	m := pushedDigest.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("docker push printed no digest: %s", out)
	}
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="`+who.User+`"]`, "(docker/"+version+")")
	d, err := v1.NewHash(m[1])
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Pull(t, who, repo)
	if err != nil || got != d {
		t.Fatalf("ggcr pulling what docker pushed: digest %s (%v), docker pushed %s", got, err, d)
	}

	docker("image", "rm", ref)
	mark = e.Gatehouse.exchanges.count()
	if out := docker("pull", ref); !strings.Contains(out, d.String()) {
		t.Fatalf("docker pull did not pull %s: %s", d, out)
	}
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="`+who.User+`"]`, "(docker/"+version+")")
}

// writeEngineImage writes a docker save-style archive of a small random
// image for this platform (an engine refuses one without os/architecture),
// tagged ref.
func writeEngineImage(t testing.TB, ref, path string) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}
