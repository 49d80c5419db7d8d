// Package helm holds the test of the Helm chart in deploy/helm/gatehouse:
// `helm lint`, `helm template` with several value sets, and a check of the
// rendered manifests: each decoded strictly into its k8s.io/api type
// (schema_test.go; kubeconform needs schemas from the network, which the
// test machines do not have), then required fields, selectors that match,
// probes, the security context, the mounts, and the rendered
// auth_config.yml decoded by Gatehouse's own strict loader.
package helm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// helmBin finds helm (scripts/test.sh builds it into Go's bin directory).
func helmBin(t *testing.T) string {
	t.Helper()
	testutil.UsesComponent(t, "helm")
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	for _, dir := range strings.Fields(string(out)) {
		for _, p := range []string{filepath.Join(dir, "helm"), filepath.Join(dir, "bin", "helm")} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("helm not found (scripts/test.sh builds it)")
	}
	t.Skip("helm not found (scripts/test.sh builds it)")
	return ""
}

const key = "signingKey.certificate=CERT,signingKey.key=KEY"

// render runs helm template with --set values; err is helm's failure.
func render(t *testing.T, helm string, set ...string) ([]map[string]any, error) {
	t.Helper()
	args := []string{"template", "gh", "gatehouse"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(stderr.String())
	}
	checkSchema(t, out)
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, out)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

func TestChartLint(t *testing.T) {
	helm := helmBin(t)
	for _, set := range []string{key, key + ",throttleStore.enabled=true,throttleStore.addrs={valkey:6379}"} {
		if out, err := exec.Command(helm, "lint", "--strict", "gatehouse", "--set", set).CombinedOutput(); err != nil {
			t.Fatalf("helm lint --set %s: %v\n%s", set, err, out)
		}
	}
}

func TestChartRenders(t *testing.T) {
	helm := helmBin(t)
	tests := []struct {
		name   string
		set    []string
		mounts []string // extra mount paths the pod must have
		store  bool
	}{
		{"defaults", []string{key}, nil, false},
		{"shared throttle store with a password", []string{key, "throttleStore.enabled=true", "throttleStore.addrs={valkey-0:6379,valkey-1:6379}",
			"throttleStore.passwordSecret.name=valkey"}, []string{"/secrets/throttle-store"}, true},
		{"key rotation and a refresh secret", []string{key, "signingKey.next.certificate=N", "signingKey.next.key=NK",
			"refreshSecret.value=0123456789abcdef0123456789abcdef"}, []string{"/secrets/token-next", "/secrets/refresh"}, false},
		{"existing secrets and a ServiceMonitor", []string{"signingKey.existingSecret=keys", "metrics.serviceMonitor.enabled=true", "replicaCount=3"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := render(t, helm, tc.set...)
			if err != nil {
				t.Fatal(err)
			}
			byKind := map[string][]map[string]any{}
			for _, d := range docs {
				for _, f := range []string{"apiVersion", "kind"} {
					if s, _ := d[f].(string); s == "" {
						t.Fatalf("a document without %s: %v", f, d)
					}
				}
				if str(d, "metadata", "name") == "" {
					t.Fatalf("%s without metadata.name", d["kind"])
				}
				byKind[d["kind"].(string)] = append(byKind[d["kind"].(string)], d)
			}
			for _, k := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} {
				if len(byKind[k]) != 1 {
					t.Fatalf("%d %s, want 1", len(byKind[k]), k)
				}
			}
			checkDeployment(t, byKind, tc.mounts)
			checkConfig(t, byKind["ConfigMap"][0], tc.store)
			if slices.Contains(tc.set, "metrics.serviceMonitor.enabled=true") != (len(byKind["ServiceMonitor"]) == 1) {
				t.Fatalf("%d ServiceMonitor", len(byKind["ServiceMonitor"]))
			}
		})
	}
}

func TestChartRefuses(t *testing.T) {
	helm := helmBin(t)
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"one replica", []string{key, "replicaCount=1"}, "replicaCount: at least 2"},
		{"no signing key", nil, "signingKey"},
		{"a store without an address", []string{key, "throttleStore.enabled=true"}, "throttleStore.addrs"},
		{"a short refresh secret", []string{key, "refreshSecret.value=short"}, "at least 32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, helm, tc.set...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one about %q", err, tc.want)
			}
		})
	}
}

