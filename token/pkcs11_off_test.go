//go:build !pkcs11

package token

import "testing"

// TestPKCS11NotBuiltIn: a binary built without the pkcs11 tag says what to
// use instead, at token.key.
func TestPKCS11NotBuiltIn(t *testing.T) {
	dir := t.TempDir()
	c := &Config{Issuer: "i", Expiration: 900,
		Certificate:       writeFile(t, dir, "token.pem", nil),
		Key:               "pkcs11:token=gatehouse;object=token-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
		RefreshSecretFile: writeFile(t, dir, "refresh", make([]byte, 48)),
	}
	s, err := c.NewSigner()
	if err == nil {
		s.Close()
		t.Fatal("NewSigner succeeded without PKCS#11 support")
	}
	checkConfigError(t, err, []string{"key"},
		"this gatehouse binary was built without PKCS#11 support; use the gatehouse:…-pkcs11 image (make image-pkcs11), or build with -tags pkcs11 (CGO_ENABLED=1)")
}
