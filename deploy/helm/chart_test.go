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
	"cmp"
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

// The values of a signing key in AWS KMS: the reference, the certificate
// and the refresh secret Gatehouse requires with it.
const (
	kmsRef     = "awskms:///alias/gatehouse?region=eu-west-1"
	kmsNextRef = "awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	kms        = "signingKey.reference=" + kmsRef + ",signingKey.certificate=CERT"
	refresh    = "refreshSecret.value=0123456789abcdef0123456789abcdef"
	roleARN    = "arn:aws:iam::111122223333:role/gatehouse"
	irsa       = `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=` + roleARN
)

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
	for _, set := range []string{key, key + ",throttleStore.enabled=true,throttleStore.addrs={valkey:6379}", kms + "," + refresh + "," + irsa,
		"signingKey.reference=" + hsmRef + ",signingKey.certificate=CERT," + refresh + "," + pkcs11Image + "," + hsmPIN + "," + hsmModule} {
		if out, err := exec.Command(helm, "lint", "--strict", "gatehouse", "--set", set).CombinedOutput(); err != nil {
			t.Fatalf("helm lint --set %s: %v\n%s", set, err, out)
		}
	}
}

// renderCase is a value set and what its manifests must show.
type renderCase struct {
	name   string
	set    []string
	mounts []string // extra mount paths the pod must have
	store  bool
	// ref and nextRef are token.key and token.next_key when the key is in a
	// key service ("": the PEM file the chart mounts).
	ref, nextRef string
	sa           string            // the pods' serviceAccountName
	annotations  map[string]string // the ServiceAccount's, when the chart makes it
	env          map[string]string // the container's environment
	// image is the container's image ("": not checked); pin is the PIN file
	// mounted from hsm.pinSecret ("": none), and inits the init containers.
	image, pin string
	inits      []string
}

