package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerAuthExamplesValidate runs `gatehouse validate` on copies of the
// configurations in docker_auth's examples/ (testdata/docker_auth, origin
// in its README). Those that use only sections Gatehouse implements must
// validate unchanged but for the files they name: docker_auth's examples
// point at /path/to/server.pem and /path/to/server.key, which exist on no
// machine, so the test writes a stand-in certificate and key to its temp
// directory and rewrites those two paths (none of the examples has
// token.generate_if_missing, which would let the token key pair be made
// instead). The others must be refused, naming every section or key that is
// not implemented, so a docker_auth user learns all of them at once.
func TestDockerAuthExamplesValidate(t *testing.T) {
	dir := t.TempDir()
	writeStandInKeyPair(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	tests := []struct {
		file string
		// refused lists fragments of the problems expected ("line: key:
		// message"); none means the example must validate.
		refused []string
	}{
		{file: "simple.yml"},
		{file: "non_tls.yml"},
		{file: "ldap_auth.yml"},
		{
			// Its start_tls and password keys are not docker_auth's either
			// (docker_auth ignores them silently, so it would talk to the
			// directory in plain text and bind anonymously); Gatehouse wants
			// the bind password in bind_password_file.
			file: "ldap_config.yml",
			refused: []string{":10: ldap_auth.bind_password_file: is required with bind_dn",
				":12: ldap_auth.start_tls: unknown key", ":17: ldap_auth.password: unknown key"},
		},
		{
			// server.client_ca, server.client_auth_type,
			// alternate_credentials and client_cert_labels come from a
			// client-certificate feature docker_auth's configuration does
			// not have; it has no token section, which docker_auth refuses
			// too (its expiration must be positive).
			file: "client_certificates.yml",
			refused: []string{":2: token: section is required", ":6: server.client_ca: unknown key",
				":7: server.client_auth_type: unknown key", ":9: alternate_credentials: unknown key",
				":25: client_cert_labels: unknown key"},
		},
		{
			// rpc_authn and rpc_authz are not docker_auth sections, so
			// nothing authenticates or authorizes.
			file: "rpc_auth_server.yml",
			refused: []string{":2: users: no authenticator is configured", ":2: acl: section is required",
				":11: rpc_authn: unknown key", ":16: rpc_authz: unknown key"},
		},
		{
			// reference.yml shows every section: Let's Encrypt is not
			// implemented, so it stays refused; its google_auth and
			// github_auth (token_db with a warning), ext_auth and ext_authz
			// sections are accepted.
			file: "reference.yml",
			refused: []string{
				":26: server.letsencrypt: not supported by Gatehouse",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join("testdata", "docker_auth", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			text = bytes.ReplaceAll(text, []byte("/path/to/server."), []byte(dir+"/server."))
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, text, 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := run([]string{"validate", path}, nil, &out, &errb)
			if len(tc.refused) == 0 {
				if code != 0 {
					t.Fatalf("exit %d:\n%s", code, errb.String())
				}
				return
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s%s", code, out.String(), errb.String())
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if len(lines) != len(tc.refused) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tc.refused), errb.String())
			}
			for _, want := range tc.refused {
				if !strings.Contains(errb.String(), path+want) {
					t.Errorf("no problem %q in:\n%s", want, errb.String())
				}
			}
		})
	}
}

// TestDockerAuthCasbinDoc: docker_auth ships a casbin model and policy
// but no configuration using them; its docs/casbin_backend.md gives the
// section. That section, pointed at the example files and put in place of
// simple.yml's acl, validates (docker_auth itself refuses a configuration
// without acl), and gatehouse check decides with it.
func TestDockerAuthCasbinDoc(t *testing.T) {
	dir := t.TempDir()
	writeStandInKeyPair(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	simple, err := os.ReadFile("testdata/docker_auth/simple.yml")
	if err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs("testdata/docker_auth")
	if err != nil {
		t.Fatal(err)
	}
	text := string(simple[:bytes.Index(simple, []byte("\nacl:"))+1]) + `
casbin_authz:
  model_path: "path/to/model"
  policy_path: "path/to/policy"
`
	text = strings.NewReplacer("/path/to/server.", dir+"/server.",
		"path/to/model", example+"/casbin_authz_model.conf",
		"path/to/policy", example+"/casbin_authz_policy.csv").Replace(text)
	path := filepath.Join(dir, "casbin.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"validate", path}, nil, &out, &errb); code != 0 {
		t.Fatalf("validate: exit %d:\n%s", code, errb.String())
	}
	out.Reset()
	args := []string{"check", path, "--account", "alice", "--label", "a=b", "--ip", "1.2.3.4", "--service", "bookstore1",
		"book:book1:read,delete", "book:book2:read"}
	if code := run(args, nil, &out, &errb); code != 0 {
		t.Fatalf("check: exit %d:\n%s", code, errb.String())
	}
	for _, want := range []string{"book:book1:read,delete: read (casbin_authz)", "book:book2:read: nothing (no rule matched)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

// writeStandInKeyPair writes a self-signed ECDSA certificate for localhost
// and its key, valid for an hour, and returns the certificate's DER.
func writeStandInKeyPair(t *testing.T, certPath, keyPath string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return der
}
