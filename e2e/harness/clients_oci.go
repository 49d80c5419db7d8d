package harness

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// The command-line clients of OCI artifacts in the interop matrix. Both
// push to a nested path of alice's namespace (alice/charts/mychart), which
// nestedPathsACL grants her.
var (
	// Helm is helm v4's OCI support: `helm registry login`, `helm push` of
	// a chart to oci://HOST/alice/charts, `helm pull` of it, and a push to
	// bob's path that the registry refuses.
	Helm = MatrixClient{Name: "helm", Run: runHelm}
	// Oras is the oras CLI: login, push of a file as an artifact, pull of
	// it, and a push to bob's path that the registry refuses.
	Oras = MatrixClient{Name: "oras", Run: runOras}
)

// nestedPathsACL is the rule the matrix adds to the seed policy: every user
// has full access to the nested paths of their namespace (alice/charts/x),
// which the seed's `${account}/*` does not match and a `**` path segment
// does (docs/configuration.md).
const nestedPathsACL = `  # Users have full right on the nested paths of their namespace (helm, oras).
  - match: {account: "/.+/", name: "${account}/**"}
    actions: ["*"]
`

// chartName and chartVersion are the chart runHelm packages: helm pushes
// it as the repository <path>/mychart, tag 0.1.0.
const (
	chartName    = "mychart"
	chartVersion = "0.1.0"
)

func runHelm(t *testing.T, e *Env) {
	testutil.UsesComponent(t, "helm")
	bin := RequireTool(t, "helm")
	dir := t.TempDir()
	registryConfig := filepath.Join(dir, "registry.json")
	// A home of its own: no configuration, cache or credentials of the
	// machine's (nor docker's, which helm falls back to) is read.
	env := []string{
		"HOME=" + dir, "HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"), "HELM_DATA_HOME=" + filepath.Join(dir, "data"),
		"HELM_REGISTRY_CONFIG=" + registryConfig, "DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
	}
	helm := func(args ...string) string {
		t.Helper()
		return RunToolIn(t, dir, bin, env, "", args...)
	}
	writeChart(t, filepath.Join(dir, chartName))
	helm("package", chartName, "--destination", "packaged")
	pkg := filepath.Join(dir, "packaged", chartName+"-"+chartVersion+".tgz")

	mark := e.Gatehouse.exchanges.count()
	RunToolIn(t, dir, bin, env, Alice.Password+"\n", "registry", "login", e.Registry, "--username", Alice.User, "--password-stdin", "--plain-http")
	// helm's login tries OAuth2's password grant (oras-go's client);
	// push and pull GET with Basic credentials.
	e.requireTokenRequests(t, mark, "POST /auth", `grant_type=["password"]`, `client_id=["oras-go"]`, `username=["alice"]`, "(Helm/")
	requireStoredLogin(t, registryConfig, e.Registry)

	mark = e.Gatehouse.exchanges.count()
	out := helm("push", pkg, "oci://"+e.Registry+"/alice/charts", "--plain-http")
	repo := "alice/charts/" + chartName
	pushed := toolDigest(t, out, "helm push")
	pulled := filepath.Join(dir, "pulled")
	if err := os.Mkdir(pulled, 0o700); err != nil { // helm pull does not create it
		t.Fatal(err)
	}
	helm("pull", "oci://"+e.Registry+"/"+repo, "--version", chartVersion, "--destination", pulled, "--plain-http")
	requireSameFile(t, pkg, filepath.Join(pulled, filepath.Base(pkg)), "helm pull of the pushed chart")
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`, "(Helm/")
	e.requireManifest(t, Alice, repo+":"+chartVersion, pushed, "helm push")

	e.requireRefusedPush(t, "helm push to bob's path", "bob/charts/"+chartName, func() string {
		return RunToolFails(t, dir, bin, env, "", "push", pkg, "oci://"+e.Registry+"/bob/charts", "--plain-http")
	})
}

func runOras(t *testing.T, e *Env) {
	testutil.UsesComponent(t, "oras")
	bin := RequireTool(t, "oras")
	dir := t.TempDir()
	registryConfig := filepath.Join(dir, "registry.json")
	env := []string{"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, "docker"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	oras := func(args ...string) string {
		t.Helper()
		return RunToolIn(t, dir, bin, env, "", append(args, "--registry-config", registryConfig, "--plain-http")...)
	}
	const file, artifactType = "hello.txt", "application/vnd.gatehouse.e2e"
	writeFile(t, filepath.Join(dir, file), "hello from alice\n")

	mark := e.Gatehouse.exchanges.count()
	RunToolIn(t, dir, bin, env, Alice.Password+"\n", "login", e.Registry, "--username", Alice.User, "--password-stdin",
		"--registry-config", registryConfig, "--plain-http")
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`, "(oras/")
	requireStoredLogin(t, registryConfig, e.Registry)

	mark = e.Gatehouse.exchanges.count()
	const repo = "alice/artifacts/hello"
	out := oras("push", e.Registry+"/"+repo+":v1", "--artifact-type", artifactType, file+":text/plain")
	pushed := toolDigest(t, out, "oras push")
	oras("pull", e.Registry+"/"+repo+":v1", "--output", "pulled")
	requireSameFile(t, filepath.Join(dir, file), filepath.Join(dir, "pulled", file), "oras pull of the pushed artifact")
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`, "(oras/")
	e.requireManifest(t, Alice, repo+":v1", pushed, "oras push")

	e.requireRefusedPush(t, "oras push to bob's path", "bob/artifacts/hello", func() string {
		return RunToolFails(t, dir, bin, env, "", "push", e.Registry+"/bob/artifacts/hello:v1", "--artifact-type", artifactType,
			file+":text/plain", "--registry-config", registryConfig, "--plain-http")
	})
}

// writeChart writes a minimal chart, one ConfigMap, into dir.
func writeChart(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: "+chartName+"\nversion: "+chartVersion+"\ntype: application\n")
	writeFile(t, filepath.Join(dir, "values.yaml"), "greeting: hello\n")
	writeFile(t, filepath.Join(dir, "templates", "configmap.yaml"),
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n")
}

// requireStoredLogin fails the test unless the docker-style credentials
// file path has an entry for registry after a login.
func requireStoredLogin(t testing.TB, path, registry string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the login stored no credentials file: %v", err)
	}
	if !strings.Contains(string(raw), `"`+registry+`"`) {
		t.Fatalf("%s has no entry for %s after the login: %s", path, registry, raw)
	}
}

// toolDigestLine is the "Digest: sha256:..." line helm and oras print after
// a push.
var toolDigestLine = regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})\s*$`)

// toolDigest returns the manifest digest a push printed.
func toolDigest(t testing.TB, out, what string) v1.Hash {
	t.Helper()
	m := toolDigestLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no manifest digest:\n%s", what, out)
	}
	h, err := v1.NewHash(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// requireManifest fails the test unless the registry, asked by
// go-containerregistry as who, has the manifest ref (repo:tag) with digest
// want.
func (e *Env) requireManifest(t testing.TB, who Cred, ref string, want v1.Hash, what string) {
	t.Helper()
	r, err := name.ParseReference(e.Registry + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	_, opts := e.options(t, who)
	d, err := remote.Head(r, opts...)
	if err != nil {
		t.Fatalf("%s: the registry has no manifest %s for %s: %v", what, ref, who.Describe(), err)
	}
	if d.Digest != want {
		t.Fatalf("%s: the registry's %s is %s, the client pushed %s", what, ref, d.Digest, want)
	}
}

// requireSameFile fails the test unless the files got and want have the
// same contents.
func requireSameFile(t testing.TB, want, got, what string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("%s: %s (%d bytes) differs from %s (%d bytes)", what, got, len(g), want, len(w))
	}
}

// requireRefusedPush runs push, a client's push to repo that must fail, and
// fails the test unless Gatehouse answered the client's token requests for
// repo with 200 (a token without push), the registry refused it with 401 or
// 403, and repo did not appear in the registry.
func (e *Env) requireRefusedPush(t testing.TB, what, repo string, push func() string) {
	t.Helper()
	mark, regMark := e.Gatehouse.exchanges.count(), e.registryLog.count()
	out := push()
	e.requireTokenRequests(t, mark, "/auth")
	asked := false
	for _, l := range e.Gatehouse.exchanges.since(mark) {
		asked = asked || strings.Contains(l, "repository:"+repo+":") || strings.Contains(l, url.QueryEscape("repository:"+repo+":"))
	}
	if !asked {
		t.Errorf("%s: no token request for %s reached gatehouse: %q", what, repo, e.Gatehouse.exchanges.since(mark))
	}
	refused := false
	for _, l := range e.registryLog.since(regMark) {
		if !strings.Contains(l, " /v2/"+repo+"/") {
			continue
		}
		refused = refused || answered401or403.MatchString(l)
		if m, _, _ := strings.Cut(l, " "); m != "GET" && m != "HEAD" && answered2xx.MatchString(l) {
			t.Errorf("%s: the registry accepted %q", what, l)
		}
	}
	if !refused {
		t.Errorf("%s: the registry refused no request on %s with 401 or 403: %q\nclient output:\n%s", what, repo, e.registryLog.since(regMark), out)
	}
	repos, err := e.Catalog(t, Admin)
	if err != nil {
		t.Fatalf("%s: admin listing the catalog: %v", what, err)
	}
	if slices.Contains(repos, repo) {
		t.Errorf("%s: %s is in the registry's catalog: %q", what, repo, repos)
	}
}

// answered2xx and answered401or403 match recorder lines of exchanges
// answered 2xx, and 401 or 403.
var (
	answered2xx      = regexp.MustCompile(`\) -> 2\d\d( |$)`)
	answered401or403 = regexp.MustCompile(`\) -> 40[13]( |$)`)
)
