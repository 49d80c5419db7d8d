package config

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/token"
)

// AccessTokens is the optional `access_tokens:` section: with it, access
// tokens (docs/access-tokens.md) are accepted as the password of docker
// login, and gatehouse token create mints them within its policy.
//
//	access_tokens:
//	  max_ttl: 90d                 # longest lifetime (Go duration or days); default 90d
//	  default_ttl: 30d             # lifetime when --ttl is not given; default 30d, at most max_ttl
//	  allow_no_expiry: false       # tokens without expiry (default: refused, minted or presented)
//	  max_ttl_by_label:            # longer (or shorter) maxima for owners with a label
//	    "kind=ci": 365d
//	  revoked: ["Zx3…"]            # revoked token ids (jti); gatehouse token revoke prints the line
//	  revoked_file: /etc/gatehouse/revoked  # more ids, one a line (# comments); watched, reloaded
//	  any_username: false          # accept any docker login user name, not only the owner's
//	  tokens_only:                 # password_login: false for these accounts (see TokensOnly)
//	    accounts: [alice]
//	    labels: ["kind=person"]
//	    authenticators: [ldap]
//
// The lifetime policy holds at use too: a token whose lifetime is longer
// than its owner's maximum now, or without expiry when that is not
// allowed, is refused, so tightening the policy shortens tokens already
// handed out.
type AccessTokens struct {
	MaxTTL        TTL            `yaml:"max_ttl"`
	DefaultTTL    TTL            `yaml:"default_ttl"`
	AllowNoExpiry bool           `yaml:"allow_no_expiry"`
	MaxTTLByLabel map[string]TTL `yaml:"max_ttl_by_label"`
	Revoked       []string       `yaml:"revoked"`
	RevokedFile   string         `yaml:"revoked_file"`
	AnyUsername   bool           `yaml:"any_username"`
	TokensOnly    *TokensOnly    `yaml:"tokens_only"`
}

// TokensOnly names the accounts whose registry logins take access tokens
// only (password_login: false): a token request that authenticates with
// such an account's real password, or redeems a refresh token issued to a
// password login of it, is refused with a message saying to use an
// access token. Their access tokens work, and their password still mints
// them (POST {path_prefix}/access_tokens). An account is tokens-only when
// any of the three lists names it.
type TokensOnly struct {
	// Accounts are account names.
	Accounts []string `yaml:"accounts"`
	// Labels are KEY=VALUE pairs: an account with one of them is
	// tokens-only (e.g. a label every LDAP person gets).
	Labels []string `yaml:"labels"`
	// Authenticators are authenticator names (static, htpasswd, ext_auth,
	// ldap, mongo, xorm): every account they authenticate is tokens-only.
	Authenticators []string `yaml:"authenticators"`
}

// authenticatorNames are the names TokensOnly.Authenticators may use.
var authenticatorNames = []string{"static", "htpasswd", "ext_auth", "ldap", "mongo", "xorm"}

// Refuses reports whether an account named account with labels, from the
// authenticator backend, may not log in with its password.
func (o *TokensOnly) Refuses(account, backend string, labels authn.Labels) bool {
	if o == nil {
		return false
	}
	if slices.Contains(o.Accounts, account) || slices.Contains(o.Authenticators, backend) {
		return true
	}
	for _, kv := range o.Labels {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(labels[k], v) {
			return true
		}
	}
	return false
}

func (o *TokensOnly) validate() error {
	var errs []error
	for i, kv := range o.Labels {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, cfgerr.At(fmt.Errorf("want KEY=VALUE, got %q", kv), "labels", strconv.Itoa(i)))
		}
	}
	for i, a := range o.Authenticators {
		if !slices.Contains(authenticatorNames, a) {
			errs = append(errs, cfgerr.At(fmt.Errorf("want one of %s, got %q", strings.Join(authenticatorNames, ", "), a), "authenticators", strconv.Itoa(i)))
		}
	}
	for i, a := range o.Accounts {
		if a == "" {
			errs = append(errs, cfgerr.At(errors.New("an empty account name (anonymous has no password to refuse)"), "accounts", strconv.Itoa(i)))
		}
	}
	return errors.Join(errs...)
}

