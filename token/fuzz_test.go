package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSecret stands for a password or PIN the fuzz targets put into a
// reference: no error message or shown name may contain it.
const fuzzSecret = "Zq7SECRETxK9"

// FuzzParseAWSKMSRef: any awskms: reference is parsed or refused, never a
// panic; what is accepted names a key, has no user information in its
// endpoint, agrees with its ARN's region and renders back to itself; and a
// password given in the reference's or the endpoint's user information is
// never shown.
func FuzzParseAWSKMSRef(f *testing.F) {
	const id = "0d9a3ee1-6b3c-4d2f-9c1e-2f7f4b8a5c10"
	for _, ref := range []string{
		"awskms:///" + id,
		"awskms:///" + id + "?region=us-east-1&endpoint=https://kms.example.com:8443",
		"awskms:///" + id + "?endpoint=http%3A%2F%2F127.0.0.1%3A4566",
		"awskms:///mrk-1234abcd12ab34cd56ef1234567890ab",
		"awskms:///arn:aws:kms:eu-west-2:111122223333:key/" + id + "?region=eu-west-2",
		"awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + id,
		"awskms:///alias/gatehouse/token-signing",
		"awskms:///arn:aws:kms:eu-west-2:111122223333:alias/token_1",
		"awskms://kms.eu-west-2.amazonaws.com/" + id,
		"awskms://AKID:secret@/" + id,
		"awskms://AKID:secret%zz@/" + id,
		"awskms:/" + id,
		"awskms:" + id,
		"awskms:///?region=eu-west-2",
		"awskms:///arn:aws:kms:eu-west-2:111122223333:grant/x",
		"awskms:///" + id + "?region=eu-west-1&region=eu-west-2",
		"awskms:///" + id + "#x",
		"awskms:///" + id + "?endpoint=https://AKID:hunter2@kms.example.com",
		"awskms:///" + id + "?endpoint=https://kms.example.com/%3Fa%3Db",
		"awskms:///" + id + "?endpoint=https://kms.example.com:x1",
	} {
		f.Add(ref, "kms.example.com:8443", uint8(0))
	}
	f.Add("awskms:///alias/a", "h@x", uint8(1))
	f.Add("awskms:///"+id, "[::1]:4566/p", uint8(2))
	f.Add("awskms:///"+id, "", uint8(3))
	f.Fuzz(func(t *testing.T, ref, host string, where uint8) {
		if r, err := parseAWSKMSRef(ref); err == nil {
			checkAWSKMSRef(t, ref, r)
		} else if !strings.HasPrefix(err.Error(), "token: key reference ") {
			t.Fatalf("%q: error %q does not name the reference", ref, err)
		}
		if strings.Contains(ref+host, fuzzSecret) {
			return
		}
		// The same key with a password in user information.
		key, _ := strings.CutPrefix(ref, "awskms:///")
		var withSecret string
		switch where % 7 {
		case 0: // in the reference's own (refused) authority
			withSecret = "awskms://AKID:" + fuzzSecret + "@" + host + "/" + key
		case 1: // in the endpoint, as written
			withSecret = "awskms:///" + key + "?endpoint=https://AKID:" + fuzzSecret + "@" + host
		case 2: // in the endpoint, query-escaped
			withSecret = "awskms:///" + key + "?endpoint=" + url.QueryEscape("https://AKID:"+fuzzSecret+"@"+host)
		case 3: // in the endpoint, between other parameters
			withSecret = "awskms:///" + key + "?region=eu-west-1&endpoint=" + url.QueryEscape("http://:"+fuzzSecret+"@"+host) + "&x=1"
		case 4: // an endpoint without its name
			withSecret = "awskms:///" + key + "?https://AKID:" + fuzzSecret + "@" + host
		case 5: // without the slashes
			withSecret = "awskms:AKID:" + fuzzSecret + "@" + host + "/" + key
		case 6: // in the key's place
			withSecret = "awskms:///AKID:" + fuzzSecret + "@" + host + "/" + key
		}
		r, err := parseAWSKMSRef(withSecret)
		if err == nil {
			t.Fatalf("%q with user information accepted: %+v", withSecret, r)
		}
		if strings.Contains(err.Error(), fuzzSecret) {
			t.Fatalf("%q: the error shows the password: %q", withSecret, err)
		}
	})
}

