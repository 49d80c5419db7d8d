package authn

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// ErrBadToken is the outcome of Workload.Authenticate for a token that is
// not accepted (bad signature, wrong audience, expired, …); it is wrapped
// with the precise reason, which is logged and never sent to the client.
var ErrBadToken = errors.New("authn: workload token refused")

// workloadAlgorithms are the signature algorithms accepted: asymmetric
// ones only. "none" and the HMAC family (HS256 signed with the issuer's
// public key as the secret) are refused when the token is parsed.
var workloadAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Workload verifies the OIDC ID tokens of the issuers of a WorkloadConfig,
// given as the password. It is not in the password chain: the server sends
// it only JWT-shaped passwords whose iss it trusts (Trusts), so a token is
// never tried as another backend's password and a password never reaches
// it. Its accounts are NoRefresh: a workload's session lasts as long as
// its token: Account.Expires, its exp (or iat + max_age, if sooner), is
// how long the credential cache keeps a verification.
type Workload struct {
	issuers map[string]*workloadIssuer
	now     func() time.Time
}

type workloadIssuer struct {
	cfg     WorkloadIssuer
	account claimTemplate
	keys    *keySet
}

var _ Authenticator = (*Workload)(nil)

// WorkloadOption configures NewWorkload.
type WorkloadOption func(*Workload)

// WithWorkloadClock sets the clock for token times and key ages (tests).
func WithWorkloadClock(now func() time.Time) WorkloadOption {
	return func(w *Workload) { w.now = now }
}

