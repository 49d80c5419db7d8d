//go:build !pkcs11

package token

import (
	"context"
	"errors"
	"fmt"
)

// errNoPKCS11 is what a binary built without the pkcs11 tag says when a
// configuration names a well-formed pkcs11: key.
var errNoPKCS11 = errors.New("this gatehouse binary was built without PKCS#11 support; use the gatehouse:…-pkcs11 image (make image-pkcs11), or build with -tags pkcs11 (CGO_ENABLED=1)")

// openPKCS11 refuses a pkcs11: key reference: PKCS #11 needs cgo and the
// HSM vendor's module needs glibc, so the default static binary leaves it
// out (token/pkcs11.go is built with -tags pkcs11). The reference is parsed
// first, so a malformed one gets the same error as in a binary with PKCS #11
// support; neither the module nor the PIN file is looked at.
func openPKCS11(ctx context.Context, ref string) (*externalKey, error) {
	u, err := parsePKCS11URI(ref)
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("token: key %s: %w", u.name(), errNoPKCS11)
}
