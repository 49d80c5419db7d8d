package token

import (
	"fmt"
	"time"
)

// MaxCertificateValidity is the longest validity SelfSignedCertificate
// accepts: ten years.
const MaxCertificateValidity = 10 * 365 * 24 * time.Hour

// SelfSignedCertificate makes a self-signed certificate for a signing key
// and returns it as PEM: key is a PEM key file or a key reference
// (awskms:…, pkcs11:…), in which case the key service signs the
// certificate and the private key never leaves it. The certificate is valid
// from an hour before now for validity, with commonName as its subject
// (the default one of generated certificates when empty). It is what a
// registry's rootcertbundle (and token.certificate) needs for a key whose
// certificate no CA issues.
func SelfSignedCertificate(key, commonName string, validity time.Duration, now time.Time) ([]byte, error) {
	if validity <= 0 || validity > MaxCertificateValidity {
		return nil, fmt.Errorf("token: certificate validity %s: want more than 0 and at most 10 years", validity)
	}
	if commonName == "" {
		commonName = externalCommonName
	}
	if IsKeyReference(key) {
		ext, err := openExternalKey(key)
		if err != nil {
			return nil, err
		}
		defer ext.Close()
		_, certPEM, err := selfSignedCertificateFor(ext.signer, commonName, now, validity)
		return certPEM, err
	}
	k, err := loadPrivateKey(key)
	if err != nil {
		return nil, err
	}
	_, certPEM, err := selfSignedCertificateFor(k, commonName, now, validity)
	return certPEM, err
}
