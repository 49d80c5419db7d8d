package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/kmstest"
)

// KeyHeader is a token header a test of a key held by a key service (AWS
// KMS, a PKCS #11 HSM) runs with: how the registry finds the verification
// key.
type KeyHeader struct {
	Name  string
	NoX5C bool    // writes token.x5c: false
	Kid   KidMode // token.kid; "" leaves the default, libtrust
}

// HeaderX5C is Gatehouse's default header: x5c carrying the certificate,
// which the registry verifies against its rootcertbundle, and a libtrust
// kid. Registry v2.8 and v3 both take it.
var HeaderX5C = KeyHeader{Name: "x5c and kid libtrust"}

// mode is the kid form the tokens carry.
func (h KeyHeader) mode() KidMode {
	if h.Kid == "" {
		return KidLibtrust
	}
	return h.Kid
}

// options returns o with h's token settings and token.refresh_secret_file
// (required with a key service) added, the secret written into dir.
func (h KeyHeader) options(t testing.TB, o GatehouseOptions, dir string) GatehouseOptions {
	t.Helper()
	secret := filepath.Join(dir, "refresh.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("r", 48)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.TokenExtra += "  refresh_secret_file: " + secret + "\n"
	o.NoX5C, o.Kid = h.NoX5C, h.Kid
	return o
}

// RequireSignedPushPull checks, in e whose signing key a key service holds,
// the header of a token from Gatehouse (e.Key.Type's alg, h's kid, x5c or
// none as h says) and that the token verifies against the certificate's
// key; then alice pushes repo and pulls it back, and bob's pull is refused
// by the registry. With x5c off the registry can only have found the key by
// the kid.
func (e *Env) RequireSignedPushPull(t testing.TB, h KeyHeader, repo string) {
	t.Helper()
	raw := e.RequireTokenHeader(t, h.mode(), !h.NoX5C)
	if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return e.Key.Public, nil },
		jwt.WithValidMethods([]string{e.Key.Type.Alg()})); err != nil {
		t.Fatalf("the token does not verify against the certificate's key: %v", err)
	}
	d := e.MustPush(t, Alice, repo)
	e.MustPullDigest(t, Alice, repo, d)
	_, err := e.Pull(t, Bob, repo)
	e.RequireDeniedByRegistry(t, err, "bob pulling "+repo)
}

// kmsKeySpecs are the local-kms key specs of the key types.
var kmsKeySpecs = []struct {
	kt   KeyType
	spec string
}{
	{ECP256, "ECC_NIST_P256"},
	{RSA2048, "RSA_2048"},
}

// RunAWSKMSPushPull pushes and pulls through newRegistry's registry with
// tokens signed by a key held in a KMS (local-kms on loopback), ES256 and
// RS256, for each header: Gatehouse writes the key's self-signed
// certificate (generate_if_missing, signed by KMS), which the registry
// trusts as its rootcertbundle, and never sees the private key.
func RunAWSKMSPushPull(t *testing.T, newRegistry RegistryFactory, headers ...KeyHeader) {
	kms := kmstest.Start(t)
	for _, ks := range kmsKeySpecs {
		t.Run(ks.kt.Alg(), func(t *testing.T) {
			for _, h := range headers {
				t.Run(h.Name, func(t *testing.T) {
					dir := t.TempDir()
					key := SigningKey{Type: ks.kt, CertPath: filepath.Join(dir, "token.pem"), KeyPath: kms.Ref(kms.CreateKey(t, ks.spec))}
					o := h.options(t, GatehouseOptions{Key: key, TokenExtra: "  generate_if_missing: true\n"}, dir)
					e := NewEnvKey(t, newRegistry, o)
					signed := kms.Calls("Sign") // so far, the certificate's signature
					e.RequireSignedPushPull(t, h, "alice/app")
					if kms.Calls("Sign") == signed {
						t.Error("no token was signed by KMS")
					}
				})
			}
		})
	}
}