// Defaults of the access_tokens section.
const (
	DefaultAccessTokenMaxTTL = 90 * 24 * time.Hour
	DefaultAccessTokenTTL    = 30 * 24 * time.Hour
)

// TTL is a lifetime written as a Go duration ("720h"), a number of days
// ("30d") or a number of seconds.
type TTL struct {
	time.Duration
	set bool
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *TTL) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a lifetime such as \"30d\"", n.Line)}}
	}
	if secs, err := strconv.ParseInt(n.Value, 10, 64); err == nil && secs >= 0 && secs < 1<<33 {
		d.Duration, d.set = time.Duration(secs)*time.Second, true
		return nil
	}
	v, err := token.ParseTTL(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a lifetime such as \"30d\" or \"12h\", got %q", n.Line, n.Value)}}
	}
	d.Duration, d.set = v, true
	return nil
}

// Files lists revoked_file, so that editing it reloads the configuration.
func (a *AccessTokens) Files() []string { return []string{a.RevokedFile} }

// Max returns max_ttl or its default.
func (a *AccessTokens) Max() time.Duration {
	if a.MaxTTL.set {
		return a.MaxTTL.Duration
	}
	return DefaultAccessTokenMaxTTL
}

// Default returns default_ttl, or its default (at most Max).
func (a *AccessTokens) Default() time.Duration {
	if a.DefaultTTL.set {
		return a.DefaultTTL.Duration
	}
	return min(DefaultAccessTokenTTL, a.Max())
}

// MaxFor returns the longest lifetime allowed to tokens of an owner with
// labels: the largest max_ttl_by_label entry whose KEY=VALUE the owner has,
// else max_ttl.
func (a *AccessTokens) MaxFor(labels authn.Labels) time.Duration {
	best, found := time.Duration(0), false
	for kv, d := range a.MaxTTLByLabel {
		k, v, _ := strings.Cut(kv, "=")
		for _, have := range labels[k] {
			if have == v && (!found || d.Duration > best) {
				best, found = d.Duration, true
			}
		}
	}
	if found {
		return best
	}
	return a.Max()
}

// RevokedIDs returns the revoked ids: revoked, and those of revoked_file,
// read now (one a line; blank lines and lines starting with # are skipped;
// an id may be followed by white space and a comment).
func (a *AccessTokens) RevokedIDs() (map[string]struct{}, error) {
	ids := make(map[string]struct{}, len(a.Revoked))
	for _, id := range a.Revoked {
		ids[id] = struct{}{}
	}
	if a.RevokedFile == "" {
		return ids, nil
	}
	f, err := os.Open(a.RevokedFile)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("access_tokens: reading revoked_file: %w", err), "revoked_file")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ids[strings.Fields(line)[0]] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, cfgerr.At(fmt.Errorf("access_tokens: reading revoked_file: %w", err), "revoked_file")
	}
	return ids, nil
}

func (a *AccessTokens) validate() error {
	var errs []error
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }
	if a.MaxTTL.set && a.MaxTTL.Duration <= 0 {
		add(errors.New("must be positive"), "max_ttl")
	}
	switch {
	case a.DefaultTTL.set && a.DefaultTTL.Duration <= 0:
		add(errors.New("must be positive"), "default_ttl")
	case a.DefaultTTL.set && a.DefaultTTL.Duration > a.Max():
		add(fmt.Errorf("%v is longer than max_ttl (%v)", a.DefaultTTL.Duration, a.Max()), "default_ttl")
	}
	for kv, d := range a.MaxTTLByLabel {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			add(fmt.Errorf("want KEY=VALUE, got %q", kv), "max_ttl_by_label", kv)
		}
		if d.Duration <= 0 {
			add(errors.New("must be positive"), "max_ttl_by_label", kv)
		}
	}
	for i, id := range a.Revoked {
		if id == "" || strings.ContainsAny(id, " \t\r\n#") {
			add(fmt.Errorf("want a token id (jti) as gatehouse token revoke prints it, got %q", id), "revoked", strconv.Itoa(i))
		}
	}
	if a.TokensOnly != nil {
		add(a.TokensOnly.validate(), "tokens_only")
	}
	return errors.Join(errs...)
}