// checkAWSKMSRef checks what parseAWSKMSRef accepted from ref.
func checkAWSKMSRef(t *testing.T, ref string, r awsKMSRef) {
	t.Helper()
	if r.key == "" || strings.ContainsAny(r.key, "@?#") || r.shown() != "awskms:///"+r.key {
		t.Fatalf("%q: accepted %+v, shown as %q", ref, r, r.shown())
	}
	if r.endpoint != "" {
		u, err := url.Parse(r.endpoint)
		if err != nil || u.User != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("%q: accepted endpoint %q", ref, r.endpoint)
		}
	}
	if r.region != "" && checkRegion(r.region) != nil {
		t.Fatalf("%q: accepted region %q", ref, r.region)
	}
	if strings.HasPrefix(r.key, "arn:") {
		if parts := strings.Split(r.key, ":"); len(parts) < 6 || r.region != parts[3] {
			t.Fatalf("%q: region %q, ARN %q", ref, r.region, r.key)
		}
	}
	if r.alias != strings.Contains(r.key, "alias/") {
		t.Fatalf("%q: alias %v for key %q", ref, r.alias, r.key)
	}
	q := url.Values{}
	if r.region != "" {
		q.Set("region", r.region)
	}
	if r.endpoint != "" {
		q.Set("endpoint", r.endpoint)
	}
	again := r.shown()
	if len(q) > 0 {
		again += "?" + q.Encode()
	}
	if r2, err := parseAWSKMSRef(again); err != nil || r2 != r {
		t.Fatalf("%q: %+v renders as %q, which parses to %+v, %v", ref, r, again, r2, err)
	}
}

