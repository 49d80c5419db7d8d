package token

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// awsKMSRef is a parsed awskms: key reference:
//
//	awskms:///KEY?region=REGION&endpoint=URL
//
// KEY is a key id, a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias
// (alias/NAME) or an alias ARN. region and endpoint are optional: the
// region otherwise comes from a key or alias ARN, then from the SDK's
// default chain (AWS_REGION, shared config); endpoint is for KMS-compatible
// servers.
type awsKMSRef struct {
	key      string
	alias    bool   // key names an alias (alias/NAME or an alias ARN)
	region   string // "" when neither given nor in the ARN
	endpoint string // "" for AWS's own
}

// shown returns the reference without its query, for error messages: an
// endpoint may carry user information, which must not reach a log.
func (r awsKMSRef) shown() string { return redactUserinfo("awskms:///" + r.key) }

// redactUserinfo replaces what precedes the last @ of an awskms: reference
// by "…": whatever the reference is, a user:password@ written in it is not
// shown. An accepted key never contains @.
func redactUserinfo(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		return "awskms:…" + ref[i:]
	}
	return ref
}

// quotePlain quotes s for an error message if it is a plain word (letters,
// digits, ., _ and -), which cannot hold a user:password; otherwise it
// returns "(not shown)": a mistyped query may put an endpoint's credentials
// in a parameter's name or in another parameter's value.
func quotePlain(s string) string {
	if len(s) <= 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == "" {
		return strconv.Quote(s)
	}
	return "(not shown)"
}

// parseAWSKMSRef parses ref, which starts with "awskms:".
func parseAWSKMSRef(ref string) (awsKMSRef, error) {
	var shown string
	bad := func(format string, args ...any) (awsKMSRef, error) {
		return awsKMSRef{}, fmt.Errorf("token: key reference %s: "+format, append([]any{shown}, args...)...)
	}
	u, err := url.Parse(ref)
	if err != nil {
		shown = "awskms:<unparsable>" // it may hold user information
		return bad("not a URI (awskms:///KEY-ID-OR-ARN-OR-ALIAS?region=…&endpoint=…)")
	}
	shown = redactUserinfo((&url.URL{Scheme: u.Scheme, Opaque: u.Opaque, Host: u.Host, Path: u.Path}).String())
	switch {
	case u.Opaque != "" || !strings.HasPrefix(ref, "awskms://"):
		return bad("must start with awskms:/// (three slashes: the host is empty)")
	case u.Host != "" || u.User != nil:
		return bad("the host must be empty (awskms:///KEY, three slashes); the key service's address goes in endpoint=")
	case u.Fragment != "" || strings.Contains(ref, "#"):
		return bad("a fragment (#…) is not allowed")
	}
	r := awsKMSRef{key: strings.TrimPrefix(u.Path, "/")}
	shown = r.shown()
	if err := r.checkKey(); err != nil {
		return bad("%v", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("malformed query")
	}
	for name, values := range q {
		if len(values) != 1 {
			return bad("parameter %s is given %d times", quotePlain(name), len(values))
		}
		switch name {
		case "region":
			if err := checkRegion(values[0]); err != nil {
				return bad("%v", err)
			}
			if r.region != "" && r.region != values[0] {
				return bad("region=%s differs from the region in the ARN, %s", values[0], r.region)
			}
			r.region = values[0]
		case "endpoint":
			if err := checkEndpoint(values[0]); err != nil {
				return bad("%v", err)
			}
			r.endpoint = values[0]
		default:
			return bad("unknown parameter %s (known: region, endpoint)", quotePlain(name))
		}
	}
	return r, nil
}

// checkKey checks r.key and sets r.alias, and r.region from an ARN.
func (r *awsKMSRef) checkKey() error {
	key := r.key
	if key == "" {
		return fmt.Errorf("the key is empty (awskms:///KEY-ID-OR-ARN-OR-ALIAS)")
	}
	if strings.HasPrefix(key, "arn:") {
		// arn:PARTITION:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
		parts := strings.SplitN(key, ":", 6)
		if len(parts) != 6 || parts[1] == "" || strings.Trim(parts[1], "abcdefghijklmnopqrstuvwxyz-") != "" || parts[2] != "kms" ||
			len(parts[4]) != 12 || strings.Trim(parts[4], "0123456789") != "" {
			return fmt.Errorf("malformed KMS ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME)")
		}
		if err := checkRegion(parts[3]); err != nil {
			return err
		}
		r.region = parts[3]
		key = parts[5]
		if id, ok := strings.CutPrefix(key, "key/"); ok {
			return checkKeyID(id)
		}
		if !strings.HasPrefix(key, "alias/") {
			return fmt.Errorf("the ARN's resource must be key/ID or alias/NAME")
		}
	}
	if name, ok := strings.CutPrefix(key, "alias/"); ok {
		r.alias = true
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-") != "" {
			return fmt.Errorf("malformed alias (alias/NAME: letters, digits, /, _ and -)")
		}
		return nil
	}
	return checkKeyID(key)
}

// checkKeyID checks a bare key id: a UUID, or mrk-… for multi-Region keys.
func checkKeyID(id string) error {
	if id == "" || len(id) > 128 || strings.Trim(id, "abcdefABCDEF0123456789-mrk") != "" {
		return fmt.Errorf("malformed key id %s (a key id, key ARN, alias/NAME or alias ARN)", quotePlain(id))
	}
	return nil
}

// checkRegion accepts region names such as eu-west-2 or us-gov-west-1.
func checkRegion(region string) error {
	if region == "" || len(region) > 64 || strings.Trim(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("malformed region %s", quotePlain(region))
	}
	return nil
}

// checkEndpoint accepts an http or https URL with a host and nothing but
// an optional path. The value is not repeated in the error: it could carry
// a password.
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return fmt.Errorf("malformed endpoint (an http:// or https:// URL)")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("endpoint must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("endpoint has no host")
	case u.User != nil:
		return fmt.Errorf("endpoint must not contain user information (credentials come from the AWS default chain)")
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("endpoint must not have a query or fragment")
	}
	if p := u.Port(); p != "" && strings.Trim(p, "0123456789") != "" {
		return fmt.Errorf("endpoint has a malformed port")
	}
	return nil
}
