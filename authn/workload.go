package authn

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// WorkloadConfig is the `workload_identity:` section: the issuers whose
// short-lived OIDC ID tokens (GitHub Actions, GitLab CI `id_tokens:`,
// Kubernetes projected service-account tokens) are accepted as the
// password, their claims mapped to an account and labels:
//
//	workload_identity:
//	  - issuer: https://token.actions.githubusercontent.com
//	    audience: https://registry.example.com     # required: the token's aud must hold it
//	    # keys: OIDC discovery at {issuer}/.well-known/openid-configuration, or
//	    # jwks_uri: https://…/jwks                 # the key set's URL, without discovery
//	    # jwks_file: /etc/gatehouse/k8s-jwks.json  # a static key set (air-gapped)
//	    # ca_file: /etc/gatehouse/issuer-ca.pem    # trust roots for discovery and jwks_uri
//	    account: "ci:${claims:repository}"         # default "${claims:sub}"
//	    username: ""                               # when set, the login's user name must be it
//	    labels:                                    # label: claim (string, number, bool or list of strings)
//	      repository: repository
//	      ref: ref
//	    required_claims:                           # exact values, all must hold
//	      repository_owner: myorg
//	      ref: refs/heads/main
//	    max_age: 1h                                # now - iat at most; default 1h
//	    clock_skew: 30s                            # on exp, nbf, iat; default 30s, at most 5m
//	    jwks_min_refresh: 30s                      # least time between fetches on an unknown kid
//	    jwks_max_stale: 24h                        # keys kept this long after the last good fetch
//
// A claim is named by its key, or by a dotted path into nested objects
// ("kubernetes.io.namespace"). See docs/workload-identity.md.
type WorkloadConfig []WorkloadIssuer

// WorkloadIssuer is one trusted issuer of WorkloadConfig.
type WorkloadIssuer struct {
	Issuer         string            `yaml:"issuer"`
	Audience       string            `yaml:"audience"`
	JWKSURI        string            `yaml:"jwks_uri"`
	JWKSFile       string            `yaml:"jwks_file"`
	CAFile         string            `yaml:"ca_file"`
	Account        string            `yaml:"account"`
	Username       string            `yaml:"username"`
	Labels         map[string]string `yaml:"labels"`
	RequiredClaims map[string]string `yaml:"required_claims"`
	MaxAge         time.Duration     `yaml:"max_age"`
	ClockSkew      time.Duration     `yaml:"clock_skew"`
	JWKSMinRefresh time.Duration     `yaml:"jwks_min_refresh"`
	JWKSMaxStale   time.Duration     `yaml:"jwks_max_stale"`
}

// Defaults and bounds of WorkloadIssuer.
const (
	DefaultWorkloadAccount    = "${claims:sub}"
	DefaultWorkloadMaxAge     = time.Hour
	DefaultWorkloadClockSkew  = 30 * time.Second
	MaxWorkloadClockSkew      = 5 * time.Minute
	DefaultJWKSMinRefresh     = 30 * time.Second
	DefaultJWKSMaxStale       = 24 * time.Hour
	MinJWKSMinRefresh         = time.Second
	DefaultWorkloadFreshness  = 15 * time.Minute // keys older than this are fetched again on use
	MaxWorkloadTokenBytes     = 16 << 10
	maxWorkloadDocumentBytes  = 1 << 20
	workloadFetchTimeout      = 5 * time.Second
	workloadMaxKeys           = 100
	workloadMaxClaimPathDepth = 8
)

// Files returns the key set and CA files the section names.
func (c WorkloadConfig) Files() []string {
	var out []string
	for _, w := range c {
		out = append(out, w.JWKSFile, w.CAFile)
	}
	return out
}

// Validate checks the section without I/O; problems are placed at their
// keys ("0", "audience").
func (c WorkloadConfig) Validate() error {
	var errs []error
	seen := map[string]int{}
	for i, w := range c {
		at := strconv.Itoa(i)
		if j, dup := seen[w.Issuer]; dup && w.Issuer != "" {
			errs = append(errs, cfgerr.At(fmt.Errorf("issuer %q is already listed at [%d]: list each issuer once", w.Issuer, j), at, "issuer"))
		}
		seen[w.Issuer] = i
		errs = append(errs, cfgerr.At(w.validate(), at))
	}
	return errors.Join(errs...)
}