// FuzzParsePKCS11URI: any pkcs11: reference is parsed or refused, never a
// panic; what is accepted has one token selector, a key, an absolute module
// path and a PIN file, and its name with those renders back to itself; and
// the value of a pin-value or unknown attribute is never shown.
func FuzzParsePKCS11URI(f *testing.F) {
	const q = "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
	for _, ref := range []string{
		"pkcs11:token=gatehouse;object=token-key" + q,
		"pkcs11:token=My%20HSM;object=a%3Bb;id=%01%AB" + q,
		"pkcs11:serial=0a1b2c;id=%02" + q,
		"pkcs11:slot-id=3;object=k;type=private" + q,
		"pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:///etc/pin",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=s3cr3t-pin",
		"pkcs11:token=t;object=k;pin=s3cr3t-pin" + q,
		"pkcs11:token=t;object=k" + q + "&max-sessions=4",
		"pkcs11:token=t;object=k;s3cr3t-pin" + q,
		"pkcs11:token=t;object=k?module-path=libsofthsm2.so&pin-source=file:/p",
		"pkcs11:token=t;object=k;module-path=/m.so?pin-source=file:/p",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-source=|/bin/pin",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-source=file://host/p",
		"pkcs11:object=k" + q,
		"pkcs11:token=t;serial=1;object=k" + q,
		"pkcs11:token=t;object=k;object=j" + q,
		"pkcs11:token=t;object=k%zz" + q,
		"pkcs11:slot-id=x;object=k" + q,
		"pkcs11:token=t;object=k;type=public" + q,
	} {
		f.Add(ref, "pin-value", uint8(0), false)
	}
	f.Add("pkcs11:token=t;object=k"+q, "max-sessions", uint8(1), true)
	f.Add("pkcs11:token=t;object=k"+q, "x-pin", uint8(2), false)
	f.Fuzz(func(t *testing.T, ref, attr string, at uint8, inQuery bool) {
		if u, err := parsePKCS11URI(ref); err == nil {
			checkPKCS11URI(t, ref, u)
		} else if !strings.HasPrefix(err.Error(), "token: key ") {
			t.Fatalf("%q: error %q does not name the reference", ref, err)
		}
		if strings.Contains(ref+attr, fuzzSecret) {
			return
		}
		// The same reference with a pin-value or an unknown attribute
		// holding a secret, inserted at an attribute boundary.
		if attr == "" || pkcs11PublicAttrs[attr] || strings.ContainsAny(attr, "=;?&#") {
			attr = "pin-value"
		}
		ref = "pkcs11:" + strings.TrimPrefix(ref, "pkcs11:")
		path, query, hasQuery := strings.Cut(ref, "?")
		insert := func(s string, sep byte, base int) string {
			var cuts []int
			for i := base; i < len(s); i++ {
				if s[i] == sep {
					cuts = append(cuts, i)
				}
			}
			cuts = append(cuts, len(s))
			i := cuts[int(at)%len(cuts)]
			return s[:i] + string(sep) + attr + "=" + fuzzSecret + s[i:]
		}
		var withSecret string
		if inQuery && at >= 128 { // after a ; typed for &
			withSecret = path + "?" + insert(query, ';', 0)
		} else if inQuery {
			withSecret = path + "?" + insert(query, '&', 0)
		} else {
			withSecret = insert(path, ';', len("pkcs11:"))
			if hasQuery {
				withSecret += "?" + query
			}
		}
		u, err := parsePKCS11URI(withSecret)
		if err == nil {
			t.Fatalf("%q accepted: %+v", withSecret, u)
		}
		if strings.Contains(err.Error(), fuzzSecret) {
			t.Fatalf("%q: the error shows the secret: %q", withSecret, err)
		}
	})
}

// checkPKCS11URI checks what parsePKCS11URI accepted from ref.
func checkPKCS11URI(t *testing.T, ref string, u *pkcs11URI) {
	t.Helper()
	selectors := 0
	for _, set := range []bool{u.token != "", u.serial != "", u.slot != nil} {
		if set {
			selectors++
		}
	}
	if selectors != 1 || u.object == "" && len(u.id) == 0 || !filepath.IsAbs(u.modulePath) || u.pinFile == "" {
		t.Fatalf("%q: accepted %+v", ref, u)
	}
	again := u.name() + "?module-path=" + url.PathEscape(u.modulePath) + "&pin-source=file:" + url.PathEscape(u.pinFile)
	u2, err := parsePKCS11URI(again)
	if err != nil || u2.name() != u.name() || u2.modulePath != u.modulePath || u2.pinFile != u.pinFile ||
		u2.token != u.token || u2.serial != u.serial || u2.object != u.object || !bytes.Equal(u2.id, u.id) ||
		(u2.slot == nil) != (u.slot == nil) || u.slot != nil && *u2.slot != *u.slot {
		t.Fatalf("%q: %+v renders as %q, which parses to %+v, %v", ref, u, again, u2, err)
	}
}

// fuzzKeys are one key per curve, made once per fuzzing process.
var fuzzKeys = func() []*ecdsa.PrivateKey {
	var keys []*ecdsa.PrivateKey
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	return keys
}()

