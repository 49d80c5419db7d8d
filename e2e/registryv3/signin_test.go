package registryv3

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/oidctest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// signInEnv is registry v3.1.2 behind a Gatehouse with oidc_auth against
// the test provider is (oidctest's authorization server), and the user
// dana (email dana@example.com, groups [devs]) who may sign in there.
// devs may push and pull devs/*.
func signInEnv(t *testing.T, is *oidctest.Issuer) (*harness.Env, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	is.AddClient(oidctest.Client{ID: "gatehouse", Secret: "s3cret", RedirectURI: base + "/oidc_auth"})
	is.AddUser(oidctest.User{Name: "dana", Password: "dana-pw",
		Claims: map[string]any{"email": "dana@example.com", "groups": []string{"devs"}}})
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		Listener: ln,
		ExtraACL: `  - match: {labels: {groups: devs}, name: "devs/*"}
    actions: [push, pull]
`,
		ExtraSections: fmt.Sprintf(`oidc_auth:
  issuer: %s
  ca_file: %s
  redirect_url: %s/oidc_auth
  client_id: gatehouse
  client_secret: s3cret
  registry_url: registry.example.com
  labels_claims: [groups]
  revalidate_after: 1m
`, is.URL, is.CAFile, base),
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
	is := oidctest.New(t)
	e, base := signInEnv(t, is)

	dir := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.UserDataDir(dir),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("ignore-certificate-errors", true), // the test provider's self-signed certificate
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
		chromedp.SendKeys(chromedp.CSS("#username"), "dana"),
		chromedp.SendKeys(chromedp.CSS("#password"), "dana-pw"),
		chromedp.Click(chromedp.CSS("#submit")),
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
	if account != "dana@example.com" || !strings.Contains(labels, "devs") {
		t.Fatalf("page shows account %q labels %q, want dana@example.com with groups devs", account, labels)
	}
	if want := "docker login registry.example.com -u dana@example.com --password-stdin"; login != want {
		t.Fatalf("page shows %q, want %q", login, want)
	}
	cred = strings.TrimSpace(cred)
	dana := harness.Cred{User: "dana@example.com", Password: cred}
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
