package token

import (
	"bytes"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	const q = "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
	for _, tc := range []struct {
		name     string
		ref      string
		wantName string // canonical name when valid
		wantID   []byte
		wantPIN  string // the pin file when valid
		wantErr  string // part of the error when invalid
	}{
		{name: "token and object", ref: "pkcs11:token=gatehouse;object=token-key" + q,
			wantName: "pkcs11:token=gatehouse;object=token-key", wantPIN: "/run/secrets/pin"},
		{name: "percent-encoded id and label", ref: "pkcs11:token=My%20HSM;object=a%3Bb;id=%01%AB" + q,
			wantName: "pkcs11:token=My%20HSM;object=a%3Bb;id=%01%ab", wantID: []byte{0x01, 0xab}, wantPIN: "/run/secrets/pin"},
		{name: "serial and id only", ref: "pkcs11:serial=0a1b2c;id=%02" + q,
			wantName: "pkcs11:serial=0a1b2c;id=%02", wantID: []byte{2}, wantPIN: "/run/secrets/pin"},
		{name: "slot-id and type=private", ref: "pkcs11:slot-id=3;object=k;type=private" + q,
			wantName: "pkcs11:slot-id=3;object=k", wantPIN: "/run/secrets/pin"},
		{name: "file URI with empty host", ref: "pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:///etc/pin",
			wantName: "pkcs11:token=t;object=k", wantPIN: "/etc/pin"},

		{name: "pin-value refused", ref: "pkcs11:token=t;object=k?module-path=/m.so&pin-value=s3cr3t-pin",
			wantErr: "pin-value is refused: a PIN does not belong in the configuration; put it in a file readable by gatehouse only and give pin-source=file:"},
		{name: "pin-value in the path refused", ref: "pkcs11:token=t;object=k;pin-value=s3cr3t-pin" + q,
			wantErr: "pin-value is refused"},
		{name: "unknown path attribute", ref: "pkcs11:token=t;object=k;pin=s3cr3t-pin" + q,
			wantErr: "token: key pkcs11:token=t;object=k;pin=…?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin: unknown path attribute pin"},
		{name: "unknown path attribute named like the scheme and a public one", ref: "pkcs11:token=t;object=k;pkcs11:token=s3cr3t-pin" + q,
			wantErr: "token: key pkcs11:token=t;object=k;pkcs11:token=…?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin: unknown path attribute pkcs11:token"},
		{name: "unknown query attribute named like the scheme and a public one", ref: "pkcs11:token=t;object=k" + q + "&pkcs11:module-path=s3cr3t-pin",
			wantErr: "unknown query attribute pkcs11:module-path"},
		{name: "pin-value after a ; in the query", ref: "pkcs11:token=t;object=k?module-path=/m.so;pin-value=s3cr3t-pin&pin-source=file:/p",
			wantErr: "token: key pkcs11:token=t;object=k?module-path=/m.so;pin-value=…&pin-source=file:/p: attribute module-path: a query attribute's value cannot contain ;"},
		{name: "escaped ; in a query value", ref: "pkcs11:token=t;object=k?module-path=/opt/a%3Bb.so&pin-source=file:/p",
			wantName: "pkcs11:token=t;object=k", wantPIN: "/p"},
		{name: "unknown query attribute", ref: "pkcs11:token=t;object=k" + q + "&max-sessions=4",
			wantErr: "unknown query attribute max-sessions"},
		{name: "attribute without value", ref: "pkcs11:token=t;object=k;s3cr3t-pin" + q,
			wantErr: "attribute 3 (separated by \";\") is not of the form name=value"},
		{name: "module-path missing", ref: "pkcs11:token=t;object=k?pin-source=file:/p",
			wantErr: "module-path is required"},
		{name: "module-path relative", ref: "pkcs11:token=t;object=k?module-path=libsofthsm2.so&pin-source=file:/p",
			wantErr: "module-path must be an absolute path"},
		{name: "module-path in the path", ref: "pkcs11:token=t;object=k;module-path=/m.so?pin-source=file:/p",
			wantErr: "module-path is a query attribute"},
		{name: "pin-source missing", ref: "pkcs11:token=t;object=k?module-path=/m.so",
			wantErr: "pin-source is required"},
		{name: "pin-source not a file", ref: "pkcs11:token=t;object=k?module-path=/m.so&pin-source=|/bin/pin",
			wantErr: "pin-source must be file:/path/to/pin"},
		{name: "pin-source file URI with a host", ref: "pkcs11:token=t;object=k?module-path=/m.so&pin-source=file://host/p",
			wantErr: "empty host"},
		{name: "pin-value after a & in the path", ref: "pkcs11:token=t;object=k&pin-value=s3cr3t-pin" + q,
			wantErr: "attribute object: its value holds pin-value="},
		{name: "pin-value after a ? in the query", ref: "pkcs11:token=t;object=k?module-path=/m.so?pin-value=s3cr3t-pin&pin-source=file:/p",
			wantErr: "attribute module-path: its value holds pin-value="},
		{name: "no token", ref: "pkcs11:object=k" + q, wantErr: "no token given"},
		{name: "two token selectors", ref: "pkcs11:token=t;serial=1;object=k" + q, wantErr: "only one of token, serial and slot-id"},
		{name: "no key", ref: "pkcs11:token=t" + q, wantErr: "no key given"},
		{name: "attribute twice", ref: "pkcs11:token=t;object=k;object=j" + q, wantErr: "attribute object given twice"},
		{name: "bad percent-encoding", ref: "pkcs11:token=t;object=k%zz" + q, wantErr: "attribute object: bad percent-encoding"},
		{name: "bad slot-id", ref: "pkcs11:slot-id=x;object=k" + q, wantErr: "slot-id must be a decimal slot number"},
		{name: "type public", ref: "pkcs11:token=t;object=k;type=public" + q, wantErr: "type must be private"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parsePKCS11URI(tc.ref)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("parsed %+v; want an error containing %q", u, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t-pin") {
					t.Errorf("the error shows the PIN: %q", err)
				}
				if !strings.HasPrefix(err.Error(), "token: key pkcs11:") {
					t.Errorf("the error %q does not name the reference", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.name() != tc.wantName || !bytes.Equal(u.id, tc.wantID) || u.pinFile != tc.wantPIN {
				t.Errorf("name %q, id %x, pin file %q; want %q, %x, %q", u.name(), u.id, u.pinFile, tc.wantName, tc.wantID, tc.wantPIN)
			}
		})
	}
}
