package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// The clients of the interop matrix, in column order. Each logs in as alice
// and pushes and pulls a repository of her own, and checks which token
// requests reached Gatehouse.
var (
	// GGCRGet is go-containerregistry with a user name and password: GET
	// with Basic credentials.
	GGCRGet = MatrixClient{Name: "ggcr GET", Run: runGGCRGet}
	// GGCRRefresh is go-containerregistry holding a refresh token from a
	// `docker login`-style GET: it POSTs grant_type=refresh_token.
	GGCRRefresh = MatrixClient{Name: "ggcr POST refresh", Run: runGGCRRefresh}
	// Containerd is containerd's authorizer sequence written out: POST
	// grant_type=password, POST grant_type=refresh_token, then its GET
	// fallback with Basic ":<refresh token>"; the access tokens push and pull.
	Containerd = MatrixClient{Name: "containerd POST", Run: runContainerd}
	// Skopeo is the skopeo command (containers/image): copy with
	// credentials (GET), then with an identity token in its auth file (POST).
	Skopeo = MatrixClient{Name: "skopeo", Run: runSkopeo}
	// DockerLogin is the docker CLI's `docker login` with no engine to
	// answer (the CLI logs in itself), then a push and pull with what it
	// stored.
	DockerLogin = MatrixClient{Name: "docker login", Run: func(t *testing.T, e *Env) { e.DockerLogin(t, Alice, "alice/docker", false) }}
	// DockerLoginEngine is `docker login` performed by the engine; skipped
	// when no engine answers.
	DockerLoginEngine = MatrixClient{Name: "docker login (engine)", Run: func(t *testing.T, e *Env) { e.DockerLogin(t, Alice, "alice/docker", true) }}
)

// MatrixClients are all the columns of the interop matrix.
var MatrixClients = append(append([]MatrixClient{}, TokenClients...), ArtifactClients...)

// TokenClients are the columns that see the tokens' requests from every
// side (password, refresh token, identity token in an auth file): every
// configuration runs them.
var TokenClients = []MatrixClient{GGCRGet, GGCRRefresh, Containerd, Skopeo, DockerLogin, DockerLoginEngine}

// ArtifactClients are helm, oras and podman. They log in with a password and
// relay the registry's tokens without reading them, so a configuration
// differing only in the token header adds nothing for them: the matrix runs
// them with each registry's default header, for every key type.
var ArtifactClients = []MatrixClient{Helm, Oras, Podman}

