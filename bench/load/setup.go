package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

// The token settings shared by Gatehouse and the ceiling server.
const (
	benchIssuer     = "bench-issuer"
	benchExpiration = 900
	benchService    = "registry.example.com"
	staticUser      = "alice"
	staticPassword  = "alice-bench-password"
	bcryptCost      = 10
)

// ldapUser is the directory account of the LDAP cases (not a static user).
var ldapUser = ldaptest.Dave

// keyPair is a signing key written as PEM files.
type keyPair struct {
	name      string // "RSA-2048", "P-256", or nameKMS, nameHSM
	cert, key string // paths; key is a reference (awskms:, pkcs11:) for a key service
	// With a key service: refresh_secret_file, the environment Gatehouse
	// needs (credentials, SOFTHSM2_CONF), a Gatehouse binary of its own
	// ("" for the one built), the key file the ceiling signs with, and
	// the key service's process (0: none of its own).
	refresh    string
	env        []string
	bin        string
	ceiling    *keyPair
	servicePid int
}

// writeKey generates a key of kind ("rsa2048" or "p256") and a self-signed
// certificate for it under dir.
func writeKey(dir, kind string) (keyPair, error) {
	var (
		k    crypto.Signer
		err  error
		name string
	)
	switch kind {
	case "rsa2048":
		name = "RSA-2048"
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		name = "P-256"
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return keyPair{}, fmt.Errorf("unknown key %q: want rsa2048 or p256", kind)
	}
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "gatehouse load benchmark " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return keyPair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return keyPair{}, err
	}
	kp := keyPair{name: name, cert: filepath.Join(dir, kind+".pem"), key: filepath.Join(dir, kind+".key")}
	if err := os.WriteFile(kp.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return keyPair{}, err
	}
	if err := os.WriteFile(kp.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return keyPair{}, err
	}
	return kp, nil
}

// configOptions select the parts of a generated auth_config.yml.
type configOptions struct {
	addr     string
	key      keyPair
	hash     string           // the static user's bcrypt hash
	ldap     *ldaptest.Server // nil: no ldap_auth
	noCache  bool             // cache.ttl: 0
	logLevel string
}

// gatehouseConfig renders the configuration of one Gatehouse case: the
// static user (bcrypt), anonymous access, ldap_auth when asked, and the
// seed policy (own namespace for every signed-in account, public pulls
// for everyone).
func gatehouseConfig(o configOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server: {addr: %q}
log: {level: %s, format: json}
token:
  issuer: %q
  expiration: %d
  certificate: %q
  key: %q
`, o.addr, o.logLevel, benchIssuer, benchExpiration, o.key.cert, o.key.key)
	if o.key.refresh != "" {
		fmt.Fprintf(&b, "  refresh_secret_file: %q\n", o.key.refresh)
	}
	if o.noCache {
		b.WriteString("cache: {ttl: 0}\n")
	}
	fmt.Fprintf(&b, "users:\n  %s: {password: %q}\n  \"\": {}\n", staticUser, o.hash)
	if o.ldap != nil {
		fmt.Fprintf(&b, `ldap_auth:
  addr: %s
  bind_dn: %q
  bind_password_file: %s
  base: %q
  filter: "(&(objectClass=inetOrgPerson)(uid=${account}))"
  labels:
    groups: {attribute: memberOf, parse_cn: true, lower_case: true}
  group_search:
    base: %q
    filter: "(&(objectClass=posixGroup)(memberUid=${account}))"
    attribute: cn
    label: posix
`, o.ldap.Addr, ldaptest.ServiceDN, o.ldap.BindPasswordFile, ldaptest.People, ldaptest.Groups)
	}
	b.WriteString(`acl:
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
    comment: own namespace
  - match: {account: "", name: "public/*"}
    actions: [pull]
    comment: public pulls
`)
	return b.String()
}

// bcryptHash hashes the static user's password at bcryptCost.
func bcryptHash() (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(staticPassword), bcryptCost)
	return string(h), err
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
