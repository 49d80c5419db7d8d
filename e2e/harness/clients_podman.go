package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// Podman is the podman command (containers/image and containers/storage
// with the vfs driver, in a store of the test's own): `podman login`, a push
// of an image, a pull of it into an emptied store, and a push to bob's
// repository that the registry refuses.
var Podman = MatrixClient{Name: "podman", Run: runPodman}

func runPodman(t *testing.T, e *Env) {
	testutil.UsesComponent(t, "podman")
	bin := RequireTool(t, "podman")
	dir := shortTempDir(t)
	env, global, policy := podmanSandbox(t, dir)
	authFile := filepath.Join(dir, "auth.json")
	podman := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(RunToolIn(t, dir, bin, env, "", append(global, args...)...))
	}
	// The image to push: the OCI layout skopeo copies, read into the store.
	writeOCILayout(t, filepath.Join(dir, "src"))
	id := podman("pull", "--quiet", "--signature-policy", policy, "oci:"+filepath.Join(dir, "src")+":latest")

	mark := e.Gatehouse.exchanges.count()
	RunToolIn(t, dir, bin, env, Alice.Password+"\n", append(global, "login", "--tls-verify=false", "--authfile", authFile,
		"--username", Alice.User, "--password-stdin", e.Registry)...)
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`, "account=alice", "(containers/")
	requireStoredLogin(t, authFile, e.Registry)

	mark = e.Gatehouse.exchanges.count()
	ref := e.Registry + "/alice/podman:latest"
	digestFile := filepath.Join(dir, "digest")
	podman("push", "--signature-policy", policy, "--tls-verify=false", "--authfile", authFile, "--digestfile", digestFile, id, "docker://"+ref)
	pushed := readDigest(t, digestFile, "podman push")
	podman("rmi", "--force", id)
	podman("pull", "--quiet", "--signature-policy", policy, "--tls-verify=false", "--authfile", authFile, ref)
	if got := podman("image", "inspect", "--format", "{{.Digest}}", ref); got != pushed.String() {
		t.Fatalf("podman pulled %s with manifest digest %q, pushed %s", ref, got, pushed)
	}
	e.requireTokenRequests(t, mark, "GET /auth?", `[basic user="alice"]`, "account=alice", "(containers/")
	e.requireManifest(t, Alice, "alice/podman:latest", pushed, "podman push")

	e.requireRefusedPush(t, "podman push to bob's repository", "bob/podman", func() string {
		return RunToolFails(t, dir, bin, env, "", append(global, "push", "--signature-policy", policy, "--tls-verify=false",
			"--authfile", authFile, ref, "docker://"+e.Registry+"/bob/podman:latest")...)
	})
}

// podmanSandbox writes, into dir, the configuration of a podman that uses
// nothing of the machine's: a vfs store, its run root and temporary files
// under dir, no registries to search, a policy accepting any image, no
// credentials but the auth file each command names. It returns the
// environment and the global flags to run podman with, and the policy file
// for --signature-policy (pull and push).
func podmanSandbox(t testing.TB, dir string) (env, global []string, policy string) {
	t.Helper()
	conf := filepath.Join(dir, "containers")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{conf, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	root, runRoot := filepath.Join(dir, "storage"), filepath.Join(dir, "run")
	writeFile(t, filepath.Join(conf, "storage.conf"),
		"[storage]\ndriver = \"vfs\"\ngraphroot = \""+root+"\"\nrunroot = \""+runRoot+"\"\n")
	writeFile(t, filepath.Join(conf, "containers.conf"),
		"[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \""+
			filepath.Join(dir, "events.log")+"\"\ntmp_dir = \""+tmp+"\"\n")
	writeFile(t, filepath.Join(conf, "registries.conf"), "unqualified-search-registries = []\n")
	policy = filepath.Join(conf, "policy.json")
	writeFile(t, policy, `{"default": [{"type": "insecureAcceptAnything"}]}`)
	env = []string{
		"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_RUNTIME_DIR=" + runRoot, "TMPDIR=" + tmp, // HOME keeps ~/.docker/config.json out of reach
		"CONTAINERS_CONF=" + filepath.Join(conf, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(conf, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(conf, "registries.conf"),
	}
	global = []string{"--root", root, "--runroot", runRoot, "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	return env, global, policy
}

// shortTempDir is t.TempDir with a short path: podman refuses a run root
// longer than 50 characters, and t.TempDir's paths carry the test's name.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gh-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing podman's directory: %v", err)
		}
	})
	return dir
}
