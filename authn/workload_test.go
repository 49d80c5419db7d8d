package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/oidctest"
)

const testAudience = "https://registry.example.com"

// newTestWorkload serves an issuer and a Workload trusting it with GitHub's
// mapping: account ci:${claims:repository}, labels from repository, ref and
// a list claim, owner and ref required.
func newTestWorkload(t *testing.T, edit func(*WorkloadIssuer)) (*Workload, *oidctest.Issuer, *fakeClock) {
	t.Helper()
	is := oidctest.New(t)
	clock := &fakeClock{now: time.Now()}
	c := WorkloadIssuer{Issuer: is.URL, Audience: testAudience, CAFile: is.CAFile,
		Account:        "ci:${claims:repository}",
		Labels:         map[string]string{"repository": "repository", "ref": "ref", "groups": "groups", "namespace": "kubernetes.io.namespace"},
		RequiredClaims: map[string]string{"repository_owner": "octo-org"}}
	if edit != nil {
		edit(&c)
	}
	w, err := NewWorkload(WorkloadConfig{c}, WithWorkloadClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, is, clock
}

// segment base64url-encodes v as JSON.
func segment(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestWorkloadGitHubToken(t *testing.T) {
	w, is, clock := newTestWorkload(t, nil)
	claims := oidctest.GitHubClaims(is.URL, testAudience, clock.Now())
	claims["groups"] = []string{"builders", "pushers"}
	acct, err := w.Authenticate(context.Background(), "anything", is.Sign(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	want := Account{Name: "ci:octo-org/octo-repo", NoRefresh: true,
		Labels:  Labels{"repository": {"octo-org/octo-repo"}, "ref": {"refs/heads/main"}, "groups": {"builders", "pushers"}},
		Expires: time.Unix(claims["exp"].(int64), 0)}
	if !reflect.DeepEqual(acct, want) {
		t.Errorf("account = %+v\nwant %+v", acct, want)
	}
}

func TestWorkloadKubernetesToken(t *testing.T) {
	w, is, clock := newTestWorkload(t, func(c *WorkloadIssuer) {
		c.Account = "k8s:${claims:kubernetes.io.namespace}:${claims:kubernetes.io.serviceaccount.name}"
		c.RequiredClaims = map[string]string{"kubernetes.io.namespace": "builds"}
	})
	is.Rotate(t, jose.ES256) // Kubernetes may sign with ES256
	acct, err := w.Authenticate(context.Background(), "k8s", is.Sign(t, oidctest.KubernetesClaims(is.URL, testAudience, clock.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if acct.Name != "k8s:builds:ci-pusher" || !reflect.DeepEqual(acct.Labels["namespace"], []string{"builds"}) {
		t.Errorf("account = %+v", acct)
	}
}

// badTokens are tokens a GitHub-configured Workload must refuse, with the
// words its reason must hold.
func TestWorkloadBadTokens(t *testing.T) {
	w, is, clock := newTestWorkload(t, nil)
	now := clock.Now()
	good := func() map[string]any { return oidctest.GitHubClaims(is.URL, testAudience, now) }
	with := func(k string, v any) string {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return is.Sign(t, c)
	}
	valid := is.Sign(t, good())
	parts := strings.Split(valid, ".")
	kid := is.SigningKey().KID

	tampered := good()
	tampered["repository"] = "evil-org/evil-repo"
	pub, _ := x509.MarshalPKIXPublicKey(is.SigningKey().Private.Public().(*rsa.PublicKey))
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	hsInput := segment(t, map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + parts[1]
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	ghost := oidctest.Key{KID: "ghost", Alg: jose.RS256, Private: mustRSA(t)}
	stranger := oidctest.Key{KID: kid, Alg: jose.RS256, Private: mustRSA(t)}

	for _, tc := range []struct {
		name, token, why string
	}{
		{"expired", with("exp", now.Add(-time.Minute).Unix()), "expired"},
		{"wrong audience", with("aud", "https://other.example.com"), "aud"},
		{"audience list without ours", with("aud", []string{"a", "b"}), "aud"},
		{"no exp", with("exp", nil), "exp is missing"},
		{"no iat", with("iat", nil), "iat is missing"},
		{"older than max_age", with("iat", now.Add(-2*time.Hour).Unix()), "max_age"},
		{"issued in the future", with("iat", now.Add(time.Hour).Unix()), "future"},
		{"not yet valid", with("nbf", now.Add(time.Hour).Unix()), "not valid before"},
		{"required claim differs", with("repository_owner", "evil-org"), "required claim repository_owner"},
		{"required claim missing", with("repository_owner", nil), "required claim repository_owner"},
		{"account claim missing", with("repository", nil), "account claim"},
		{"account claim not a string", with("repository", map[string]any{"a": 1}), "account claim"},
		{"unknown kid", oidctest.SignWith(t, ghost, good()), "unknown kid"},
		{"signed by another key with our kid", oidctest.SignWith(t, stranger, good()), "verification"},
		{"alg none", segment(t, map[string]string{"alg": "none", "kid": kid}) + "." + parts[1] + ".", "algorithm"},
		{"HS256 with the public key", hs256, "algorithm"},
		{"tampered payload", parts[0] + "." + segment(t, tampered) + "." + parts[2], "verification"},
		{"oversized", with("padding", strings.Repeat("x", MaxWorkloadTokenBytes)), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Authenticate(context.Background(), "u", tc.token)
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("err = %v, want ErrBadToken", err)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("err = %v, want it to say %q", err, tc.why)
			}
		})
	}
	if _, err := w.Authenticate(context.Background(), "u", valid); err != nil {
		t.Errorf("the untouched token: %v", err)
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWorkloadUsernameAndIssuer(t *testing.T) {
	w, is, clock := newTestWorkload(t, func(c *WorkloadIssuer) { c.Username = "oidc" })
	tok := is.Sign(t, oidctest.GitHubClaims(is.URL, testAudience, clock.Now()))
	if _, err := w.Authenticate(context.Background(), "oidc", tok); err != nil {
		t.Errorf("configured user name: %v", err)
	}
	if _, err := w.Authenticate(context.Background(), "bob", tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("other user name: err = %v, want ErrBadToken", err)
	}
	other := is.Sign(t, oidctest.GitHubClaims("https://elsewhere.example.com", testAudience, clock.Now()))
	if _, err := w.Authenticate(context.Background(), "oidc", other); !errors.Is(err, ErrNoMatch) {
		t.Errorf("untrusted issuer: err = %v, want ErrNoMatch", err)
	}
	if w.Trusts("https://elsewhere.example.com") || !w.Trusts(is.URL) {
		t.Error("Trusts is wrong")
	}
}

// TestWorkloadKeyRotation rotates the issuer's key mid-test: a token under
// the new kid makes one fetch; made-up kids make at most one fetch per
// jwks_min_refresh; after the issuer drops the old key, tokens under it
// stop working once the set is fetched again.
func TestWorkloadKeyRotation(t *testing.T) {
	w, is, clock := newTestWorkload(t, func(c *WorkloadIssuer) { c.JWKSMinRefresh = 10 * time.Second })
	ctx := context.Background()
	claims := func() map[string]any { return oidctest.GitHubClaims(is.URL, testAudience, clock.Now()) }
	old := is.Sign(t, claims())
	if _, err := w.Authenticate(ctx, "u", old); err != nil {
		t.Fatal(err)
	}
	if n := is.Fetches(); n != 1 {
		t.Fatalf("fetches after the first token = %d, want 1", n)
	}
	clock.Add(11 * time.Second)
	is.Rotate(t, jose.ES256)
	fresh := is.Sign(t, claims())
	if _, err := w.Authenticate(ctx, "u", fresh); err != nil {
		t.Fatalf("token under the rotated key: %v", err)
	}
	if n := is.Fetches(); n != 2 {
		t.Fatalf("fetches after the rotation = %d, want 2", n)
	}
	// A storm of made-up kids: no fetch within the interval.
	for range 50 {
		ghost := oidctest.Key{KID: "ghost", Alg: jose.ES256, Private: is.SigningKey().Private}
		if _, err := w.Authenticate(ctx, "u", oidctest.SignWith(t, ghost, claims())); !errors.Is(err, ErrBadToken) {
			t.Fatalf("made-up kid: err = %v", err)
		}
	}
	if n := is.Fetches(); n != 2 {
		t.Fatalf("fetches after 50 made-up kids = %d, want 2 (rate limit)", n)
	}
	// The issuer drops the old key: once fetched again, it is refused.
	is.Drop()
	clock.Add(11 * time.Second)
	if _, err := w.Authenticate(ctx, "u", oidctest.SignWith(t, oidctest.Key{KID: "other", Alg: jose.ES256, Private: is.SigningKey().Private}, claims())); !errors.Is(err, ErrBadToken) {
		t.Fatalf("unknown kid after the interval: %v", err)
	}
	if n := is.Fetches(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}
	if _, err := w.Authenticate(ctx, "u", old); !errors.Is(err, ErrBadToken) {
		t.Errorf("token under the dropped key: err = %v, want ErrBadToken", err)
	}
}

// TestWorkloadIssuerDown: with the issuer down, the keys of the last good
// fetch keep working for jwks_max_stale; a kid they lack is
// ErrUnavailable (503), not a 401; past jwks_max_stale everything is.
func TestWorkloadIssuerDown(t *testing.T) {
	w, is, clock := newTestWorkload(t, func(c *WorkloadIssuer) { c.JWKSMaxStale = time.Hour; c.MaxAge = 24 * time.Hour })
	ctx := context.Background()
	sign := func() string { return is.Sign(t, oidctest.GitHubClaims(is.URL, testAudience, clock.Now())) }
	if _, err := w.Authenticate(ctx, "u", sign()); err != nil {
		t.Fatal(err)
	}
	is.SetDown(true)
	clock.Add(30 * time.Minute) // past the freshness: a fetch is tried and fails
	if _, err := w.Authenticate(ctx, "u", sign()); err != nil {
		t.Fatalf("stale keys while the issuer is down: %v", err)
	}
	is.Rotate(t, jose.RS256)
	clock.Add(time.Minute)
	if _, err := w.Authenticate(ctx, "u", sign()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("new kid while down: err = %v, want ErrUnavailable", err)
	}
	clock.Add(31 * time.Minute) // past jwks_max_stale
	is.Drop()
	is.Rotate(t, jose.RS256)
	if _, err := w.Authenticate(ctx, "u", sign()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past jwks_max_stale: err = %v, want ErrUnavailable", err)
	}
	is.SetDown(false)
	clock.Add(time.Minute)
	if _, err := w.Authenticate(ctx, "u", sign()); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
}

func TestWorkloadStaticKeys(t *testing.T) {
	is := oidctest.New(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, is.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	is.SetDown(true) // air-gapped: never fetched
	w, err := NewWorkload(WorkloadConfig{{Issuer: "https://kubernetes.default.svc.cluster.local", Audience: testAudience,
		JWKSFile: file, Account: "k8s:${claims:sub}"}})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := w.Authenticate(context.Background(), "u", is.Sign(t, oidctest.KubernetesClaims("https://kubernetes.default.svc.cluster.local", testAudience, time.Now())))
	if err != nil || acct.Name != "k8s:system:serviceaccount:builds:ci-pusher" {
		t.Fatalf("account %+v, err %v", acct, err)
	}
	if n := is.Fetches(); n != 0 {
		t.Errorf("fetches = %d, want 0", n)
	}
}

// TestWorkloadTokenWithoutKID: a token whose header names no kid is tried
// against the issuer's key when the set holds one key only; against a set
// of several it is refused before any signature check, so a kid-less
// token never costs one verification per key.
func TestWorkloadTokenWithoutKID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rotate bool // the set holds two keys
		signer func(is *oidctest.Issuer) oidctest.Key
		why    string // "" when accepted
	}{
		{"single key, signed by it", false, func(is *oidctest.Issuer) oidctest.Key { return is.SigningKey() }, ""},
		{"single key, signed by another", false, func(*oidctest.Issuer) oidctest.Key {
			return oidctest.Key{Alg: jose.RS256, Private: mustRSA(t)}
		}, "verification"},
		{"two keys, signed by the current one", true, func(is *oidctest.Issuer) oidctest.Key { return is.SigningKey() }, "names no kid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, is, clock := newTestWorkload(t, nil)
			if tc.rotate {
				is.Rotate(t, jose.RS256)
			}
			k := tc.signer(is)
			k.KID = ""
			tok := oidctest.SignWith(t, k, oidctest.GitHubClaims(is.URL, testAudience, clock.Now()))
			if h := strings.SplitN(tok, ".", 2)[0]; strings.Contains(string(mustB64(t, h)), "kid") {
				t.Fatalf("the header names a kid: %s", mustB64(t, h))
			}
			_, err := w.Authenticate(context.Background(), "u", tok)
			switch {
			case tc.why == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.why != "" && (!errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tc.why)):
				t.Fatalf("err = %v, want ErrBadToken saying %q", err, tc.why)
			}
		})
	}
}

// mustB64 decodes base64url without padding.
func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkloadExpires: Account.Expires, how long the credential cache
// keeps a verification, is the token's exp, or iat + max_age when that is
// sooner, so a cached token is never vouched for past either bound.
func TestWorkloadExpires(t *testing.T) {
	w, is, clock := newTestWorkload(t, func(c *WorkloadIssuer) { c.MaxAge = time.Hour })
	now := clock.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name     string
		iat, exp time.Time
		want     time.Time
	}{
		{"exp first", now, now.Add(10 * time.Minute), now.Add(10 * time.Minute)},
		{"max_age first", now.Add(-50 * time.Minute), now.Add(3 * time.Hour), now.Add(10 * time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := oidctest.GitHubClaims(is.URL, testAudience, now)
			c["iat"], c["nbf"], c["exp"] = tc.iat.Unix(), tc.iat.Unix(), tc.exp.Unix()
			acct, err := w.Authenticate(context.Background(), "u", is.Sign(t, c))
			if err != nil {
				t.Fatal(err)
			}
			if !acct.Expires.Equal(tc.want) {
				t.Errorf("Expires = %v, want %v", acct.Expires, tc.want)
			}
		})
	}
}
