package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// RegistryAuth is the registry's auth.token configuration.
type RegistryAuth struct {
	Realm          string
	Service        string
	Issuer         string
	RootCertBundle string // path of a PEM bundle; "" leaves rootcertbundle out
	JWKS           string // path of a JSON Web Key Set file (registry v3); "" leaves jwks out
}

// RegistryFactory builds a registry that trusts tokens as a configures it,
// with empty in-memory storage. The harness serves the handler.
type RegistryFactory func(t testing.TB, a RegistryAuth) http.Handler

// Env is Gatehouse and a registry that trusts it, both running, and a client
// for them.
type Env struct {
	Key       SigningKey
	Gatehouse *Gatehouse
	Registry  string // localhost:PORT

	registryLog *recorder
	transport   *http.Transport
}

// NewEnv starts Gatehouse with a kt signing key and options o, and a registry
// from newRegistry that trusts it. Both stop when the test ends; if the test
// failed, everything they saw is logged first.
func NewEnv(t testing.TB, newRegistry RegistryFactory, kt KeyType, o GatehouseOptions) *Env {
	t.Helper()
	return NewEnvTrust(t, newRegistry, kt, o, TrustBundle)
}

// NewEnvTrust is NewEnv with the registry told which keys to trust by trust:
// the signing certificate as rootcertbundle, or only a jwks file fetched
// from Gatehouse's /.well-known/jwks.json.
func NewEnvTrust(t testing.TB, newRegistry RegistryFactory, kt KeyType, o GatehouseOptions, trust Trust) *Env {
	t.Helper()
	dir := t.TempDir()
	o.Key = WriteSigningKey(t, kt, dir)
	return newEnv(t, newRegistry, dir, o, trust, string(kt))
}

// NewEnvKey is NewEnv with the signing key o.Key, whose KeyPath may be a key
// reference (awskms:…, pkcs11:…) and whose CertPath may not exist yet: give
// token.generate_if_missing in o.TokenExtra to have Gatehouse write it.
// The registry trusts the certificate found at CertPath once Gatehouse has
// started; Key.CertDER and Key.Public are filled in from it.
func NewEnvKey(t testing.TB, newRegistry RegistryFactory, o GatehouseOptions) *Env {
	t.Helper()
	return newEnv(t, newRegistry, t.TempDir(), o, TrustBundle, o.Key.KeyPath)
}

func newEnv(t testing.TB, newRegistry RegistryFactory, dir string, o GatehouseOptions, trust Trust, kt string) *Env {
	t.Helper()
	logOffset := registryLogOffset()
	e := &Env{
		registryLog: &recorder{name: "registry"},
		transport:   http.DefaultTransport.(*http.Transport).Clone(),
	}
	t.Cleanup(e.transport.CloseIdleConnections)
	e.Gatehouse = StartGatehouse(t, dir, o)
	e.Key = o.Key
	if e.Key.CertDER == nil {
		e.Key.CertDER, e.Key.Public = readCertificate(t, o.Key.CertPath)
	}
	a := RegistryAuth{
		Realm:          e.Gatehouse.Realm,
		Service:        Service,
		Issuer:         Issuer,
		RootCertBundle: e.Key.CertPath,
	}
	if trust == TrustJWKS {
		a.RootCertBundle, a.JWKS = "", e.fetchJWKS(t, dir)
	}
	h := newRegistry(t, a)
	e.Registry = serve(t, e.registryLog.wrap(h))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("environment: %s key, registry %s trusting its %s, gatehouse realm %s\n"+
				"--- %s ---\n%s--- requests to gatehouse ---\n%s--- gatehouse log ---\n%s"+
				"--- requests to the registry ---\n%s--- registry log ---\n%s",
				kt, e.Registry, trust, e.Gatehouse.Realm,
				e.Gatehouse.ConfigPath, readFile(t, e.Gatehouse.ConfigPath),
				e.Gatehouse.exchanges, e.Gatehouse.log.String(),
				e.registryLog, registryLogSince(logOffset))
		}
	})
	return e
}