func TestChartRenders(t *testing.T) {
	helm := helmBin(t)
	tests := []renderCase{
		{name: "defaults", set: []string{key}, sa: "gh-gatehouse"},
		{name: "shared throttle store with a password", set: []string{key, "throttleStore.enabled=true", "throttleStore.addrs={valkey-0:6379,valkey-1:6379}",
			"throttleStore.passwordSecret.name=valkey"}, mounts: []string{"/secrets/throttle-store"}, store: true, sa: "gh-gatehouse"},
		{name: "key rotation and a refresh secret", set: []string{key, "signingKey.next.certificate=N", "signingKey.next.key=NK", refresh},
			mounts: []string{"/secrets/token-next", "/secrets/refresh"}, sa: "gh-gatehouse"},
		{name: "existing secrets and a ServiceMonitor", set: []string{"signingKey.existingSecret=keys", "metrics.serviceMonitor.enabled=true", "replicaCount=3"}, sa: "gh-gatehouse"},
		{name: "a key in AWS KMS with IRSA", set: []string{kms, refresh, irsa, "extraEnv[0].name=AWS_REGION,extraEnv[0].value=eu-west-1",
			"extraEnv[1].name=AWS_STS_REGIONAL_ENDPOINTS,extraEnv[1].value=regional"},
			mounts: []string{"/secrets/refresh"}, ref: kmsRef, sa: "gh-gatehouse",
			annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN},
			env:         map[string]string{"AWS_REGION": "eu-west-1", "AWS_STS_REGIONAL_ENDPOINTS": "regional"}},
		{name: "KMS keys in existing secrets, rotating, and an existing service account", set: []string{"signingKey.reference=" + kmsRef,
			"signingKey.existingSecret=keys", "signingKey.next.reference=" + kmsNextRef, "signingKey.next.existingSecret=next-keys",
			"refreshSecret.existingSecret=refresh", "serviceAccount.create=false", "serviceAccount.name=gatehouse-irsa"},
			mounts: []string{"/secrets/token-next", "/secrets/refresh"}, ref: kmsRef, nextRef: kmsNextRef, sa: "gatehouse-irsa"},
		{name: "a key in an HSM with the module from an init container", set: []string{"signingKey.reference=" + hsmRef, "signingKey.certificate=CERT",
			refresh, pkcs11Image, hsmPIN, hsmModule, "extraEnv[0].name=LD_LIBRARY_PATH,extraEnv[0].value=/hsm/lib",
			"extraVolumes[1].name=hsm-client,extraVolumes[1].secret.secretName=vendor-hsm-client",
			"extraVolumeMounts[1].name=hsm-client,extraVolumeMounts[1].mountPath=/etc/vendor-hsm,extraVolumeMounts[1].readOnly=true"},
			mounts: []string{"/secrets/refresh", "/secrets/hsm", "/hsm", "/etc/vendor-hsm"}, ref: hsmRef, sa: "gh-gatehouse",
			env: map[string]string{"LD_LIBRARY_PATH": "/hsm/lib"}, image: "gatehouse:0.1.0-pkcs11", pin: "/secrets/hsm/pin", inits: []string{"hsm-module"}},
		{name: "HSM keys rotating, a tag and a PIN path of one's own", set: []string{"signingKey.reference=" + hsmRefAt("/run/hsm/user-pin"),
			"signingKey.existingSecret=keys", "signingKey.next.reference=" + hsmNextRefAt("/run/hsm/user-pin"), "signingKey.next.existingSecret=next-keys",
			"refreshSecret.existingSecret=refresh", pkcs11Image, "image.repository=registry.example.com/gatehouse", "image.tag=1.4.0",
			hsmPIN, "hsm.pinPath=/run/hsm/user-pin", "hsm.pinSecret.key=user-pin", hsmModule},
			mounts: []string{"/secrets/token-next", "/secrets/refresh", "/run/hsm", "/hsm"}, ref: hsmRefAt("/run/hsm/user-pin"),
			nextRef: hsmNextRefAt("/run/hsm/user-pin"), sa: "gh-gatehouse", image: "registry.example.com/gatehouse:1.4.0-pkcs11",
			pin: "/run/hsm/user-pin", inits: []string{"hsm-module"}},
		{name: "an HSM PIN from an extra volume and a tag that names the flavor", set: []string{"signingKey.reference=" + hsmRefAt("/mnt/hsm-pin/pin"),
			"signingKey.certificate=CERT", refresh, pkcs11Image, "image.tag=1.4.0-pkcs11",
			"extraVolumes[0].name=pin,extraVolumes[0].secret.secretName=hsm-pin,extraVolumes[0].secret.defaultMode=288",
			"extraVolumeMounts[0].name=pin,extraVolumeMounts[0].mountPath=/mnt/hsm-pin,extraVolumeMounts[0].readOnly=true"},
			mounts: []string{"/secrets/refresh", "/mnt/hsm-pin"}, ref: hsmRefAt("/mnt/hsm-pin/pin"), sa: "gh-gatehouse", image: "gatehouse:1.4.0-pkcs11"},
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
			checkKeyFiles(t, byKind, tc)
			checkServiceAccount(t, byKind, tc)
			checkConfig(t, byKind["ConfigMap"][0], tc)
			checkHSM(t, byKind, tc)
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
		// Gatehouse refuses a key reference without refresh_secret_file.
		{"a key reference without a refresh secret", []string{kms}, "refreshSecret: set existingSecret or value"},
		{"a next key reference without a refresh secret", []string{key, "signingKey.next.certificate=N", "signingKey.next.reference=" + kmsNextRef},
			"refreshSecret: set existingSecret or value"},
		{"a key reference and a private key", []string{kms, refresh, "signingKey.key=KEY"}, "signingKey.reference and signingKey.key"},
		{"a next key reference and a private key", []string{key, refresh, "signingKey.next.certificate=N", "signingKey.next.key=NK",
			"signingKey.next.reference=" + kmsNextRef}, "signingKey.next.reference and signingKey.next.key"},
		{"a key reference without its certificate", []string{"signingKey.reference=" + kmsRef, refresh}, "with a reference, set existingSecret or certificate"},
		{"a next key reference without its certificate", []string{key, refresh, "signingKey.next.reference=" + kmsNextRef}, "set next.certificate or next.existingSecret"},
		// The default image is built without PKCS #11: every pod would fail.
		{"an HSM key with the default image", []string{"signingKey.reference=" + hsmRef, "signingKey.certificate=CERT", refresh, hsmPIN, hsmModule},
			"signingKey.reference: a pkcs11: key needs image.flavor=pkcs11"},
		{"a next HSM key with the default image", []string{key, refresh, "signingKey.next.certificate=N", "signingKey.next.reference=" + hsmNextRefAt("/secrets/hsm/pin"), hsmPIN},
			"signingKey.next.reference: a pkcs11: key needs image.flavor=pkcs11"},
		{"an image flavor that does not exist", []string{key, "image.flavor=fips"}, `image.flavor "fips"`},
		{"an HSM key without a PIN secret", []string{"signingKey.reference=" + hsmRef, "signingKey.certificate=CERT", refresh, pkcs11Image, hsmModule},
			"signingKey.reference: its PIN file /secrets/hsm/pin (pin-source) is not mounted: set hsm.pinSecret.name"},
		{"an HSM key whose PIN file is elsewhere", []string{"signingKey.reference=" + hsmRefAt("/run/secrets/hsm-pin"), "signingKey.certificate=CERT", refresh,
			pkcs11Image, hsmPIN, hsmModule}, "its PIN file /run/secrets/hsm-pin (pin-source) is not mounted"},
		{"an HSM key without a PIN file", []string{"signingKey.reference=pkcs11:token=gatehouse;object=token-key?module-path=/hsm/lib/libvendorpkcs11.so",
			"signingKey.certificate=CERT", refresh, pkcs11Image, hsmPIN}, "needs pin-source=file:/path"},
		{"a relative PIN path", []string{key, hsmPIN, "hsm.pinPath=pin"}, `hsm.pinPath "pin": an absolute path`},
		{"a PIN path in the key's directory", []string{key, hsmPIN, "hsm.pinPath=/secrets/token/pin"}, `hsm.pinPath "/secrets/token/pin"`},
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

// checkKeyFiles checks the files of the signing keys' volumes: the
// certificate and the private key, or the certificate alone when the key is
// in a key service (then no Secret the chart renders holds a token.key).
func checkKeyFiles(t *testing.T, byKind map[string][]map[string]any, tc renderCase) {
	t.Helper()
	secrets := map[string]map[string]any{}
	for _, s := range byKind["Secret"] {
		secrets[str(s, "metadata", "name")] = s
	}
	pod := get(byKind["Deployment"][0], "spec", "template", "spec")
	for _, v := range pod.(map[string]any)["volumes"].([]any) {
		vol := v.(map[string]any)
		ref := map[string]string{"token": tc.ref, "token-next": tc.nextRef}
		r, ok := ref[str(vol, "name")]
		if !ok {
			continue
		}
		want := []string{"token.key", "token.pem"}
		if r != "" {
			want = []string{"token.pem"}
		}
		files, known := secretFiles(vol, secrets)
		if known && !slices.Equal(files, want) {
			t.Fatalf("volume %s holds %v, want %v", str(vol, "name"), files, want)
		}
		if !known && r != "" {
			t.Fatalf("volume %s mounts all of the existing Secret %q, want only its certificate", str(vol, "name"), str(vol, "secret", "secretName"))
		}
	}
}

// secretFiles lists, sorted, the files a secret volume puts in the pod:
// its items, or every key of the Secret the chart rendered; known is false
// for all of an existing Secret.
func secretFiles(vol map[string]any, secrets map[string]map[string]any) (files []string, known bool) {
	if items, ok := get(vol, "secret", "items").([]any); ok {
		for _, it := range items {
			files = append(files, str(it, "path"))
		}
		slices.Sort(files)
		return files, true
	}
	s := secrets[str(vol, "secret", "secretName")]
	if s == nil {
		return nil, false
	}
	for k := range get(s, "data").(map[string]any) {
		files = append(files, k)
	}
	slices.Sort(files)
	return files, true
}

// checkServiceAccount checks the pods' identity (for a key service: IRSA,
// workload identity): the ServiceAccount the chart makes, with its
// annotations, is the one the pods run as, no API token is mounted, and
// extraEnv reaches the container.
func checkServiceAccount(t *testing.T, byKind map[string][]map[string]any, tc renderCase) {
	t.Helper()
	pod := get(byKind["Deployment"][0], "spec", "template", "spec").(map[string]any)
	if str(pod, "serviceAccountName") != tc.sa || pod["automountServiceAccountToken"] != false {
		t.Fatalf("pod serviceAccountName %v and automountServiceAccountToken %v, want %s and false", pod["serviceAccountName"], pod["automountServiceAccountToken"], tc.sa)
	}
	sas := byKind["ServiceAccount"]
	if slices.Contains(tc.set, "serviceAccount.create=false") {
		if len(sas) != 0 {
			t.Fatalf("%d ServiceAccount with serviceAccount.create=false", len(sas))
		}
	} else {
		if len(sas) != 1 || str(sas[0], "metadata", "name") != tc.sa || sas[0]["automountServiceAccountToken"] != false {
			t.Fatalf("ServiceAccounts %v, want one named %s without an automounted token", sas, tc.sa)
		}
		for k, v := range tc.annotations {
			if got := str(sas[0], "metadata", "annotations", k); got != v {
				t.Fatalf("ServiceAccount annotation %s = %q, want %q", k, got, v)
			}
		}
	}
	env := map[string]string{}
	c := pod["containers"].([]any)[0]
	if e, ok := get(c, "env").([]any); ok {
		for _, v := range e {
			env[str(v, "name")] = str(v, "value")
		}
	}
	if len(env) != len(tc.env) {
		t.Fatalf("container env %v, want %v", env, tc.env)
	}
	for k, v := range tc.env {
		if env[k] != v {
			t.Fatalf("container env %v, want %v", env, tc.env)
		}
	}
}

// checkConfig decodes the rendered auth_config.yml with Gatehouse's own
// loader (strict: an unknown or misplaced key fails).
func checkConfig(t *testing.T, cm map[string]any, tc renderCase) {
	t.Helper()
	store := tc.store
	cfg, err := config.Parse("auth_config.yml", []byte(str(cm, "data", "auth_config.yml")))
	if err != nil {
		t.Fatalf("the rendered auth_config.yml: %v\n%s", err, str(cm, "data", "auth_config.yml"))
	}
	if cfg.Token.Certificate != "/secrets/token/token.pem" || cfg.Token.Key != cmp.Or(tc.ref, "/secrets/token/token.key") {
		t.Fatalf("token certificate %q and key %q, want the key %q", cfg.Token.Certificate, cfg.Token.Key, cmp.Or(tc.ref, "/secrets/token/token.key"))
	}
	if tc.nextRef != "" && (cfg.Token.NextKey != tc.nextRef || cfg.Token.NextCertificate != "/secrets/token-next/token.pem") {
		t.Fatalf("token next_certificate %q and next_key %q, want the key %q", cfg.Token.NextCertificate, cfg.Token.NextKey, tc.nextRef)
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