// NewWorkload validates cfg and reads its jwks_file and ca_file; keys from
// the network are fetched on first use, so an issuer that is down does not
// stop Gatehouse from starting. Problems are placed at their keys.
func NewWorkload(cfg WorkloadConfig, opts ...WorkloadOption) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Workload{issuers: make(map[string]*workloadIssuer, len(cfg)), now: time.Now}
	for _, o := range opts {
		o(w)
	}
	var errs []error
	for i, c := range cfg {
		t, _ := parseClaimTemplate(orString(c.Account, DefaultWorkloadAccount))
		keys, err := newKeySet(c, w.now)
		if err != nil {
			errs = append(errs, cfgerr.At(err, strconv.Itoa(i)))
			continue
		}
		w.issuers[c.Issuer] = &workloadIssuer{cfg: c, account: t, keys: keys}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return w, nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Name returns "workload_identity".
func (w *Workload) Name() string { return "workload_identity" }

// Trusts reports whether iss is a configured issuer.
func (w *Workload) Trusts(iss string) bool {
	_, ok := w.issuers[iss]
	return ok
}

// Close releases the key fetchers' idle connections.
func (w *Workload) Close() error {
	for _, i := range w.issuers {
		i.keys.close()
	}
	return nil
}

// Lookup returns ErrNoMatch: a workload identity cannot be found again
// without its token (no refresh tokens are issued for it).
func (w *Workload) Lookup(context.Context, string) (Account, error) { return Account{}, ErrNoMatch }

// Authenticate verifies token, given as the password by user: its
// signature with the issuer's keys, iss, aud, exp, nbf, iat, its age and
// the required claims; then maps its claims to the account and labels.
// A token that fails is ErrBadToken (wrapped with why); keys that cannot
// be had are ErrUnavailable; a token from an issuer not configured is
// ErrNoMatch.
func (w *Workload) Authenticate(ctx context.Context, user, token string) (Account, error) {
	if len(token) > MaxWorkloadTokenBytes {
		return Account{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadToken, len(token), MaxWorkloadTokenBytes)
	}
	iss, ok := JWTIssuer(token)
	if !ok {
		return Account{}, ErrNoMatch
	}
	is := w.issuers[iss]
	if is == nil {
		return Account{}, ErrNoMatch
	}
	if is.cfg.Username != "" && user != is.cfg.Username {
		return Account{}, fmt.Errorf("%w: user name %q is not %q, the one configured for %s", ErrBadToken, user, is.cfg.Username, iss)
	}
	jws, err := jose.ParseSignedCompact(token, workloadAlgorithms)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	if len(jws.Signatures) != 1 {
		return Account{}, fmt.Errorf("%w: %d signatures", ErrBadToken, len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	keys, err := is.keys.candidates(ctx, h.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return Account{}, err
		}
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	payload, err := verifyWith(jws, keys)
	if err != nil {
		return Account{}, fmt.Errorf("%w: kid %q alg %s: %w", ErrBadToken, h.KeyID, h.Algorithm, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	until, err := is.checkClaims(claims, w.now())
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	name, err := is.account.render(claims)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	labels, err := claimLabels(claims, is.cfg.Labels)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return Account{Name: name, Labels: labels, NoRefresh: true, Expires: until}, nil
}

// verifyWith tries each key (one when the token names its kid).
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) ([]byte, error) {
	err := errors.New("no key of the issuer fits")
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != jws.Signatures[0].Header.Algorithm {
			err = fmt.Errorf("the key is for %s", k.Algorithm)
			continue
		}
		payload, verr := jws.Verify(k.Key)
		if verr == nil {
			return payload, nil
		}
		err = fmt.Errorf("signature verification failed: %w", verr)
	}
	return nil, err
}

// decodeClaims decodes a payload, numbers kept exact.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("the payload is not a JSON object")
	}
	return claims, nil
}

// checkClaims checks iss, aud, exp, nbf, iat, the token's age and the
// required claims at now; it returns until when the token stays good: exp,
// or iat + max_age when that comes first (the credential cache keeps the
// verification until then, so it must not outlive either bound).
func (is *workloadIssuer) checkClaims(claims map[string]any, now time.Time) (time.Time, error) {
	skew := orDuration(is.cfg.ClockSkew, DefaultWorkloadClockSkew)
	if iss, _ := claims["iss"].(string); iss != is.cfg.Issuer {
		return time.Time{}, fmt.Errorf("iss %q is not %q", iss, is.cfg.Issuer)
	}
	if !audienceHolds(claims["aud"], is.cfg.Audience) {
		return time.Time{}, fmt.Errorf("aud %v does not hold %q", claims["aud"], is.cfg.Audience)
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return time.Time{}, errors.New("exp is missing: a token that never expires is not accepted")
	}
	if !now.Before(exp.Add(skew)) {
		return time.Time{}, fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok || now.Add(skew).Before(nbf) {
			return time.Time{}, fmt.Errorf("not valid before %v", v)
		}
	}
	iat, ok := numericDate(claims["iat"])
	if !ok {
		return time.Time{}, errors.New("iat is missing")
	}
	if now.Add(skew).Before(iat) {
		return time.Time{}, fmt.Errorf("issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	maxAge := orDuration(is.cfg.MaxAge, DefaultWorkloadMaxAge)
	if now.Sub(iat) > maxAge+skew {
		return time.Time{}, fmt.Errorf("issued %s ago, more than max_age %s", now.Sub(iat).Round(time.Second), maxAge)
	}
	for path, want := range is.cfg.RequiredClaims {
		v, ok := claimPath(claims, path, 0)
		got, scalar := scalarClaim(v)
		if !ok || !scalar || got != want {
			return time.Time{}, fmt.Errorf("required claim %s is %v, not %q", path, v, want)
		}
	}
	if old := iat.Add(maxAge); old.Before(exp) {
		return old, nil
	}
	return exp, nil
}

// audienceHolds reports whether aud (a string or a list of strings) holds
// want.
func audienceHolds(aud any, want string) bool {
	switch aud := aud.(type) {
	case string:
		return aud == want
	case []any:
		for _, a := range aud {
			if a == want {
				return true
			}
		}
	}
	return false
}

// numericDate reads a JWT NumericDate (seconds, maybe fractional).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(0, 0).Add(time.Duration(f * float64(time.Second))), true
}

// JWTIssuer tells whether s is shaped like a signed JWT (three base64url
// segments, the first a JSON object with "alg") and returns its unverified
// iss ("" when it has none). Only routing may use the answer: nothing in
// it is verified.
func JWTIssuer(s string) (iss string, isJWT bool) {
	if !strings.HasPrefix(s, "eyJ") || strings.Count(s, ".") != 2 {
		return "", false
	}
	head, rest, _ := strings.Cut(s, ".")
	body, sig, _ := strings.Cut(rest, ".")
	if body == "" || !base64URL(head) || !base64URL(body) || !base64URL(sig) {
		return "", false
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil || json.Unmarshal(hb, &h) != nil || h.Alg == nil {
		return "", false
	}
	var p struct {
		Iss any `json:"iss"`
	}
	pb, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || json.Unmarshal(pb, &p) != nil {
		return "", true
	}
	iss, _ = p.Iss.(string)
	return iss, true
}

func base64URL(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