// Describe names a user for messages.
func (c Cred) Describe() string {
	if c.User == "" {
		return "anonymous"
	}
	return c.User
}

func (c Cred) authenticator() authn.Authenticator {
	if c == Anonymous {
		return authn.Anonymous
	}
	return &authn.Basic{Username: c.User, Password: c.Password}
}

func (e *Env) options(t testing.TB, who Cred) (context.Context, []remote.Option) {
	return e.optionsWith(t, who.authenticator())
}

func (e *Env) optionsWith(t testing.TB, a authn.Authenticator) (context.Context, []remote.Option) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(a),
		remote.WithTransport(e.transport),
		remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 2}),
	}
}

func (e *Env) ref(t testing.TB, repo string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(e.Registry + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// Push pushes a new random image to repo:latest as who and returns its digest.
func (e *Env) Push(t testing.TB, who Cred, repo string) (v1.Hash, error) {
	t.Helper()
	return e.PushWith(t, who.authenticator(), repo)
}

// PushWith is Push with any go-containerregistry authenticator: an identity
// (refresh) token, a registry token, a keychain's answer.
func (e *Env) PushWith(t testing.TB, a authn.Authenticator, repo string) (v1.Hash, error) {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	_, opts := e.optionsWith(t, a)
	return want, remote.Write(e.ref(t, repo), img, opts...)
}

// MustPush is Push that fails the test when the push fails.
func (e *Env) MustPush(t testing.TB, who Cred, repo string) v1.Hash {
	t.Helper()
	d, err := e.Push(t, who, repo)
	if err != nil {
		t.Fatalf("%s pushing %s: %v", who.Describe(), repo, err)
	}
	return d
}

// Pull pulls repo:latest as who, downloading and verifying the manifest,
// config and every layer, and returns the manifest digest.
func (e *Env) Pull(t testing.TB, who Cred, repo string) (v1.Hash, error) {
	t.Helper()
	return e.PullWith(t, who.authenticator(), repo)
}

// PullWith is Pull with any go-containerregistry authenticator.
func (e *Env) PullWith(t testing.TB, a authn.Authenticator, repo string) (v1.Hash, error) {
	t.Helper()
	_, opts := e.optionsWith(t, a)
	img, err := remote.Image(e.ref(t, repo), opts...)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := validate.Image(img); err != nil {
		return v1.Hash{}, fmt.Errorf("validating the pulled image: %w", err)
	}
	return img.Digest()
}

// MustPullDigest pulls repo as who and fails the test unless the pull
// succeeds with digest want.
func (e *Env) MustPullDigest(t testing.TB, who Cred, repo string, want v1.Hash) {
	t.Helper()
	got, err := e.Pull(t, who, repo)
	if err != nil {
		t.Fatalf("%s pulling %s: %v", who.Describe(), repo, err)
	}
	if got != want {
		t.Fatalf("%s pulled %s with digest %s, pushed %s", who.Describe(), repo, got, want)
	}
}

// Catalog lists the registry's repositories as who.
func (e *Env) Catalog(t testing.TB, who Cred) ([]string, error) {
	t.Helper()
	reg, err := name.NewRegistry(e.Registry)
	if err != nil {
		t.Fatal(err)
	}
	ctx, opts := e.options(t, who)
	return remote.Catalog(ctx, reg, opts...)
}

// TokenResponse is Gatehouse's answer to a direct token request.
type TokenResponse struct {
	Status int
	Body   string
}

// RequestToken asks Gatehouse for a token the way registry clients do:
// GET realm?service=...&scope=... with Basic credentials.
func (e *Env) RequestToken(t testing.TB, who Cred, scopes ...string) TokenResponse {
	t.Helper()
	q := url.Values{"service": {Service}, "scope": scopes}
	req, err := http.NewRequest(http.MethodGet, e.Gatehouse.Realm+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if who != Anonymous {
		req.SetBasicAuth(who.User, who.Password)
	}
	return e.exchangeToken(t, req)
}

// exchangeToken sends a token request to Gatehouse and reads the answer.
func (e *Env) exchangeToken(t testing.TB, req *http.Request) TokenResponse {
	t.Helper()
	resp, err := (&http.Client{Transport: e.transport, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("token response: %v", err)
	}
	return TokenResponse{Status: resp.StatusCode, Body: string(body)}
}

// RequireDeniedByRegistry fails the test unless err is the registry (not
// Gatehouse) refusing the request with 401 or 403: Gatehouse issued a token
// that does not grant the action, and the registry enforced it.
func (e *Env) RequireDeniedByRegistry(t testing.TB, err error, what string) {
	t.Helper()
	terr := requireTransportError(t, err, what)
	if terr.Request == nil || terr.Request.URL.Host != e.Registry {
		t.Fatalf("%s: want a refusal from the registry %s, got one from %s: %v", what, e.Registry, requestHost(terr), err)
	}
	if terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: want status 401 or 403 from the registry, got %d: %v", what, terr.StatusCode, err)
	}
	for _, d := range terr.Errors {
		if d.Code != transport.UnauthorizedErrorCode && d.Code != transport.DeniedErrorCode {
			t.Fatalf("%s: want error code UNAUTHORIZED or DENIED, got %s: %v", what, d.Code, err)
		}
	}
}

// RequireRejectedByGatehouse fails the test unless err is Gatehouse's token
// endpoint answering 401 with an errcode body whose code is UNAUTHORIZED
// (protocol.md §0 item 3), as surfaced by go-containerregistry.
func (e *Env) RequireRejectedByGatehouse(t testing.TB, err error, what string) {
	t.Helper()
	terr := requireTransportError(t, err, what)
	if terr.Request == nil || terr.Request.URL.Host != e.Gatehouse.Host {
		t.Fatalf("%s: want a refusal from gatehouse %s, got one from %s: %v", what, e.Gatehouse.Host, requestHost(terr), err)
	}
	if terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s: want status 401 from gatehouse, got %d: %v", what, terr.StatusCode, err)
	}
	codes := make([]transport.ErrorCode, 0, len(terr.Errors))
	for _, d := range terr.Errors {
		codes = append(codes, d.Code)
	}
	if !slices.Contains(codes, transport.UnauthorizedErrorCode) {
		t.Errorf("%s: gatehouse's 401 body does not carry the errcode UNAUTHORIZED (got codes %v): %v", what, codes, err)
	}
}

// RequireRefused fails the test unless err is a 401 or 403 from either
// Gatehouse or the registry, and says which one refused.
func (e *Env) RequireRefused(t testing.TB, err error, what string) string {
	t.Helper()
	terr := requireTransportError(t, err, what)
	if terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: want status 401 or 403, got %d: %v", what, terr.StatusCode, err)
	}
	switch requestHost(terr) {
	case e.Registry:
		return "the registry"
	case e.Gatehouse.Host:
		return "gatehouse"
	}
	t.Fatalf("%s: refused by an unexpected host %s: %v", what, requestHost(terr), err)
	return ""
}

func requireTransportError(t testing.TB, err error, what string) *transport.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want it refused", what)
	}
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Fatalf("%s: want an HTTP refusal (*transport.Error), got %T: %v", what, err, err)
	}
	return terr
}

func requestHost(terr *transport.Error) string {
	if terr.Request == nil {
		return "(unknown host)"
	}
	return terr.Request.URL.Host
}

// RequireNotFound fails the test unless err says that repo has no such
// manifest or repository (status 404).
func RequireNotFound(t testing.TB, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want 404", what)
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("%s: want 404 (nothing there), got: %v", what, err)
	}
}

// RequireContains fails the test unless list contains want.
func RequireContains(t testing.TB, list []string, want, what string) {
	t.Helper()
	if !slices.Contains(list, want) {
		t.Fatalf("%s: %q missing from [%s]", what, want, strings.Join(list, " "))
	}
}
