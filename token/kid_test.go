package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
)

// Public keys made with openssl; the expected key IDs below were computed
// from them with openssl and python3 (hashlib, base64), not with this
// package:
//
//	libtrust:   openssl pkey -pubin -in K.pub -outform DER | openssl dgst -sha256 -binary |
//	            head -c 30 | base32 | tr -d '\n=' | sed 's/\(....\)/\1:/g; s/:$//'
//	thumbprint: coordinates from `openssl pkey -pubin -text` (EC), modulus and exponent
//	            from `openssl rsa -pubin -modulus` / `-text` (RSA), the raw 32 bytes
//	            (Ed25519); python3 builds {"crv","kty","x","y"} / {"e","kty","n"} /
//	            {"crv","kty","x"} with unpadded base64url values (EC coordinates with
//	            leading zero bytes stripped, as distribution does, or kept for RFC 7638),
//	            and prints base64url(sha256(json)) without padding.
const (
	// openssl ecparam -name prime256v1 -genkey
	pubP256 = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfdeh/i9aNxnSrjZMOeZASb9ikXSW
lGdNbNbpn0Q86JRe1uevxqF78KuK6bB3/8Wpat8fOnvP/k1D/K0t+bBJPA==
-----END PUBLIC KEY-----`
	// A P-256 key whose Y coordinate starts with a zero byte (04:1e:af:…
	// Y = 00:54:85:6e:…), found by generating keys until one did.
	pubP256LeadingZero = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHq+bVOCD1Comgny7VlI0AS+BIABQ
pDUYrmprvqVODGIAVIVuAqG3OOuksXYqF6Bg/lYFrACqjzcowCRqdVNnLQ==
-----END PUBLIC KEY-----`
	// openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521
	pubP521 = `-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQBe0JgUs8UkQ7fyttukbM5c1cqKRKl
v0DBmni+tBbe77ZZocSgCSgLiqH1YPcxnayL8kvH3/6d4V+YgWXODNjx8+wAeW+1
tsNku1whGU5tiIxqH+E4QELCoJv9KcqEQkLXHxfIgZudDR4OUb9BWyTXSeg+wa5z
hPCde8e/nzgNWWo24a0=
-----END PUBLIC KEY-----`
	// openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
	pubRSA = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz3Mez+88iuS4rnvDaOde
kDDGet3dbM6tZeModZ0E8Pd/pCTCbrfsM9N2NVkjPVw5qeKC2MyMDcZaQKEkiNpR
XgSpfXBFdQKc6wgdzzCl1n+s2eqz3uCd91ryLNqUNv34eOUwlX9Xr0ib4DOmj5m0
4J2LTVcClgoPg1Pzbme+6G5BVBVvUmsuccvAaqQcpRvjsEf3cS7H418u2nY7B4yX
QhlyWpL+Lfah425lsprtHbr+Ck0IH0swiUpsQn4yBpfA39atoc8L6nQBnHINdTC2
nBi+nU7m4/6xflYnXhOJogeX5nLHJ4qgaQnaWICa3aaSAhclK3ObVAmnCJo66vEs
xwIDAQAB
-----END PUBLIC KEY-----`
	// openssl genpkey -algorithm ed25519
	pubEd25519 = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYLdEU/sCue0CxUzE8nCrvaWVUGUrl2FhRys2Op+WYlw=
-----END PUBLIC KEY-----`
)

func parsePublicKey(t *testing.T, s string) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatal("bad PEM in test")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

var libtrustFormat = regexp.MustCompile(`^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$`)

func TestLibtrustKeyID(t *testing.T) {
	tests := []struct {
		name string
		pem  string
		want string
	}{
		{name: "EC P-256", pem: pubP256, want: "L5F6:VWHA:OSTK:ZUEY:5JRR:GHA6:R6Z2:KYWB:UKQS:NFSC:IPUE:JQ66"},
		{name: "EC P-256 leading zero", pem: pubP256LeadingZero, want: "RSAA:DZJZ:PO27:OUXT:D453:D2MR:5LVW:ZRID:B2OU:DNGD:NOXB:NT3C"},
		{name: "EC P-521", pem: pubP521, want: "2QX6:KEWD:J4F3:ZLH7:MNGC:WFJG:ZQ57:KAYK:QQFK:3DOK:WUPE:BKWF"},
		{name: "RSA-2048", pem: pubRSA, want: "DFFP:44PF:6QVL:7MNO:AFSL:O7IS:CXHP:H42G:KJ33:NGJ5:VCG4:I3ZQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LibtrustKeyID(parsePublicKey(t, tt.pem))
			if err != nil {
				t.Fatal(err)
			}
			if !libtrustFormat.MatchString(got) {
				t.Errorf("LibtrustKeyID = %q: not 12 groups of 4 base32 characters", got)
			}
			if got != tt.want {
				t.Errorf("LibtrustKeyID = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestThumbprintKeyID(t *testing.T) {
	tests := []struct {
		name    string
		pem     string
		want    string
		rfc7638 string // the standard thumbprint when it differs from want
	}{
		{name: "EC P-256", pem: pubP256, want: "5oLJ8ngyr4cfyFtDGdM1cSKq4lbc6pVLpt6tZbYL7MU"},
		{name: "EC P-256 leading zero in Y", pem: pubP256LeadingZero, want: "vGYsw5egIbP7AaDKBoAbTVWIJfhRgt_ReZkBoPk8CSM",
			rfc7638: "VM4U21vCEtZM6o20ct-aqS2xxo6b8gyThIkGqOQzMV4"},
		{name: "EC P-521", pem: pubP521, want: "nIrJEMePjQudBc4gCw8tWg3ipSwNHwWI9WSzpUtolcc",
			rfc7638: "9lAWn19fQm_cPaaCjp_wtemZqbWKjN0hFK4wpX3uQHo"},
		{name: "RSA-2048", pem: pubRSA, want: "f-0fFZ3ynAu97PKJVBhr-h11_Aorz6VZjBMIKsLqkho"},
		{name: "Ed25519", pem: pubEd25519, want: "X7XUwR7y7BR6wRFB8RLDIIOS5_-nWPQJpWqp9bBUfjQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ThumbprintKeyID(parsePublicKey(t, tt.pem))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ThumbprintKeyID = %q, want %q", got, tt.want)
			}
			if tt.rfc7638 != "" && got == tt.rfc7638 {
				t.Errorf("ThumbprintKeyID = the RFC 7638 thumbprint; distribution strips leading zero bytes")
			}
		})
	}
}

func TestKeyIDUnsupported(t *testing.T) {
	ed := parsePublicKey(t, pubEd25519)
	tests := []struct {
		name string
		fn   func(crypto.PublicKey) (string, error)
		pub  crypto.PublicKey
		want string
	}{
		{name: "libtrust Ed25519", fn: LibtrustKeyID, pub: ed, want: "unsupported public key type ed25519.PublicKey"},
		{name: "libtrust nil", fn: LibtrustKeyID, pub: nil, want: "unsupported public key type <nil>"},
		{name: "thumbprint string", fn: ThumbprintKeyID, pub: "key", want: "unsupported public key type string"},
		{name: "thumbprint empty EC key", fn: ThumbprintKeyID, pub: &ecdsa.PublicKey{}, want: "thumbprint key ID"},
		{name: "thumbprint private key", fn: ThumbprintKeyID, pub: testKey(t, "p256"), want: "unsupported public key type *ecdsa.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn(tt.pub)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "token: ") {
				t.Errorf("got %q, %v; want error containing %q", got, err, tt.want)
			}
		})
	}
}