func runGGCRGet(t *testing.T, e *Env) {
	mark := e.Gatehouse.exchanges.count()
	d := e.MustPush(t, Alice, "alice/ggcr-get")
	e.MustPullDigest(t, Alice, "alice/ggcr-get", d)
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`)
}

func runGGCRRefresh(t *testing.T, e *Env) {
	rt := e.LoginRefreshToken(t, Alice)
	mark := e.Gatehouse.exchanges.count()
	e.mustPushPull(t, authn.FromConfig(authn.AuthConfig{IdentityToken: rt}), "alice/ggcr-refresh", "ggcr with alice's refresh token")
	e.requireTokenRequests(t, mark, "POST /auth", `grant_type=["refresh_token"]`, `client_id=["go-containerregistry"]`, "refresh_token=(set)")
}

func runContainerd(t *testing.T, e *Env) {
	const repo = "alice/containerd"
	mark := e.Gatehouse.exchanges.count()
	// containerd joins the scopes with spaces and asks for offline access
	// when its caller wants a refresh token back.
	scope := "repository:" + repo + ":pull,push repository:alice/base:pull"
	first := e.PostToken(t, url.Values{
		"grant_type": {"password"}, "username": {Alice.User}, "password": {Alice.Password},
		"service": {Service}, "client_id": {"containerd-client"}, "access_type": {"offline"}, "scope": {scope},
	}).RequireOK(t, "POST grant_type=password")
	if first.Scope != scope {
		t.Errorf("POST grant_type=password: scope = %q, want the granted %q", first.Scope, scope)
	}
	if first.RefreshToken == "" {
		t.Fatalf("POST grant_type=password with access_type=offline: no refresh_token: %s", first.Body)
	}
	refreshed := e.PostToken(t, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken},
		"service": {Service}, "client_id": {"containerd-client"}, "scope": {"repository:" + repo + ":pull"},
	}).RequireOK(t, "POST grant_type=refresh_token")
	if refreshed.RefreshToken != "" {
		t.Errorf("POST grant_type=refresh_token without access_type=offline returned a refresh_token: %s", refreshed.Body)
	}
	if j, err := ParseJWT(refreshed.AccessToken); err != nil || j.Claims.Sub != Alice.User {
		t.Errorf("access token from the refresh grant: subject is not alice (%v): %s", err, DescribeToken(refreshed.AccessToken))
	}
	e.requireTokenRequests(t, mark, "POST /auth", `client_id=["containerd-client"]`)

	d := e.MustPushWith(t, registryToken(first.AccessToken), repo, "containerd pushing with the password grant's token")
	e.MustPullDigestWith(t, registryToken(refreshed.AccessToken), repo, d, "containerd pulling with the refresh grant's token")

	// A POST refused with 401 makes containerd retry as GET, with the
	// refresh token as the Basic password of an empty user.
	fallback := e.GetToken(t, url.Values{"service": {Service}, "scope": {"repository:" + repo + ":pull"}},
		&Cred{Password: first.RefreshToken}).RequireOK(t, `GET with Basic ":<refresh token>"`)
	e.MustPullDigestWith(t, registryToken(fallback.AccessToken), repo, d, "pulling with the GET fallback's token")

	// The refresh token is no access token: the registry must refuse it.
	_, err := e.PullWith(t, registryToken(first.RefreshToken), repo)
	e.RequireDeniedByRegistry(t, err, "pulling with the refresh token as a bearer token")
}

func runSkopeo(t *testing.T, e *Env) {
	testutil.UsesComponent(t, "skopeo")
	bin := RequireTool(t, "skopeo")
	dir := t.TempDir()
	want := writeOCILayout(t, filepath.Join(dir, "src"))
	ref := "docker://" + e.Registry + "/alice/skopeo:latest"
	// A home of its own: no auth file or policy of the machine's is read.
	env := []string{"HOME=" + dir, "XDG_RUNTIME_DIR=" + dir, "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "none.json")}
	creds := Alice.User + ":" + Alice.Password
	skopeo := func(what string, args ...string) v1.Hash {
		t.Helper()
		digestFile := filepath.Join(dir, "digest")
		_ = os.Remove(digestFile) // left by the previous copy
		RunTool(t, bin, env, "", append([]string{"--insecure-policy", "copy", "--digestfile", digestFile}, args...)...)
		return readDigest(t, digestFile, what)
	}

	mark := e.Gatehouse.exchanges.count()
	if got := skopeo("skopeo push", "--dest-creds", creds, "--dest-tls-verify=false", "oci:"+filepath.Join(dir, "src")+":latest", ref); got != want {
		t.Fatalf("skopeo pushed manifest %s, the layout holds %s", got, want)
	}
	if got := skopeo("skopeo pull", "--src-creds", creds, "--src-tls-verify=false", ref, "oci:"+filepath.Join(dir, "pulled")+":latest"); got != want {
		t.Fatalf("skopeo pulled manifest %s, pushed %s", got, want)
	}
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`)

	// After `docker login`, containers/image finds an identity token in the
	// auth file and POSTs grant_type=refresh_token (one scope field per
	// resource).
	authFile := filepath.Join(dir, "auth.json")
	writeAuthFile(t, authFile, e.Registry, Alice.User, e.LoginRefreshToken(t, Alice))
	mark = e.Gatehouse.exchanges.count()
	if got := skopeo("skopeo pull with an identity token", "--src-authfile", authFile, "--src-tls-verify=false", ref, "oci:"+filepath.Join(dir, "pulled-rt")+":latest"); got != want {
		t.Fatalf("skopeo pulled manifest %s with the identity token, pushed %s", got, want)
	}
	e.requireTokenRequests(t, mark, "POST /auth", `grant_type=["refresh_token"]`, `client_id=["containers/image"]`)
}