func checkDeployment(t *testing.T, byKind map[string][]map[string]any, mounts []string) {
	t.Helper()
	d := byKind["Deployment"][0]
	if n, _ := get(d, "spec", "replicas").(int); n < 2 {
		t.Fatalf("replicas %v, want at least 2", get(d, "spec", "replicas"))
	}
	podLabels := get(d, "spec", "template", "metadata", "labels").(map[string]any)
	for _, sel := range []any{get(d, "spec", "selector", "matchLabels"), get(byKind["Service"][0], "spec", "selector"),
		get(byKind["PodDisruptionBudget"][0], "spec", "selector", "matchLabels")} {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Fatal("an empty selector")
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Fatalf("selector %v does not match the pod's labels %v", m, podLabels)
			}
		}
	}
	pod := get(d, "spec", "template", "spec").(map[string]any)
	if get(pod, "securityContext", "runAsNonRoot") != true || get(pod, "securityContext", "runAsUser") != 65534 {
		t.Fatalf("pod securityContext %v", pod["securityContext"])
	}
	cs := pod["containers"].([]any)
	c := cs[0].(map[string]any)
	if str(c, "image") == "" || get(c, "resources", "requests", "cpu") == nil || get(c, "resources", "limits", "memory") == nil {
		t.Fatalf("container image or resources missing: %v", c)
	}
	sc := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsUser"] != 65534 {
		t.Fatalf("container securityContext %v", sc)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if str(c, probe, "httpGet", "path") != path || str(c, probe, "httpGet", "port") != str(c["ports"].([]any)[0].(map[string]any), "name") {
			t.Fatalf("%s %v, want %s on the named port", probe, c[probe], path)
		}
	}
	if tp := get(byKind["Service"][0], "spec", "ports").([]any)[0].(map[string]any)["targetPort"]; tp != "http" {
		t.Fatalf("service targetPort %v", tp)
	}
	volumes := map[string]map[string]any{}
	for _, v := range pod["volumes"].([]any) {
		volumes[str(v.(map[string]any), "name")] = v.(map[string]any)
	}
	var paths []string
	for _, m := range c["volumeMounts"].([]any) {
		mm := m.(map[string]any)
		if volumes[str(mm, "name")] == nil {
			t.Fatalf("mount %v names no volume", mm)
		}
		paths = append(paths, str(mm, "mountPath"))
	}
	for _, p := range append([]string{"/config", "/secrets/token"}, mounts...) {
		if !slices.Contains(paths, p) {
			t.Fatalf("no mount at %s (mounts %v)", p, paths)
		}
	}
	made := map[string]bool{}
	for _, k := range []string{"Secret", "ConfigMap"} {
		for _, o := range byKind[k] {
			made[str(o, "metadata", "name")] = true
		}
	}
	if cm := str(volumes["config"], "configMap", "name"); !made[cm] {
		t.Fatalf("the config volume names %q, not rendered", cm)
	}
	if s := str(volumes["token"], "secret", "secretName"); !made[s] && s != "keys" {
		t.Fatalf("the token volume names %q, neither rendered nor the existing Secret", s)
	}
}

// checkConfig decodes the rendered auth_config.yml with Gatehouse's own
// loader (strict: an unknown or misplaced key fails).
func checkConfig(t *testing.T, cm map[string]any, store bool) {
	t.Helper()
	cfg, err := config.Parse("auth_config.yml", []byte(str(cm, "data", "auth_config.yml")))
	if err != nil {
		t.Fatalf("the rendered auth_config.yml: %v\n%s", err, str(cm, "data", "auth_config.yml"))
	}
	if cfg.Token.Certificate != "/secrets/token/token.pem" || cfg.Token.Key != "/secrets/token/token.key" {
		t.Fatalf("token paths %q %q", cfg.Token.Certificate, cfg.Token.Key)
	}
	if (cfg.Throttle.Store != nil) != store {
		t.Fatalf("throttle.store %+v, want present: %v", cfg.Throttle.Store, store)
	}
	if store && (len(cfg.Throttle.Store.Addrs) != 2 || cfg.Throttle.Store.PasswordFile != "/secrets/throttle-store/password") {
		t.Fatalf("throttle.store %+v", cfg.Throttle.Store)
	}
}

// get walks nested maps.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }
