package harness

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeyType is the kind of token signing key Gatehouse is given.
type KeyType string

// The key types every scenario runs with.
const (
	RSA2048 KeyType = "RSA-2048"
	ECP256  KeyType = "EC-P256"
)

// KeyTypes lists the key types every scenario runs with.
var KeyTypes = []KeyType{RSA2048, ECP256}

// ECP256LeadingZero is an EC P-256 key whose X or Y coordinate starts with a
// zero byte: the one case where distribution's key thumbprint (coordinates
// without leading zeros) differs from RFC 7638's (padded), and where a JWK
// with unpadded coordinates is malformed.
const ECP256LeadingZero KeyType = "EC-P256-0x00"

// Alg is the JWS algorithm a token signed with this key type must carry.
func (k KeyType) Alg() string {
	if k == ECP256 || k == ECP256LeadingZero {
		return "ES256"
	}
	return "RS256"
}

// signingMaterial is a generated key and its self-signed certificate, PEM encoded.
type signingMaterial struct {
	certDER, certPEM, keyPEM []byte
	public                   crypto.PublicKey
}

// SigningKey is a token signing key and certificate written to disk for one
// environment.
type SigningKey struct {
	Type     KeyType
	CertPath string // PEM certificate: Gatehouse's token.certificate and the registry's rootcertbundle
	KeyPath  string // PEM private key: Gatehouse's token.key
	CertDER  []byte // the certificate, DER: what an x5c header must carry
	Public   crypto.PublicKey
}

var (
	materialMu sync.Mutex
	material   = map[KeyType]*signingMaterial{}
)

// WriteSigningKey writes a key of type kt and its self-signed certificate to
// dir. Keys are generated once per test binary and type (RSA generation is
// the slow part), the files are per environment.
func WriteSigningKey(t testing.TB, kt KeyType, dir string) SigningKey {
	t.Helper()
	m, err := materialFor(kt)
	if err != nil {
		t.Fatalf("generating %s signing key: %v", kt, err)
	}
	return writeKey(t, kt, m, dir, "token")
}

// WriteFreshSigningKey writes a newly generated key of type kt, distinct
// from WriteSigningKey's and from every other call's, and its certificate
// to dir as base.pem and base.key: the next key of a rotation.
func WriteFreshSigningKey(t testing.TB, kt KeyType, dir, base string) SigningKey {
	t.Helper()
	m, err := generate(kt)
	if err != nil {
		t.Fatalf("generating %s signing key: %v", kt, err)
	}
	return writeKey(t, kt, m, dir, base)
}

func writeKey(t testing.TB, kt KeyType, m *signingMaterial, dir, base string) SigningKey {
	t.Helper()
	k := SigningKey{
		Type:     kt,
		CertPath: filepath.Join(dir, base+".pem"),
		KeyPath:  filepath.Join(dir, base+".key"),
		CertDER:  m.certDER,
		Public:   m.public,
	}
	if err := os.WriteFile(k.CertPath, m.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.KeyPath, m.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func materialFor(kt KeyType) (*signingMaterial, error) {
	materialMu.Lock()
	defer materialMu.Unlock()
	if m, ok := material[kt]; ok {
		return m, nil
	}
	m, err := generate(kt)
	if err != nil {
		return nil, err
	}
	material[kt] = m
	return m, nil
}

// generate makes a key and a self-signed certificate for it, as
// `openssl req -x509 -newkey ...` does for the docker_auth setup: the RSA key
// is written as PKCS#8 ("PRIVATE KEY", what OpenSSL 3 writes), the EC key as
// SEC 1 ("EC PRIVATE KEY", what `openssl ecparam -genkey` writes), so both
// encodings are exercised.
func generate(kt KeyType) (*signingMaterial, error) {
	var (
		signer crypto.Signer
		block  *pem.Block
	)
	switch kt {
	case RSA2048:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		signer, block = k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case ECP256, ECP256LeadingZero:
		k, err := generateEC(kt == ECP256LeadingZero)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		signer, block = k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		return nil, fmt.Errorf("unknown key type %q", kt)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "gatehouse e2e token signer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, err
	}
	return &signingMaterial{
		certDER: certDER,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		keyPEM:  pem.EncodeToMemory(block),
		public:  signer.Public(),
	}, nil
}

// generateEC makes a P-256 key; with leadingZero, one whose X or Y
// coordinate starts with a zero byte (about one key in 64 does).
func generateEC(leadingZero bool) (*ecdsa.PrivateKey, error) {
	for range 10000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil || !leadingZero {
			return k, err
		}
		point, err := k.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
		if err != nil {
			return nil, err
		}
		if point[1] == 0 || point[33] == 0 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no P-256 key with a leading zero coordinate in 10000 tries")
}

// LibtrustKeyID is the key ID docker/libtrust (and so registry v2.8) gives a
// public key: SHA-256 of its PKIX DER, first 30 bytes, base32, in 12 groups
// of 4 joined by ':'. Computed here independently of Gatehouse.
func LibtrustKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	groups := make([]string, 0, 12)
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}

// DistributionThumbprint is the key ID registry v3.1 gives a rootcertbundle
// key (registry/auth/token GetJWKThumbprint): an RFC 7638 style thumbprint
// whose EC coordinates are big.Int.Bytes(), without left padding.
func DistributionThumbprint(pub crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var payload string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		payload = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`,
			b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		ecdh, err := k.ECDH()
		if err != nil {
			return "", err
		}
		raw := ecdh.Bytes() // 0x04 || X || Y, fixed width
		size := (len(raw) - 1) / 2
		x := new(big.Int).SetBytes(raw[1 : 1+size])
		y := new(big.Int).SetBytes(raw[1+size:])
		payload = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`,
			k.Curve.Params().Name, b64(x.Bytes()), b64(y.Bytes()))
	default:
		return "", fmt.Errorf("unsupported key type %T", pub)
	}
	sum := sha256.Sum256([]byte(payload))
	return b64(sum[:]), nil
}

// readCertificate returns the DER and the public key of the first
// certificate of the PEM file at path.
func readCertificate(t testing.TB, path string) ([]byte, crypto.PublicKey) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the signing certificate: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c.Raw, c.PublicKey
}