// DockerLogin runs `docker login` as who (by the CLI itself, or by the
// engine when engine is set), checks that config.json keeps an identity
// token and not who's password, and pushes and pulls repo with what it
// stored, as a client reading config.json does.
func (e *Env) DockerLogin(t *testing.T, who Cred, repo string, engine bool) {
	bin := RequireTool(t, "docker")
	dir := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + dir}
	wantAgent := "(Docker-Client/" // the CLI logs in itself
	if engine {
		testutil.UsesComponent(t, "Docker engine")
		version := dockerEngineVersion(bin)
		if version == "" {
			requireEngine(t)
		}
		wantAgent = "(docker/" + version + ")" // the engine asked for the token, not the CLI
	} else {
		env = append(env, "DOCKER_HOST=unix://"+filepath.Join(dir, "no-engine.sock"))
	}
	mark := e.Gatehouse.exchanges.count()
	RunTool(t, bin, env, who.Password+"\n", "login", e.Registry, "-u", who.User, "--password-stdin")
	e.requireTokenRequests(t, mark, "GET /auth?", "offline_token=true", "client_id=docker", fmt.Sprintf(`[basic user=%q]`, who.User), wantAgent)

	// config.json must hold an identity token and no password.
	entry := readDockerAuth(t, dir, e.Registry)
	if entry.IdentityToken == "" {
		t.Errorf("config.json keeps no identitytoken for %s: %s", e.Registry, entry.Raw)
	}
	if entry.Password != "" {
		t.Errorf("config.json keeps a password for %s: %s", e.Registry, entry.Raw)
	}
	if strings.Contains(entry.Raw, who.Password) {
		t.Errorf("config.json contains %s's password: %s", who.Describe(), entry.Raw)
	}
	if t.Failed() {
		return
	}
	// What a client reading config.json (crane, ggcr's keychain) does next.
	mark = e.Gatehouse.exchanges.count()
	e.mustPushPull(t, authn.FromConfig(authn.AuthConfig{Username: entry.User, IdentityToken: entry.IdentityToken}), repo, "ggcr with docker's config.json")
	e.requireTokenRequests(t, mark, "POST /auth", `grant_type=["refresh_token"]`)
}

// LoginRefreshToken gets who a refresh token the way `docker login` does:
// GET with no scope, offline_token=true, client_id=docker, account and
// Basic credentials.
func (e *Env) LoginRefreshToken(t testing.TB, who Cred) string {
	t.Helper()
	a := e.GetToken(t, url.Values{
		"service": {Service}, "offline_token": {"true"}, "client_id": {"docker"}, "account": {who.User},
	}, &who).RequireOK(t, "docker login-style GET as "+who.Describe())
	if a.RefreshToken == "" {
		t.Fatalf("docker login-style GET with offline_token=true: no refresh_token: %s", a.Body)
	}
	return a.RefreshToken
}

// GetToken sends GET realm?q to Gatehouse, with Basic credentials when
// basic is not nil.
func (e *Env) GetToken(t testing.TB, q url.Values, basic *Cred) TokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.Gatehouse.Realm+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if basic != nil {
		req.SetBasicAuth(basic.User, basic.Password)
	}
	return TokenAnswer{TokenResponse: e.exchangeToken(t, req)}
}

// PostToken sends an OAuth2 token request, form, to Gatehouse.
func (e *Env) PostToken(t testing.TB, form url.Values) TokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.Gatehouse.Realm, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return TokenAnswer{TokenResponse: e.exchangeToken(t, req)}
}

// TokenAnswer is a token response and, once RequireOK has read it, its
// fields.
type TokenAnswer struct {
	TokenResponse
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
}

// RequireOK fails the test unless the answer is 200 with a JSON body whose
// access_token equals token, expires_in is at least 60 and issued_at is an
// RFC 3339 time, and returns it decoded.
func (a TokenAnswer) RequireOK(t testing.TB, what string) TokenAnswer {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", what, a.Status, a.Body)
	}
	if err := json.Unmarshal([]byte(a.Body), &a); err != nil {
		t.Fatalf("%s: response is not JSON: %v: %s", what, err, a.Body)
	}
	if a.AccessToken == "" || a.Token != a.AccessToken {
		t.Fatalf("%s: want access_token set and equal to token: %s", what, a.Body)
	}
	if a.ExpiresIn < 60 {
		t.Errorf("%s: expires_in %d, want at least 60", what, a.ExpiresIn)
	}
	if _, err := time.Parse(time.RFC3339, a.IssuedAt); err != nil {
		t.Errorf("%s: issued_at %q is not RFC 3339: %v", what, a.IssuedAt, err)
	}
	return a
}

