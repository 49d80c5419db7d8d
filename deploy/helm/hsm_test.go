package helm

import (
	"path"
	"strings"
	"testing"
)

// The values of a signing key in a PKCS #11 HSM: the -pkcs11 image, the
// PIN from a Secret (at hsm.pinPath, /secrets/hsm/pin by default) and the
// vendor's module copied by an init container into an emptyDir at /hsm.
const (
	pkcs11Image = "image.flavor=pkcs11"
	hsmPIN      = "hsm.pinSecret.name=hsm-pin"
	hsmModule   = "extraVolumes[0].name=hsm-module,extraVolumes[0].emptyDir.sizeLimit=256Mi," +
		"extraVolumeMounts[0].name=hsm-module,extraVolumeMounts[0].mountPath=/hsm,extraVolumeMounts[0].readOnly=true," +
		"extraInitContainers[0].name=hsm-module,extraInitContainers[0].image=registry.example.com/vendor-hsm-client:7.8," +
		"extraInitContainers[0].command={cp,-a,/opt/vendor-hsm/.,/hsm/}," +
		"extraInitContainers[0].volumeMounts[0].name=hsm-module,extraInitContainers[0].volumeMounts[0].mountPath=/hsm"
)

var hsmRef = hsmRefAt("/secrets/hsm/pin")

// hsmRefAt is the reference of the key token-key with its PIN file at pin.
func hsmRefAt(pin string) string {
	return "pkcs11:token=gatehouse;object=token-key?module-path=/hsm/lib/libvendorpkcs11.so&pin-source=file:" + pin
}

// hsmNextRefAt is the reference of the next key, token-key-2.
func hsmNextRefAt(pin string) string {
	return strings.Replace(hsmRefAt(pin), "object=token-key?", "object=token-key-2?", 1)
}

// checkHSM checks what a key in an HSM needs: the -pkcs11 image exactly
// when image.flavor is pkcs11, the PIN file from hsm.pinSecret mounted
// read-only and readable by the pod's user (group fsGroup, mode 0440), and
// the extra init containers with mounts of the pod's volumes.
func checkHSM(t *testing.T, byKind map[string][]map[string]any, tc renderCase) {
	t.Helper()
	pod := get(byKind["Deployment"][0], "spec", "template", "spec").(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	image := str(c, "image")
	if flavor := strings.Contains(strings.Join(tc.set, ","), pkcs11Image); strings.HasSuffix(image, "-pkcs11") != flavor ||
		strings.HasSuffix(image, "-pkcs11-pkcs11") || tc.image != "" && image != tc.image {
		t.Fatalf("image %q, want %q (the -pkcs11 image: %v)", image, tc.image, flavor)
	}
	volumes := map[string]map[string]any{}
	for _, v := range pod["volumes"].([]any) {
		volumes[str(v, "name")] = v.(map[string]any)
	}
	var pinMount map[string]any
	for _, m := range c["volumeMounts"].([]any) {
		if str(m, "name") == "hsm-pin" {
			pinMount = m.(map[string]any)
		}
	}
	if (pinMount != nil) != (tc.pin != "") {
		t.Fatalf("PIN mount %v, want one for %q", pinMount, tc.pin)
	}
	if tc.pin != "" {
		vol := volumes["hsm-pin"]
		items, _ := get(vol, "secret", "items").([]any)
		if str(pinMount, "mountPath") != path.Dir(tc.pin) || pinMount["readOnly"] != true || len(items) != 1 ||
			str(items[0], "path") != path.Base(tc.pin) || str(vol, "secret", "secretName") != "hsm-pin" {
			t.Fatalf("PIN mount %v of volume %v, want %s read-only from the Secret hsm-pin", pinMount, vol, tc.pin)
		}
		// Secret files are owned by root; the kubelet gives them the group
		// fsGroup and group read. User 65534 reads the PIN through that group:
		// fsGroup must be its group, the mode group-readable, none for others.
		mode, _ := get(vol, "secret", "defaultMode").(int)
		if mode != 0o440 || get(pod, "securityContext", "fsGroup") != 65534 || get(pod, "securityContext", "runAsGroup") != 65534 {
			t.Fatalf("PIN volume mode %o with pod securityContext %v, want 0440 with fsGroup and runAsGroup 65534", mode, pod["securityContext"])
		}
	}
	inits, _ := pod["initContainers"].([]any)
	if len(inits) != len(tc.inits) {
		t.Fatalf("init containers %v, want %v", inits, tc.inits)
	}
	for i, ic := range inits {
		if str(ic, "name") != tc.inits[i] || str(ic, "image") == "" {
			t.Fatalf("init container %v, want %s with an image", ic, tc.inits[i])
		}
		mounts, _ := get(ic, "volumeMounts").([]any)
		for _, m := range mounts {
			if volumes[str(m, "name")] == nil {
				t.Fatalf("init container %s mounts %v, which names no volume", tc.inits[i], m)
			}
		}
	}
}