// FuzzAppendRawECDSA: any bytes are converted or refused, never a panic;
// a refusal leaves dst as it was; a strict DER signature whose integers fit
// is converted to those integers; and a signature made by ecdsa.SignASN1
// becomes 2×size bytes that verify.
func FuzzAppendRawECDSA(f *testing.F) {
	for _, der := range [][]byte{
		{0x30, 6, 0x02, 1, 0x7f, 0x02, 1, 0x01},
		{0x30, 8, 0x02, 2, 0x00, 0x80, 0x02, 2, 0x00, 0xff},
		{0x30, 6, 0x02, 1, 0x00, 0x02, 1, 0x00},
		{0x30, 0x81, 6, 0x02, 1, 0x01, 0x02, 1, 0x02},
		{0x30, 7, 0x02, 2, 0x01, 0x02, 0x02, 1, 0x01},
		{0x30, 6, 0x02, 1, 0x01, 0x02, 1, 0x01, 0x00},
		{0x30, 9, 0x02, 1, 0x01, 0x02, 1, 0x01, 0x02, 1, 0x01},
		{0x31, 6, 0x02, 1, 0x01, 0x02, 1, 0x01},
		{0x30, 6, 0x02, 1, 0x01, 0x02, 1},
		{0x30, 0x82, 0, 6, 0x02, 1, 0x01, 0x02, 1, 0x01},
		nil,
	} {
		f.Add(der, uint8(1), uint8(0), []byte("header.claims"))
	}
	f.Add([]byte{0x30, 6, 0x02, 1, 0x05, 0x02, 1, 0x06}, uint8(3), uint8(1), []byte{})
	f.Add([]byte{0x30, 6, 0x02, 1, 0x01, 0x02, 1, 0x7f}, uint8(2), uint8(2), []byte{0})
	f.Fuzz(func(t *testing.T, der []byte, size, curve uint8, msg []byte) {
		n := int(size % 80)
		dst := []byte("x")
		got, err := appendRawECDSA(dst, der, n)
		switch {
		case err != nil && !bytes.Equal(got, dst):
			t.Fatalf("appendRawECDSA(%x, %d) refused it but returned %x", der, n, got)
		case err == nil && (len(got) != 1+2*n || got[0] != 'x'):
			t.Fatalf("appendRawECDSA(%x, %d) = %x", der, n, got)
		}
		if r, s, ok := strictECDSA(der); ok && len(r.Bytes()) <= n && len(s.Bytes()) <= n {
			if err != nil {
				t.Fatalf("appendRawECDSA(%x, %d) refused a valid signature: %v", der, n, err)
			}
			if gr, gs := new(big.Int).SetBytes(got[1:1+n]), new(big.Int).SetBytes(got[1+n:]); gr.Cmp(r) != 0 || gs.Cmp(s) != 0 {
				t.Fatalf("appendRawECDSA(%x, %d) = %x; want r=%x s=%x", der, n, got, r, s)
			}
		}

		key := fuzzKeys[int(curve)%len(fuzzKeys)]
		size2 := (key.Curve.Params().BitSize + 7) / 8
		hash := map[int]crypto.Hash{32: crypto.SHA256, 48: crypto.SHA384, 66: crypto.SHA512}[size2]
		digest := appendDigest(nil, hash, msg)
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := appendRawECDSA(nil, sig, size2)
		if err != nil || len(raw) != 2*size2 {
			t.Fatalf("%s: appendRawECDSA(%x) = %x, %v", key.Curve.Params().Name, sig, raw, err)
		}
		r, s := new(big.Int).SetBytes(raw[:size2]), new(big.Int).SetBytes(raw[size2:])
		if !ecdsa.Verify(&key.PublicKey, digest, r, s) {
			t.Fatalf("%s: r||s %x of %x does not verify", key.Curve.Params().Name, raw, sig)
		}
	})
}

// strictECDSA parses der as DER SEQUENCE { INTEGER r, INTEGER s } with
// non-negative integers.
func strictECDSA(der []byte) (r, s *big.Int, ok bool) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R.Sign() < 0 || sig.S.Sign() < 0 {
		return nil, nil, false
	}
	// encoding/asn1 ignores elements after the last field: only what
	// encodes back to der is strict.
	if again, err := asn1.Marshal(sig); err != nil || !bytes.Equal(again, der) {
		return nil, nil, false
	}
	return sig.R, sig.S, true
}