// MustPushWith pushes a random image to repo with a, failing the test with
// what when the push fails.
func (e *Env) MustPushWith(t testing.TB, a authn.Authenticator, repo, what string) v1.Hash {
	t.Helper()
	d, err := e.PushWith(t, a, repo)
	if err != nil {
		t.Fatalf("%s: pushing %s: %v", what, repo, err)
	}
	return d
}

// MustPullDigestWith pulls repo with a and fails the test unless that
// succeeds with digest want.
func (e *Env) MustPullDigestWith(t testing.TB, a authn.Authenticator, repo string, want v1.Hash, what string) {
	t.Helper()
	got, err := e.PullWith(t, a, repo)
	if err != nil {
		t.Fatalf("%s: pulling %s: %v", what, repo, err)
	}
	if got != want {
		t.Fatalf("%s: pulled %s with digest %s, pushed %s", what, repo, got, want)
	}
}

func (e *Env) mustPushPull(t testing.TB, a authn.Authenticator, repo, what string) {
	t.Helper()
	e.MustPullDigestWith(t, a, repo, e.MustPushWith(t, a, repo, what), what)
}

func registryToken(tok string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{RegistryToken: tok})
}

// requireTokenRequests fails the test unless Gatehouse answered token
// requests since mark (a value of its recorder's count), every one with 200
// and described by a line containing each of wants.
func (e *Env) requireTokenRequests(t testing.TB, mark int, wants ...string) {
	t.Helper()
	lines := e.Gatehouse.exchanges.since(mark)
	if len(lines) == 0 {
		t.Fatalf("no token request reached gatehouse; want one with %q", wants)
	}
	for _, l := range lines {
		ok := answeredOK.MatchString(l)
		for _, w := range wants {
			ok = ok && strings.Contains(l, w)
		}
		if !ok {
			t.Errorf("gatehouse saw %q; want every token request answered 200 and containing %q", l, wants)
		}
	}
}

// answeredOK matches a recorder line of an exchange answered 200.
var answeredOK = regexp.MustCompile(`\) -> 200( |$)`)

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

func (r *recorder) since(mark int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log[min(mark, len(r.log)):]...)
}

// writeOCILayout writes an OCI image layout holding a small random image
// with OCI media types, tagged latest, and returns its manifest digest.
func writeOCILayout(t testing.TB, dir string) v1.Hash {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for range 2 {
		l, err := random.Layer(1024, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeAuthFile writes an auth file as `docker login` leaves it when the
// token server returned a refresh token: the user name without a password
// in "auth", and the identity token.
func writeAuthFile(t testing.TB, path, registry, user, identityToken string) {
	t.Helper()
	entry := map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":")), "identitytoken": identityToken}
	b, err := json.Marshal(map[string]any{"auths": map[string]any{registry: entry}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func readDigest(t testing.TB, path, what string) v1.Hash {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: no digest file: %v", what, err)
	}
	d, err := v1.NewHash(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: digest file: %v", what, err)
	}
	return d
}

var (
	engineOnce    sync.Once
	engineVersion string
)

// dockerEngineVersion is the version of the docker engine the CLI bin
// reaches, or "" when none answers.
func dockerEngineVersion(bin string) string {
	engineOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "version", "--format", "{{.Server.Version}}").Output()
		if err == nil {
			engineVersion = strings.TrimSpace(string(out))
		}
	})
	return engineVersion
}

// requireEngine ends a test that needs a Docker engine when none answers. It
// skips when scripts/test.sh tried to start one and could not (it puts the
// reason in GATEHOUSE_DOCKER_ENGINE_UNAVAILABLE and prints the daemon's log),
// fails under CI=true otherwise, and skips outside CI.
func requireEngine(t testing.TB) {
	t.Helper()
	if why := os.Getenv("GATEHOUSE_DOCKER_ENGINE_UNAVAILABLE"); why != "" {
		t.Skipf("no docker engine: scripts/test.sh could not start one: %s", why)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no docker engine answers 'docker version' (CI=true; scripts/test.sh starts one)")
	}
	t.Skip("no docker engine answers (scripts/test.sh starts one when none runs)")
}
