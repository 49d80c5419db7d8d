package registryv3

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zop "github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// zitadelOP runs zitadel/oidc's example OpenID Provider in-process on a
// loopback HTTPS server, with one web client, gatehouse (secret s3cret,
// redirect URI redirect, code grant with PKCE and refresh tokens), and the
// example's in-memory users. It returns the issuer URL and a PEM file of
// the server's certificate for Gatehouse's ca_file.
func zitadelOP(t *testing.T, redirect string) (issuer, caFile string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer = "https://" + ln.Addr().String()
	clients := map[string]*storage.Client{"gatehouse": storage.WebClient("gatehouse", "s3cret", redirect)}
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer), clients)
	op := idTokenClaimsOP{st}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts := httptest.NewUnstartedServer(exampleop.SetupServer(issuer, op, logger, false))
	ts.Listener.Close()
	ts.Listener = ln
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile = filepath.Join(t.TempDir(), "op-ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(caFile, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	return issuer, caFile
}

// idTokenClaimsOP is the example provider's storage with its clients
// asserting the userinfo claims (email, locale) in the ID token, where
// Gatehouse reads them; the example's clients leave them to the userinfo
// endpoint.
type idTokenClaimsOP struct{ *storage.Storage }

// GetClientByClientID returns the stored client with the assertion on.
func (s idTokenClaimsOP) GetClientByClientID(ctx context.Context, id string) (zop.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return claimsInIDToken{c}, nil
}

// claimsInIDToken is a client whose ID tokens carry the userinfo claims.
type claimsInIDToken struct{ zop.Client }

// IDTokenUserinfoClaimsAssertion reports true: claims go into the ID token.
func (claimsInIDToken) IDTokenUserinfoClaimsAssertion() bool { return true }

// signInEnv is registry v3.1.2 behind a Gatehouse with oidc_auth against
// zitadel/oidc's example OpenID Provider, whose built-in user
// test-user@127.0.0.1 (password verysecure, email test-user@zitadel.ch,
// locale de) signs in there. Accounts whose locale label is de may push
// and pull devs/*.
func signInEnv(t *testing.T) (*harness.Env, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	issuer, caFile := zitadelOP(t, base+"/oidc_auth")
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		Listener: ln,
		ExtraACL: `  - match: {labels: {locale: de}, name: "devs/*"}
    actions: [push, pull]
`,
		ExtraSections: fmt.Sprintf(`oidc_auth:
  issuer: %s
  ca_file: %s
  redirect_url: %s/oidc_auth
  client_id: gatehouse
  client_secret: s3cret
  registry_url: registry.example.com
  scopes: [openid, email, profile, offline_access]
  labels_claims: [locale]
  revalidate_after: 1m
`, issuer, caFile, base),
	})
	return e, base
}

// TestSignInBrowser signs dana in with headless Chromium: Gatehouse's /
// redirects to /oidc_auth, which redirects to the provider's login form;
// after the form, the provider redirects back with a code, and Gatehouse's
// page shows the account, its labels, the docker login line and the
// credential. The credential read from the page then pushes and pulls
// devs/app through registry v3, its groups label granting devs/*; a
// tampered copy is refused by Gatehouse.
func TestSignInBrowser(t *testing.T) {
	browser := harness.RequireTool(t, "chromium")
	testutil.UsesComponent(t, "Chromium")
	e, base := signInEnv(t)

	dir := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.UserDataDir(dir),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("ignore-certificate-errors", true), // the provider's self-signed certificate
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err) // the first call starts the browser: no timeout on it
	}
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "test-user@127.0.0.1"),
		chromedp.SendKeys(chromedp.CSS("#password"), "verysecure"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#credential")),
	)
	if err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s from the page: %v", sel, err)
		}
		return v
	}
	account, labels, login, cred := text("#account"), text("#labels"), text("#login"), text("#credential")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if p := os.Getenv("GATEHOUSE_SIGNIN_SCREENSHOT"); p != "" {
		_ = os.WriteFile(p, shot, 0o644)
	}
	if account != "test-user@zitadel.ch" || !strings.Contains(labels, "de") {
		t.Fatalf("page shows account %q labels %q, want test-user@zitadel.ch with locale de", account, labels)
	}
	if want := "docker login registry.example.com -u test-user@zitadel.ch --password-stdin"; login != want {
		t.Fatalf("page shows %q, want %q", login, want)
	}
	cred = strings.TrimSpace(cred)
	dana := harness.Cred{User: "test-user@zitadel.ch", Password: cred}
	d := e.MustPush(t, dana, "devs/app")
	e.MustPullDigest(t, dana, "devs/app", d)
	// The docker CLI's own login with the credential copied from the page;
	// a client reading the config.json it wrote then pushes and pulls.
	harness.DockerLoginKeepsPassword(t, e, dana, "devs/cli")

	_, err = e.Pull(t, harness.Cred{User: dana.User, Password: cred[:len(cred)-2] + "AA"}, "devs/app")
	e.RequireRejectedByGatehouse(t, err, "a tampered sign-in credential")
	_, err = e.Pull(t, harness.Cred{User: "someone@example.com", Password: cred}, "devs/app")
	e.RequireRejectedByGatehouse(t, err, "the credential under another user name")
}
