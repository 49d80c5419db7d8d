package registryv3

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestRollingKeyRotation follows docs/operations.md, "Rotating the signing
// key across replicas", with three gatehouse processes (one configuration
// file each) behind nginx and registry v3.1.2, while clients pull an image
// in a loop: each pull takes a new token through nginx, so from every
// replica in turn. The replicas change one at a time, each by its file and
// SIGHUP:
//
//  1. every replica gets next_certificate/next_key (it still signs with the
//     old key, and publishes both certificates);
//  2. the registry is given the bundle a replica publishes and restarted on
//     the same storage (it now trusts both keys);
//  3. every replica signs with the new pair, the old one as next_*;
//  4. once no token of the old key is in use (token.expiration in
//     production; here: every client has finished two pulls since the last
//     switch), next_* is dropped and the registry trusts the new
//     certificate alone.
//
// No pull fails. Tokens of both keys were pulled with, and at the end the
// registry refuses a token of the old key: its trust did change.
func TestRollingKeyRotation(t *testing.T) {
	nginxBin := harness.RequireNginx(t)
	dir := t.TempDir()
	oldKey := harness.WriteSigningKey(t, harness.ECP256, dir)
	newKey := harness.WriteFreshSigningKey(t, harness.ECP256, dir, "token-2")
	bin := harness.BuildGatehouse(t)
	var replicas []*rotatingReplica
	var addrs []string
	for i := range 3 {
		name := fmt.Sprintf("replica-%d", i+1)
		rdir := filepath.Join(dir, name)
		if err := os.Mkdir(rdir, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := harness.WriteBinaryConfig(t, rdir, harness.GatehouseOptions{Key: oldKey},
			"  real_ip_header: X-Forwarded-For\n  real_ip_pos: -1\n")
		r := &rotatingReplica{Process: harness.StartProcess(t, bin, cfg, name, harness.FreePort(t)), cfg: cfg}
		r.text = readText(t, cfg)
		r.keys = keyLines(oldKey, nil)
		replicas, addrs = append(replicas, r), append(addrs, r.Addr)
	}
	for _, r := range replicas {
		r.WaitReady(t, 15*time.Second)
	}
	_, nginxPort := startExampleNginx(t, nginxBin, dir, addrs)
	nginxAddr := fmt.Sprintf("127.0.0.1:%d", nginxPort)
	reg := &restartableRegistry{storage: filepath.Join(dir, "registry")}
	env := harness.NewExternalEnv(t, reg.start, oldKey, fmt.Sprintf("http://localhost:%d/auth", nginxPort))
	client := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	const repo = "alice/rotation"
	pulls := startPulls(t, env, "http://"+nginxAddr+"/auth", repo, env.MustPush(t, harness.Alice, repo), oldKey, newKey)
	pulls.during(time.Second)

	// 1. Publish the next pair, replica by replica.
	for _, r := range replicas {
		r.use(t, client, oldKey, &newKey)
		pulls.during(300 * time.Millisecond)
	}
	// 2. The registry trusts both, from the bundle a replica publishes.
	_, bundle := get(t, client, "http://"+nginxAddr+"/.well-known/rootcertbundle.pem")
	if got := certificates(t, []byte(bundle)); len(got) != 2 || !bytes.Equal(got[0], oldKey.CertDER) || !bytes.Equal(got[1], newKey.CertDER) {
		t.Fatalf("the published bundle has %d certificates, want the old then the new one:\n%s", len(got), bundle)
	}
	bundlePath := filepath.Join(dir, "rootcertbundle.pem")
	if err := os.WriteFile(bundlePath, []byte(bundle), 0o600); err != nil {
		t.Fatal(err)
	}
	reg.restart(t, bundlePath)
	pulls.during(300 * time.Millisecond)
	// 3. Switch, replica by replica: the new pair signs, the old one is next.
	for _, r := range replicas {
		r.use(t, client, newKey, &oldKey)
		pulls.during(300 * time.Millisecond)
	}
	// 4. Retire the old pair once its tokens are out of use.
	pulls.drain(t)
	for _, r := range replicas {
		r.use(t, client, newKey, nil)
	}
	reg.restart(t, newKey.CertPath)
	pulls.during(time.Second)

	ok, failed, failures := pulls.stop()
	t.Logf("%d pulls during the rotation, %d failed; %d with a token of the old key and %d of the new one taken by the test, the others through the realm",
		ok+failed, failed, pulls.signed[0].Load(), pulls.signed[1].Load())
	if failed != 0 {
		t.Errorf("%d pulls failed, e.g.:\n%s", failed, strings.Join(failures, "\n"))
	}
	if pulls.signed[0].Load() == 0 || pulls.signed[1].Load() == 0 {
		t.Errorf("pulls with tokens of the old key: %d, of the new key: %d; want both", pulls.signed[0].Load(), pulls.signed[1].Load())
	}
	old := authn.FromConfig(authn.AuthConfig{RegistryToken: pulls.oldToken.Load().(string)})
	_, err := env.PullWith(t, old, repo)
	env.RequireDeniedByRegistry(t, err, "pulling with a token of the retired key")
	for _, r := range replicas {
		if lines, n, _ := r.LogLines("reload rejected", 3); n > 0 {
			t.Errorf("%s rejected %d reloads: %s", r.Name, n, strings.Join(lines, "\n"))
		}
	}
}

// rotatingReplica is a gatehouse process with a configuration file of its
// own.
type rotatingReplica struct {
	*harness.Process
	cfg  string // its path
	text string // its content
	keys string // the key lines in it
}

// keyLines are the token section's key lines for cur and, if set, next.
func keyLines(cur harness.SigningKey, next *harness.SigningKey) string {
	s := fmt.Sprintf("  certificate: %q\n  key: %q\n", cur.CertPath, cur.KeyPath)
	if next != nil {
		s += fmt.Sprintf("  next_certificate: %q\n  next_key: %q\n", next.CertPath, next.KeyPath)
	}
	return s
}

// use rewrites the replica's configuration to sign with cur and publish
// next too (none when nil), sends SIGHUP and waits until the replica
// publishes the bundle and signs with cur.
func (r *rotatingReplica) use(t *testing.T, c *http.Client, cur harness.SigningKey, next *harness.SigningKey) {
	t.Helper()
	keys := keyLines(cur, next)
	if !strings.Contains(r.text, r.keys) {
		t.Fatalf("%s: no %q in\n%s", r.cfg, r.keys, r.text)
	}
	r.text, r.keys = strings.Replace(r.text, r.keys, keys, 1), keys
	tmp := r.cfg + ".new" // renamed into place: a reload never sees half a file
	if err := os.WriteFile(tmp, []byte(r.text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.cfg); err != nil {
		t.Fatal(err)
	}
	r.Reload(t)
	want := [][]byte{cur.CertDER}
	if next != nil {
		want = append(want, next.CertDER)
	}
	var bundle, signer string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, b := get(t, c, "http://"+r.Addr+"/.well-known/rootcertbundle.pem")
		bundle = b
		got := certificates(t, []byte(b))
		tok := tokenFrom(t, c, "http://"+r.Addr+"/auth", "alice/rotation")
		der, err := signerOf(tok)
		if err != nil {
			t.Fatal(err)
		}
		signer = base64.StdEncoding.EncodeToString(der)
		if bytes.Equal(der, cur.CertDER) && len(got) == len(want) &&
			bytes.Equal(got[0], want[0]) && (len(want) == 1 || bytes.Equal(got[1], want[1])) {
			return
		}
	}
	t.Fatalf("%s did not take its new keys within 10 s of SIGHUP: bundle\n%s\nsigner %s\n--- log ---\n%s",
		r.Name, bundle, signer, r.LogTail(20))
}

// tokenFrom asks realm, a replica, for alice's pull token on repo.
func tokenFrom(t *testing.T, c *http.Client, realm, repo string) string {
	t.Helper()
	q := url.Values{"service": {harness.Service}, "scope": {"repository:" + repo + ":pull"}}
	req, _ := http.NewRequest(http.MethodGet, realm+"?"+q.Encode(), nil)
	req.SetBasicAuth(harness.Alice.User, harness.Alice.Password)
	req.Header.Set("X-Forwarded-For", "127.0.0.1") // as nginx would
	return tokenAnswer(t, c, req, "token from "+realm).Token
}

// signerOf returns the certificate (DER) in the x5c header of a token.
func signerOf(token string) ([]byte, error) {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(b, &h); err != nil || len(h.X5C) == 0 {
		return nil, fmt.Errorf("token header %s: no x5c (%v)", b, err)
	}
	return base64.StdEncoding.DecodeString(h.X5C[0])
}

// certificates returns the DER of each certificate in a PEM bundle.
func certificates(t *testing.T, bundle []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return out
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, b.Bytes)
		}
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// restartableRegistry is a registry v3 on filesystem storage that the test
// restarts with another rootcertbundle, as an operator restarts a
// registry: requests in flight finish on the old one, new ones go to the
// new one, the images stay.
type restartableRegistry struct {
	storage string
	auth    harness.RegistryAuth
	current atomic.Pointer[http.Handler]
}

