package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// devCommonName is the subject of generated development certificates.
const devCommonName = "gatehouse development token signer"

// externalCommonName is the subject of certificates generated for a key
// held by a key service.
const externalCommonName = "gatehouse token signer"

// keyPair is a loaded signing key and its certificate chain, leaf first.
type keyPair struct {
	key   crypto.Signer
	certs []*x509.Certificate
	ext   *externalKey // set when a key service holds the key; key is then ext.signer
}

// keyName describes the key in messages: the file path, or the key
// service's name for it.
func (kp *keyPair) keyName(path string) string {
	if kp.ext != nil {
		return kp.ext.name
	}
	return path
}

// loadExternalKeyPair opens the key a reference names and reads the
// certificate chain for it. With generate and no certificate file, it makes
// a self-signed certificate for the key, signed by the key service, and
// writes it when write is set; generated reports that it did. The key is
// closed again on any error.
func loadExternalKeyPair(certPath, ref string, now time.Time, generate, write bool) (kp *keyPair, generated bool, err error) {
	ext, err := openExternalKey(ref)
	if err != nil {
		return nil, false, cfgerr.At(err, "key")
	}
	defer func() {
		if err != nil {
			_ = ext.Close()
		}
	}()
	if generate && missing(certPath) {
		cert, certPEM, err := selfSignedCertificate(ext.signer, externalCommonName, now)
		if err != nil {
			return nil, false, cfgerr.At(fmt.Errorf("token: key %s: %w", ext.name, err), "key")
		}
		if write {
			if err := writeNewFile(certPath, certPEM, 0o644); err != nil {
				return nil, false, cfgerr.At(err, "certificate")
			}
		}
		return &keyPair{key: ext.signer, certs: []*x509.Certificate{cert}, ext: ext}, true, nil
	}
	certs, err := loadCertificates(certPath)
	if err != nil {
		return nil, false, cfgerr.At(err, "certificate")
	}
	if err := matchKey(ext.signer, certs, ext.name, certPath); err != nil {
		return nil, false, cfgerr.At(err, "key")
	}
	for _, c := range certs {
		if err := checkValidity(c, certPath, now); err != nil {
			return nil, false, cfgerr.At(err, "certificate")
		}
	}
	return &keyPair{key: ext.signer, certs: certs, ext: ext}, false, nil
}

// loadKeyPair reads and checks the certificate chain and the private key.
// Errors are placed at "certificate" or "key"; problems with both files are
// reported together.
func loadKeyPair(certPath, keyPath string, now time.Time) (*keyPair, error) {
	certs, certErr := loadCertificates(certPath)
	key, keyErr := loadPrivateKey(keyPath)
	if certErr != nil || keyErr != nil {
		return nil, errors.Join(cfgerr.At(certErr, "certificate"), cfgerr.At(keyErr, "key"))
	}
	if err := matchKey(key, certs, keyPath, certPath); err != nil {
		return nil, cfgerr.At(err, "key")
	}
	for _, c := range certs {
		if err := checkValidity(c, certPath, now); err != nil {
			return nil, cfgerr.At(err, "certificate")
		}
	}
	return &keyPair{key: key, certs: certs}, nil
}

// loadCertificates reads every CERTIFICATE block of a PEM file, in order.
// Other blocks (a private key kept in the same file) are skipped.
func loadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: reading certificate: %w", err)
	}
	var certs []*x509.Certificate
	for block := range pemBlocks(data) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token: certificate %s, block %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("token: certificate %s: no PEM CERTIFICATE block found", path)
	}
	return certs, nil
}

// loadPrivateKey reads the first private key of a PEM file and checks that
// it is a supported signing key.
func loadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: reading key: %w", err)
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", path, err)
	}
	return key, nil
}

// pemBlocks yields the PEM blocks of data in order, ignoring text around
// them.
func pemBlocks(data []byte) iter.Seq[*pem.Block] {
	return func(yield func(*pem.Block) bool) {
		for {
			var block *pem.Block
			if block, data = pem.Decode(data); block == nil || !yield(block) {
				return
			}
		}
	}
}

// parsePrivateKey decodes the first private key block of PEM data: PKCS#1
// ("RSA PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE KEY").
// Blocks that are not keys, such as the "EC PARAMETERS" block written by
// openssl ecparam or certificates, are skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	var seen []string
	for block := range pemBlocks(data) {
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, errors.New("encrypted PEM keys are not supported; decrypt it with openssl pkey")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted PKCS#8 keys are not supported; decrypt it with openssl pkey")
		case "OPENSSH PRIVATE KEY":
			return nil, errors.New("OpenSSH keys are not supported; convert it to PKCS#8 PEM")
		default:
			seen = append(seen, block.Type)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s block: %w", block.Type, err)
		}
		return checkKey(key)
	}
	if len(seen) == 0 {
		return nil, errors.New("no PEM data found")
	}
	return nil, fmt.Errorf("no PEM private key block found (found %s)", strings.Join(seen, ", "))
}

