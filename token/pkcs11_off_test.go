//go:build !pkcs11

package token

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestPKCS11NotBuiltIn: a binary built without the pkcs11 tag reports a
// malformed pkcs11: reference as the tagged build does, and for a
// well-formed one says what to use instead, at token.key, without reading
// the PIN file or loading the module.
func TestPKCS11NotBuiltIn(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-pin")
	tests := []struct {
		name    string
		key     string
		wantMsg string
		notHere bool // the error wraps errNoPKCS11
	}{
		{name: "well-formed",
			key:     "pkcs11:token=gatehouse;object=token-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:" + missing,
			wantMsg: "token: key pkcs11:token=gatehouse;object=token-key: this gatehouse binary was built without PKCS#11 support; use the gatehouse:…-pkcs11 image (make image-pkcs11), or build with -tags pkcs11 (CGO_ENABLED=1)",
			notHere: true},
		{name: "well-formed, module absent",
			key:     "pkcs11:slot-id=0;id=%01?module-path=/nonexistent/module.so&pin-source=file:///nonexistent/pin",
			wantMsg: "token: key pkcs11:slot-id=0;id=%01: this gatehouse binary was built without PKCS#11 support",
			notHere: true},
		{name: "pin-value",
			key:     "pkcs11:token=t;object=k?module-path=/m.so&pin-value=s3cr3t-pin",
			wantMsg: "token: key pkcs11:token=t;object=k?module-path=/m.so&pin-value=…: pin-value is refused"},
		{name: "no token",
			key:     "pkcs11:object=k?module-path=/m.so&pin-source=file:/p",
			wantMsg: "no token given"},
		{name: "relative module-path",
			key:     "pkcs11:token=t;object=k?module-path=libsofthsm2.so&pin-source=file:/p",
			wantMsg: "module-path must be an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &Config{Issuer: "i", Expiration: 900,
				Certificate:       writeFile(t, dir, "token.pem", nil),
				Key:               tc.key,
				RefreshSecretFile: writeFile(t, dir, "refresh", make([]byte, 48)),
			}
			s, err := c.NewSigner()
			if err == nil {
				s.Close()
				t.Fatal("NewSigner succeeded without PKCS#11 support")
			}
			checkConfigError(t, err, []string{"key"}, tc.wantMsg)
			if got := errors.Is(err, errNoPKCS11); got != tc.notHere {
				t.Errorf("errors.Is(err, errNoPKCS11) = %v, want %v (error: %v)", got, tc.notHere, err)
			}
			if strings.Contains(err.Error(), "s3cr3t-pin") || strings.Contains(err.Error(), "no such file") {
				t.Errorf("error %q shows the PIN or looked at a file", err)
			}
		})
	}
}
