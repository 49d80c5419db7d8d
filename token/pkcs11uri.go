package token

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// pkcs11URI is a parsed pkcs11: key reference (RFC 7512): which token, which
// key pair on it, the module to load and where the PIN is.
type pkcs11URI struct {
	// One of token, serial and slot selects the token.
	token, serial string
	slot          *int
	// object (CKA_LABEL) and id (CKA_ID) select the key pair; at least one.
	object string
	id     []byte
	// modulePath is the PKCS #11 module (a shared library) to load.
	modulePath string
	// pinFile holds the user PIN.
	pinFile string
}

// redactPKCS11 returns ref for error messages: the values of attributes
// other than the known, public ones are replaced by "…", so that a PIN
// given as pin-value (or under a misspelt name) is never shown.
func redactPKCS11(ref string) string {
	var b strings.Builder
	start := 0
	flush := func(end int) {
		part := ref[start:end]
		name, _, ok := strings.Cut(part, "=")
		if start == 0 { // only the first attribute follows the scheme
			name = strings.TrimPrefix(name, "pkcs11:")
		}
		switch {
		case !ok && part != "" && part != "pkcs11:":
			part = "…"
		case ok && !pkcs11PublicAttrs[name]:
			part = part[:strings.IndexByte(part, '=')] + "=…"
		}
		b.WriteString(part)
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; c == ';' || c == '?' || c == '&' {
			flush(i)
			b.WriteByte(c)
			start = i + 1
		}
	}
	flush(len(ref))
	return b.String()
}

// pkcs11PublicAttrs are the attributes whose values error messages show.
var pkcs11PublicAttrs = map[string]bool{
	"token": true, "serial": true, "slot-id": true, "object": true, "id": true, "type": true,
	"module-path": true, "pin-source": true,
}

// parsePKCS11URI parses a pkcs11: key reference. Its errors name the
// reference (redacted of any PIN) and the attribute at fault.
func parsePKCS11URI(ref string) (*pkcs11URI, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("token: key %s: %s", redactPKCS11(ref), fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return nil, bad("a PKCS #11 reference starts with pkcs11:")
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &pkcs11URI{}
	seen := map[string]bool{}
	attrs := func(s, sep string) ([][2]string, error) {
		var out [][2]string
		if s == "" {
			return nil, nil
		}
		for i, a := range strings.Split(s, sep) {
			name, raw, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				return nil, bad("attribute %d (separated by %q) is not of the form name=value", i+1, sep)
			}
			if name == "pin-value" {
				return nil, bad("pin-value is refused: a PIN does not belong in the configuration; put it in a file readable by gatehouse only and give pin-source=file:/path/to/pin")
			}
			if sep == "&" && strings.Contains(raw, ";") {
				// RFC 7512 allows no ; in a query value: it is a
				// mistyped separator, and what follows may be a PIN.
				return nil, bad("attribute %s: a query attribute's value cannot contain ; (separate query attributes with &; write a ; in a value as %%3B)", name)
			}
			if strings.Contains(raw, "pin-value=") {
				// RFC 7512 would read it as part of the value (& in a
				// path value, ? in a query value): a mistyped separator
				// before a PIN, which the key's name would then show.
				return nil, bad("attribute %s: its value holds pin-value=, after a mistyped separator; pin-value is refused: put the PIN in a file and give pin-source=file:/path/to/pin", name)
			}
			if seen[name] {
				return nil, bad("attribute %s given twice", name)
			}
			seen[name] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return nil, bad("attribute %s: bad percent-encoding", name)
			}
			out = append(out, [2]string{name, v})
		}
		return out, nil
	}
	pathAttrs, err := attrs(path, ";")
	if err != nil {
		return nil, err
	}
	queryAttrs, err := attrs(query, "&")
	if err != nil {
		return nil, err
	}
	for _, a := range pathAttrs {
		switch name, v := a[0], a[1]; name {
		case "token":
			u.token = v
		case "serial":
			u.serial = v
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, bad("slot-id must be a decimal slot number, got %q", v)
			}
			u.slot = &n
		case "object":
			u.object = v
		case "id":
			u.id = []byte(v)
		case "type":
			if v != "private" {
				return nil, bad("type must be private (the private key signs), got %q", v)
			}
		case "module-path", "pin-source":
			return nil, bad("%s is a query attribute: write it after ?", name)
		default:
			return nil, bad("unknown path attribute %s (known: token, serial, slot-id, object, id, type)", name)
		}
	}
	for _, a := range queryAttrs {
		switch name, v := a[0], a[1]; name {
		case "module-path":
			u.modulePath = v
		case "pin-source":
			p, ok := strings.CutPrefix(v, "file:")
			if !ok {
				return nil, bad("pin-source must be file:/path/to/pin, got %q", v)
			}
			if host, ok := strings.CutPrefix(p, "//"); ok { // file:///path
				if !strings.HasPrefix(host, "/") {
					return nil, bad("pin-source file URI must have an empty host (file:///path), got %q", v)
				}
				p = host
			}
			u.pinFile = p
		default:
			return nil, bad("unknown query attribute %s (known: module-path, pin-source)", name)
		}
	}
	selectors := 0
	for _, set := range []bool{u.token != "", u.serial != "", u.slot != nil} {
		if set {
			selectors++
		}
	}
	switch {
	case selectors == 0:
		return nil, bad("no token given: add token=LABEL (or serial=… or slot-id=…)")
	case selectors > 1:
		return nil, bad("give only one of token, serial and slot-id")
	case u.object == "" && len(u.id) == 0:
		return nil, bad("no key given: add object=LABEL and/or id=%%01… (the key pair's CKA_LABEL and CKA_ID)")
	case u.modulePath == "":
		return nil, bad("module-path is required: the HSM vendor's PKCS #11 module, e.g. ?module-path=/usr/lib/softhsm/libsofthsm2.so")
	case !filepath.IsAbs(u.modulePath):
		return nil, bad("module-path must be an absolute path, got %q", u.modulePath)
	case u.pinFile == "":
		return nil, bad("pin-source is required: &pin-source=file:/path/to/pin (a file holding the user PIN)")
	}
	return u, nil
}

// name is the reference's path part in canonical form, without the module
// and PIN source: how the key is shown in logs, errors and /readyz.
func (u *pkcs11URI) name() string {
	var parts []string
	switch {
	case u.token != "":
		parts = append(parts, "token="+pkcs11Escape(u.token))
	case u.serial != "":
		parts = append(parts, "serial="+pkcs11Escape(u.serial))
	case u.slot != nil:
		parts = append(parts, "slot-id="+strconv.Itoa(*u.slot))
	}
	if u.object != "" {
		parts = append(parts, "object="+pkcs11Escape(u.object))
	}
	if len(u.id) > 0 {
		var b strings.Builder
		for _, c := range u.id {
			fmt.Fprintf(&b, "%%%02x", c)
		}
		parts = append(parts, "id="+b.String())
	}
	return "pkcs11:" + strings.Join(parts, ";")
}

// pkcs11Escape percent-encodes what RFC 7512 does not allow unencoded in a
// path attribute value.
func pkcs11Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]@!$'()*+,=&", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
