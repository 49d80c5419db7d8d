package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkServeHTTPExtAuth compares a repeat login of an ext_auth account
// with one of a static user on the same server (P-256 key, the seed policy,
// info-level JSON log to io.Discard, as BenchmarkServeHTTP): with the grant
// cache ("cached") and without it ("credential-cache": the password is
// answered by the credential cache and the ACL decides). Neither runs the
// program or bcrypt after the first request; docs/performance.md has the
// figures.
func BenchmarkServeHTTPExtAuth(b *testing.B) {
	dir := b.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alicepw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	prog := filepath.Join(dir, "ext_auth.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nread u p\n[ \"$u $p\" = 'ed alicepw' ] && exit 0\nexit 2\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: bench-issuer
  expiration: 900
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
users:
  alice: {password: %[2]q}
ext_auth:
  command: %[3]s
acl:
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
    comment: own namespace
`, dir, hash, prog)
	cfg := benchConfig(b, dir, yml)
	for _, grants := range []bool{true, false} {
		for _, user := range []string{"alice", "ed"} {
			name := map[string]string{"alice": "static", "ed": "ext_auth"}[user] + "/cached"
			if !grants {
				name = map[string]string{"alice": "static", "ed": "ext_auth"}[user] + "/credential-cache"
			}
			b.Run(name, func(b *testing.B) {
				s := benchServer(b, cfg)
				if !grants {
					s.state.Load().grants = nil
				}
				benchServe(b, s, benchRequest("repository:"+user+"/app:pull,push", user, "alicepw"))
			})
		}
	}
}