// start is a harness.RegistryFactory.
func (r *restartableRegistry) start(t testing.TB, a harness.RegistryAuth) http.Handler {
	r.auth = a
	r.restart(t, a.RootCertBundle)
	return r
}

// restart replaces the registry by one trusting bundle.
func (r *restartableRegistry) restart(t testing.TB, bundle string) {
	a := r.auth
	a.RootCertBundle = bundle
	h := newRegistryOn(t, a, configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": r.storage},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	})
	r.current.Store(&h)
}

func (r *restartableRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	(*r.current.Load()).ServeHTTP(w, req)
}

// pulls is clients pulling one image in a loop: even-numbered ones take a
// token from the realm themselves and pull with it, noting which key
// signed it; odd-numbered ones let go-containerregistry go through the
// realm.
type pulls struct {
	*load
	signed   [2]atomic.Int64 // successful pulls with a token of the old, the new key
	oldToken atomic.Value    // a token of the old key
	done     []atomic.Int64  // steps finished, per client
}

const pullWorkers = 4

func startPulls(t *testing.T, env *harness.Env, realm, repo string, digest v1.Hash, oldKey, newKey harness.SigningKey) *pulls {
	p := &pulls{done: make([]atomic.Int64, pullWorkers)}
	var once sync.Once
	p.load = runLoad(t, pullWorkers, func(c *http.Client, w, n int) error {
		defer p.done[w].Add(1)
		var got v1.Hash
		var err error
		if w%2 == 1 {
			got, err = env.Pull(t, harness.Alice, repo)
		} else {
			got, err = p.pullWithToken(t, env, c, realm, repo, oldKey, newKey, &once)
		}
		switch {
		case err != nil:
			return fmt.Errorf("client %d, pull %d: %w", w, n, err)
		case got != digest:
			return fmt.Errorf("client %d, pull %d: digest %s, pushed %s", w, n, got, digest)
		}
		return nil
	})
	return p
}

func (p *pulls) pullWithToken(t *testing.T, env *harness.Env, c *http.Client, realm, repo string, oldKey, newKey harness.SigningKey, once *sync.Once) (v1.Hash, error) {
	q := url.Values{"service": {harness.Service}, "scope": {"repository:" + repo + ":pull"}}
	req, _ := http.NewRequest(http.MethodGet, realm+"?"+q.Encode(), nil)
	req.SetBasicAuth(harness.Alice.User, harness.Alice.Password)
	status, body, err := do(c, req)
	if err != nil || status != http.StatusOK {
		return v1.Hash{}, fmt.Errorf("token: %d %v %.300s", status, err, body)
	}
	var a struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		return v1.Hash{}, fmt.Errorf("token: %w", err)
	}
	der, err := signerOf(a.Token)
	if err != nil {
		return v1.Hash{}, err
	}
	key := 0
	switch {
	case bytes.Equal(der, oldKey.CertDER):
		once.Do(func() { p.oldToken.Store(a.Token) })
	case bytes.Equal(der, newKey.CertDER):
		key = 1
	default:
		return v1.Hash{}, errors.New("a token signed by neither key")
	}
	got, err := env.PullWith(t, authn.FromConfig(authn.AuthConfig{RegistryToken: a.Token}), repo)
	if err == nil {
		p.signed[key].Add(1)
	}
	return got, err
}

// drain waits until every client has finished two pulls since it was
// called, so that no token taken before is still in use.
func (p *pulls) drain(t *testing.T) {
	t.Helper()
	start := make([]int64, len(p.done))
	for i := range p.done {
		start[i] = p.done[i].Load()
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		drained := true
		for i := range p.done {
			drained = drained && p.done[i].Load() >= start[i]+2
		}
		if drained {
			return
		}
	}
	t.Fatal("the pulling clients did not finish two pulls within 30 s")
}