// checkKey accepts the key types registries v2.8 and v3 can both verify:
// RSA of at least 1024 bits (RS256) and ECDSA on P-256, P-384 or P-521
// (ES256, ES384, ES512).
func checkKey(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < 1024 {
			return nil, fmt.Errorf("RSA key of %d bits is too small (use 2048 bits or more)", bits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if _, err := ecdsaAlgorithm(&k.PublicKey); err != nil {
			return nil, err
		}
		return k, nil
	case ed25519.PrivateKey:
		return nil, errors.New("Ed25519 keys are not supported: registries v2.8 cannot verify EdDSA tokens; use an EC P-256 or RSA key")
	}
	return nil, fmt.Errorf("unsupported private key type %T; use an EC P-256/P-384/P-521 or RSA key", key)
}

// ecdsaAlgorithm returns the JWS algorithm for the curve of an ECDSA key.
func ecdsaAlgorithm(pub *ecdsa.PublicKey) (string, error) {
	switch pub.Curve {
	case elliptic.P256():
		return "ES256", nil
	case elliptic.P384():
		return "ES384", nil
	case elliptic.P521():
		return "ES512", nil
	}
	name := "unknown"
	if pub.Curve != nil {
		name = pub.Curve.Params().Name
	}
	return "", fmt.Errorf("EC curve %s is not supported; use P-256, P-384 or P-521", name)
}

// matchKey checks that key belongs to the first certificate of the chain.
func matchKey(key crypto.Signer, certs []*x509.Certificate, keyPath, certPath string) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok {
		return fmt.Errorf("token: key %s: cannot compare public key %T", keyPath, key.Public())
	}
	if pub.Equal(certs[0].PublicKey) {
		return nil
	}
	for i, c := range certs[1:] {
		if pub.Equal(c.PublicKey) {
			return fmt.Errorf("token: key %s matches certificate %d of %s, not the first one: put the signing certificate first", keyPath, i+2, certPath)
		}
	}
	return fmt.Errorf("token: key %s does not match certificate %s (%s)", keyPath, certPath, certName(certs[0]))
}

// checkValidity rejects a certificate outside its validity period:
// registries verify the x5c chain (and, for kid tokens, v2.8 only trusts
// bundle certificates) with x509 path validation, which checks it.
func checkValidity(c *x509.Certificate, path string, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("token: certificate %s (%s) is not valid before %s", path, certName(c), c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("token: certificate %s (%s) expired at %s", path, certName(c), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// certName describes a certificate in messages.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	return c.Subject.String()
}

// generateIfMissing creates a self-signed development key pair when both
// files are absent and returns it, after writing it to them when write is
// set. It returns nil when both files exist, and fails when only one does.
func generateIfMissing(certPath, keyPath string, now time.Time, write bool) (*keyPair, error) {
	certMissing, keyMissing := missing(certPath), missing(keyPath)
	switch {
	case !certMissing && !keyMissing:
		return nil, nil
	case certMissing && !keyMissing:
		return nil, cfgerr.At(fmt.Errorf("token: certificate %s does not exist but key %s does; generate_if_missing only creates both when both are absent", certPath, keyPath), "certificate")
	case keyMissing && !certMissing:
		return nil, cfgerr.At(fmt.Errorf("token: key %s does not exist but certificate %s does; generate_if_missing only creates both when both are absent", keyPath, certPath), "key")
	}
	kp, certPEM, keyPEM, err := generateDevKeyPair(now)
	if err != nil {
		return nil, cfgerr.At(err, "key")
	}
	if !write {
		return kp, nil
	}
	if err := writeNewFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, cfgerr.At(err, "key")
	}
	if err := writeNewFile(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath) // keep "both absent" so the next start retries
		return nil, cfgerr.At(err, "certificate")
	}
	return kp, nil
}

// missing reports whether path definitely does not exist. Other stat errors
// count as present, so that loading reports them.
func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// generateDevKeyPair returns a self-signed P-256 certificate, valid for one
// year back-dated by one hour, with its key, and both in PEM (the key in
// PKCS#8).
func generateDevKeyPair(now time.Time) (kp *keyPair, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("token: generating key: %w", err)
	}
	cert, certPEM, err := selfSignedCertificate(key, devCommonName, now)
	if err != nil {
		return nil, nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("token: encoding key: %w", err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return &keyPair{key: key, certs: []*x509.Certificate{cert}}, certPEM, keyPEM, nil
}

// selfSignedCertificate makes a certificate for key, signed by key itself,
// valid for one year back-dated by one hour, and returns it with its PEM.
// key may be held by a key service: it is asked for one signature.
func selfSignedCertificate(key crypto.Signer, commonName string, now time.Time) (*x509.Certificate, []byte, error) {
	return selfSignedCertificateFor(key, commonName, now, now.AddDate(1, 0, 0).Sub(now))
}

// selfSignedCertificateFor is selfSignedCertificate with the validity
// after now given.
func selfSignedCertificateFor(key crypto.Signer, commonName string, now time.Time, validity time.Duration) (*x509.Certificate, []byte, error) {
	tmpl := &x509.Certificate{ // no SerialNumber: CreateCertificate picks a random one
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("token: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("token: parsing the generated certificate: %w", err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeNewFile creates path (and missing parent directories, mode 0700)
// with perm, failing if it already exists. A partly written file is removed.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("token: creating directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("token: creating %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("token: writing %s: %w", path, err)
	}
	return nil
}