func (w *WorkloadIssuer) validate() error {
	var errs []error
	add := func(err error, key ...string) { errs = append(errs, cfgerr.At(err, key...)) }
	switch {
	case w.Issuer == "":
		add(errors.New("is required: the token's iss, e.g. https://token.actions.githubusercontent.com"), "issuer")
	case w.JWKSFile == "" && w.JWKSURI == "":
		if err := httpsURL(w.Issuer); err != nil {
			add(fmt.Errorf("%w (OIDC discovery needs it; give jwks_file for an issuer that is not a URL)", err), "issuer")
		}
	}
	if w.Audience == "" {
		add(errors.New("is required: the aud the tokens are minted for, e.g. https://registry.example.com; "+
			"without it a token minted for any other service would be accepted"), "audience")
	}
	if w.JWKSURI != "" && w.JWKSFile != "" {
		add(errors.New("jwks_uri and jwks_file exclude each other"), "jwks_file")
	}
	if w.JWKSURI != "" {
		add(httpsURL(w.JWKSURI), "jwks_uri")
	}
	if w.JWKSFile != "" && w.CAFile != "" {
		add(errors.New("applies only to discovery and jwks_uri, not to jwks_file"), "ca_file")
	}
	if w.Account != "" {
		if _, err := parseClaimTemplate(w.Account); err != nil {
			add(err, "account")
		}
	}
	for label, claim := range w.Labels {
		if label == "" {
			add(errors.New("a label name is empty"), "labels")
		}
		add(checkClaimPath(claim), "labels", label)
	}
	for claim, want := range w.RequiredClaims {
		if err := checkClaimPath(claim); err != nil {
			add(err, "required_claims")
		}
		if want == "" {
			add(errors.New("is empty: give the exact value the claim must have"), "required_claims", claim)
		}
	}
	if w.MaxAge < 0 {
		add(errors.New("must be positive"), "max_age")
	}
	if w.ClockSkew < 0 || w.ClockSkew > MaxWorkloadClockSkew {
		add(fmt.Errorf("must be between 0 and %s", MaxWorkloadClockSkew), "clock_skew")
	}
	if w.JWKSMinRefresh != 0 && w.JWKSMinRefresh < MinJWKSMinRefresh {
		add(fmt.Errorf("must be at least %s (it bounds fetches an attacker's unknown kids can cause)", MinJWKSMinRefresh), "jwks_min_refresh")
	}
	if w.JWKSMaxStale < 0 {
		add(errors.New("must be positive"), "jwks_max_stale")
	}
	return errors.Join(errs...)
}

// httpsURL checks that s is an absolute https URL.
func httpsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("must be an https URL, got %q", s)
	}
	return nil
}

// checkClaimPath checks a claim name or dotted path.
func checkClaimPath(p string) error {
	if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return fmt.Errorf("must name a claim, e.g. repository or kubernetes.io.namespace, got %q", p)
	}
	return nil
}

// claimTemplate is an account template: literal text and claim paths.
type claimTemplate struct {
	literals []string // len(claims)+1
	claims   []string
}

var claimPlaceholder = regexp.MustCompile(`\$\{([^}]*)\}`)

// parseClaimTemplate parses "ci:${claims:repository}".
func parseClaimTemplate(s string) (claimTemplate, error) {
	var t claimTemplate
	last := 0
	for _, m := range claimPlaceholder.FindAllStringSubmatchIndex(s, -1) {
		name, ok := strings.CutPrefix(s[m[2]:m[3]], "claims:")
		if !ok {
			return t, fmt.Errorf("placeholder %q: only ${claims:NAME} is known here", s[m[0]:m[1]])
		}
		if err := checkClaimPath(name); err != nil {
			return t, fmt.Errorf("placeholder %q: %w", s[m[0]:m[1]], err)
		}
		t.literals = append(t.literals, s[last:m[0]])
		t.claims = append(t.claims, name)
		last = m[1]
	}
	t.literals = append(t.literals, s[last:])
	if strings.Contains(strings.Join(t.literals, ""), "${") {
		return t, errors.New(`has an unclosed "${"`)
	}
	if len(t.claims) == 0 {
		return t, errors.New("names no claim: every token of the issuer would be one account; use e.g. \"ci:${claims:sub}\"")
	}
	return t, nil
}

// render fills the template from claims; a missing, empty or non-scalar
// claim, or a value with control characters, is an error.
func (t claimTemplate) render(claims map[string]any) (string, error) {
	var b strings.Builder
	for i, c := range t.claims {
		b.WriteString(t.literals[i])
		v, ok := claimPath(claims, c, 0)
		if !ok {
			return "", fmt.Errorf("account claim %q is missing", c)
		}
		s, ok := scalarClaim(v)
		if !ok || s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("account claim %q is not a non-empty printable string", c)
		}
		b.WriteString(s)
	}
	b.WriteString(t.literals[len(t.claims)])
	return b.String(), nil
}

// claimPath finds a claim by key, or by a dotted path whose keys may hold
// dots themselves ("kubernetes.io.namespace" in {"kubernetes.io":
// {"namespace": …}}): the whole path first, then each split at a dot.
func claimPath(claims map[string]any, path string, depth int) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	if depth >= workloadMaxClaimPathDepth {
		return nil, false
	}
	for i := range len(path) {
		if path[i] != '.' {
			continue
		}
		if sub, ok := claims[path[:i]].(map[string]any); ok {
			if v, ok := claimPath(sub, path[i+1:], depth+1); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// scalarClaim renders a string, number or boolean claim as a string.
func scalarClaim(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case interface{ String() string }: // json.Number
		return v.String(), true
	}
	return "", false
}

// claimLabels maps the configured claims to labels: a scalar claim is one
// value, a list of scalars is its values; a missing claim is no label.
func claimLabels(claims map[string]any, spec map[string]string) (Labels, error) {
	if len(spec) == 0 {
		return nil, nil
	}
	out := make(Labels, len(spec))
	for label, path := range spec {
		v, ok := claimPath(claims, path, 0)
		if !ok || v == nil {
			continue
		}
		if s, ok := scalarClaim(v); ok {
			out[label] = []string{s}
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("label %q: claim %q is an object, not a string or a list", label, path)
		}
		vals := make([]string, 0, len(list))
		for _, e := range list {
			s, ok := scalarClaim(e)
			if !ok {
				return nil, fmt.Errorf("label %q: claim %q holds a value that is not a string", label, path)
			}
			vals = append(vals, s)
		}
		out[label] = slices.Compact(vals)
	}
	return out, nil
}
