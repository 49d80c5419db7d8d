package registryv3

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// exampleConf is the nginx example this test runs.
const exampleConf = "../../examples/nginx/gatehouse.conf"

// renderExample is examples/nginx/gatehouse.conf for this machine: the
// replicas' addresses in the upstream, nginx listening on listen without
// TLS, the access log at accessLog. It fails the test if the example no
// longer has a line it replaces.
func renderExample(t *testing.T, replicas []string, listen, accessLog string) string {
	t.Helper()
	b, err := os.ReadFile(exampleConf)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	replace := func(old, new string) {
		if !strings.Contains(conf, old) {
			t.Fatalf("%s has no %q any more: update this test with it", exampleConf, old)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	for i, addr := range replicas {
		replace(fmt.Sprintf("server 10.0.0.%d:5001 ", 11+i), "server "+addr+" ")
	}
	replace("listen 443 ssl;", "listen "+listen+";")
	replace("/var/log/nginx/gatehouse.access.log", accessLog)
	var out []string
	for _, line := range strings.SplitAfter(conf, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "ssl_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// startReplicas starts three processes of bin with cfg, named replica-1…3,
// and waits until each is ready.
func startReplicas(t *testing.T, bin, cfg string) (replicas []*harness.Process, addrs []string) {
	t.Helper()
	for i := range 3 {
		p := harness.StartProcess(t, bin, cfg, fmt.Sprintf("replica-%d", i+1), harness.FreePort(t))
		replicas, addrs = append(replicas, p), append(addrs, p.Addr)
	}
	for _, p := range replicas {
		p.WaitReady(t, 15*time.Second)
	}
	return replicas, addrs
}

// startExampleNginx starts nginx in dir/nginx with examples/nginx's
// configuration in front of addrs, on a free loopback port; it returns
// nginx and that port.
func startExampleNginx(t *testing.T, nginxBin, dir string, addrs []string) (*harness.Nginx, int) {
	t.Helper()
	port := harness.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	nginxDir := filepath.Join(dir, "nginx")
	accessLog := filepath.Join(nginxDir, "access.log")
	return harness.StartNginx(t, nginxBin, nginxDir, addr, accessLog, renderExample(t, addrs, addr, accessLog)), port
}

// TestNginxExampleConfig checks the example as written, TLS included, with
// `nginx -t`.
func TestNginxExampleConfig(t *testing.T) {
	bin := harness.RequireNginx(t)
	dir := t.TempDir()
	key := harness.WriteSigningKey(t, harness.ECP256, dir) // any certificate will do
	b, err := os.ReadFile(exampleConf)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"/etc/nginx/tls/auth.example.com.crt", key.CertPath,
		"/etc/nginx/tls/auth.example.com.key", key.KeyPath,
		"/var/log/nginx/gatehouse.access.log", filepath.Join(dir, "access.log"),
	).Replace(string(b))
	confPath := filepath.Join(dir, "gatehouse.conf")
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mainPath, []byte(harness.NginxMain(t, bin, dir, confPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t %s: %v\n%s", exampleConf, err, out)
	}
}

// TestReplicasBehindNginx runs three gatehouse processes sharing one key pair
// and one configuration behind nginx configured by
// examples/nginx/gatehouse.conf (round robin, retries on another replica),
// and registry v3.1.2 whose realm is nginx. It proves that
//
//   - every replica issues tokens the registry accepts: for each replica, a
//     token it issued (its own log names the request) pushes and pulls an
//     image with nothing else asked of nginx meanwhile;
//   - go-containerregistry pushes and pulls through the registry with a
//     password, and anonymously, with the realm behind nginx;
//   - a refresh token issued by one replica is redeemed by every replica;
//   - under continuous load through nginx (GET, OAuth2 POST with password
//     and refresh token, anonymous), a replica killed with SIGKILL and then
//     another stopped with SIGTERM leave the clients without one failed
//     request: nginx retried what the dead replica did not answer.
func TestReplicasBehindNginx(t *testing.T) {
	nginxBin := harness.RequireNginx(t)
	dir := t.TempDir()
	// An EC key keeps a token response (about 2.4 KB) within the 4 KiB a
	// Go HTTP server sends in one write. An RSA key with x5c makes it
	// about 4.3 KB, sent in two writes: a replica killed between them
	// leaves nginx with a response it has begun to pass on and cannot
	// retry, and its client with a truncated body (seen in about one
	// run in five of this test; docs/operations.md, "Running N replicas").
	key := harness.WriteSigningKey(t, harness.ECP256, dir)
	cfg := harness.WriteBinaryConfig(t, dir, harness.GatehouseOptions{Key: key, Anonymous: true},
		"  real_ip_header: X-Forwarded-For\n  real_ip_pos: -1\n")
	replicas, addrs := startReplicas(t, harness.BuildGatehouse(t), cfg)
	ngx, nginxPort := startExampleNginx(t, nginxBin, dir, addrs)
	nginxAddr := fmt.Sprintf("127.0.0.1:%d", nginxPort)
	realm := fmt.Sprintf("http://localhost:%d/auth", nginxPort)
	env := harness.NewExternalEnv(t, newRegistry, key, realm)
	client := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	base := "http://" + nginxAddr + "/auth"

	// Every replica's tokens are accepted by the registry.
	covered := map[string]bool{}
	for i := 0; i < 30 && len(covered) < len(replicas); i++ {
		id := fmt.Sprintf("probe-%03d", i)
		repo := fmt.Sprintf("alice/replica-%03d", i)
		q := url.Values{"service": {harness.Service}, "scope": {"repository:" + repo + ":push,pull"}, "client_id": {id}}
		req, _ := http.NewRequest(http.MethodGet, base+"?"+q.Encode(), nil)
		req.SetBasicAuth(harness.Alice.User, harness.Alice.Password)
		answer := tokenAnswer(t, client, req, id)
		who := whichReplica(t, replicas, "client_id="+id+" ")
		if covered[who] {
			continue
		}
		seen := len(ngx.AccessLogLines(t))
		tok := authn.FromConfig(authn.AuthConfig{RegistryToken: answer.Token})
		digest := env.MustPushWith(t, tok, repo, "token from "+who)
		env.MustPullDigestWith(t, tok, repo, digest, "token from "+who)
		// The token alone did it: nginx saw no other token request
		// (nginx logs a request after answering it, so the probe's own
		// line may come late).
		for _, line := range ngx.AccessLogLines(t)[seen:] {
			if !strings.Contains(line, "client_id="+id+"&") {
				t.Fatalf("pushing and pulling with %s's token asked nginx for more:\n%s", who, line)
			}
		}
		covered[who] = true
		t.Logf("%s issued the token for %s (%s); registry v3.1.2 accepted it for a push and a pull", who, repo, id)
	}
	if len(covered) != len(replicas) {
		t.Fatalf("tokens came from %v only, want all %d replicas", covered, len(replicas))
	}

	// Clients that go through the realm themselves.
	env.MustPullDigest(t, harness.Alice, "alice/app", env.MustPush(t, harness.Alice, "alice/app"))
	env.MustPullDigest(t, harness.Anonymous, "public/app", env.MustPush(t, harness.Admin, "public/app"))

	// A refresh token from one replica is good on all of them.
	form := url.Values{"grant_type": {"password"}, "username": {harness.Bob.User}, "password": {harness.Bob.Password},
		"service": {harness.Service}, "client_id": {"refresh-issue"}, "access_type": {"offline"}}
	refreshToken := tokenAnswer(t, client, postForm(base, form), "refresh-issue").RefreshToken
	if refreshToken == "" {
		t.Fatal("no refresh_token from an OAuth2 password grant with access_type=offline")
	}
	issuer := whichReplica(t, replicas, "client_id=refresh-issue ")
	redeemed := map[string]bool{}
	for i := 0; i < 30 && len(redeemed) < len(replicas); i++ {
		id := fmt.Sprintf("refresh-%03d", i)
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
			"service": {harness.Service}, "client_id": {id}, "scope": {"repository:bob/app:pull"}}
		tokenAnswer(t, client, postForm(base, form), id)
		redeemed[whichReplica(t, replicas, "client_id="+id+" ")] = true
	}
	if len(redeemed) != len(replicas) {
		t.Fatalf("the refresh token from %s was redeemed by %v only", issuer, redeemed)
	}
	t.Logf("a refresh token issued by %s was redeemed by each of the %d replicas", issuer, len(replicas))

	// Load through nginx while one replica is killed and another stopped.
	load := startLoad(t, nginxAddr, refreshToken)
	before := load.during(1500 * time.Millisecond)
	logBeforeKill := len(ngx.AccessLogLines(t))
	replicas[1].Kill(t)
	afterKill := load.during(2 * time.Second)
	code := replicas[0].Stop(t, 35*time.Second) // graceful: in-flight requests finish
	afterStop := load.during(1500 * time.Millisecond)
	ok, failed, failures := load.stop()
	t.Logf("%d requests through nginx: %d with 3 replicas, %d after SIGKILL of %s, %d after SIGTERM of %s (exit %d); %d failed",
		ok+failed, before, afterKill, replicas[1].Name, afterStop, replicas[0].Name, code, failed)
	if failed != 0 {
		t.Errorf("%d requests failed, e.g.:\n%s", failed, strings.Join(failures, "\n"))
	}
	if before == 0 || afterKill == 0 || afterStop == 0 {
		t.Errorf("a phase of the load served nothing: %d, %d, %d", before, afterKill, afterStop)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", replicas[0].Name, code)
	}

	// nginx did retry: requests that went to the dead replica were answered
	// by another.
	lines := ngx.AccessLogLines(t)
	var retried []string
	for _, line := range lines[logBeforeKill:] {
		if strings.Contains(line, "upstream=["+replicas[1].Addr+", ") && strings.Contains(line, `" 200 `) {
			retried = append(retried, line)
		}
	}
	if len(retried) == 0 {
		t.Errorf("no request after the kill was retried away from %s (%s); the load did not reach it:\n%s",
			replicas[1].Name, replicas[1].Addr, strings.Join(lines[max(logBeforeKill, len(lines)-20):], "\n"))
	} else {
		t.Logf("%d requests first sent to the killed %s were answered by another replica, e.g.\n%s",
			len(retried), replicas[1].Name, retried[0])
	}

	if code := replicas[2].Stop(t, 35*time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", replicas[2].Name, code)
	}
}

// tokenAnswer sends req and fails the test unless it gets 200 with a token.
func tokenAnswer(t *testing.T, c *http.Client, req *http.Request, what string) (a struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
}) {
	t.Helper()
	status, body, err := do(c, req)
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s: %d %v %s", what, status, err, body)
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Token == "" {
		t.Fatalf("%s: no token in %s (%v)", what, body, err)
	}
	return a
}

func postForm(url string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// do sends req and reads the whole answer.
func do(c *http.Client, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// whichReplica returns the name of the one replica whose log has a line
// containing marker. A replica logs a request just after answering it, so
// the logs are read again for up to 5 s.
func whichReplica(t *testing.T, replicas []*harness.Process, marker string) string {
	t.Helper()
	var found []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		found = found[:0]
		for _, p := range replicas {
			if _, n, err := p.LogLines(marker, 1); err == nil && n > 0 {
				found = append(found, p.Name)
			}
		}
		if len(found) > 0 {
			break
		}
	}
	if len(found) != 1 {
		t.Fatalf("%q is in the log of %v, want exactly one replica", marker, found)
	}
	return found[0]
}

// load is clients sending token requests through nginx until stopped.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	halt       chan struct{}
	wg         sync.WaitGroup
}

// loadWorkers keep-alive clients send GETs with a password, OAuth2 POSTs
// with a password and with the refresh token, and anonymous GETs, each
// checking for 200 and a token.
const loadWorkers = 12

func startLoad(t *testing.T, nginxAddr, refreshToken string) *load {
	base := "http://" + nginxAddr + "/auth"
	requests := []func() *http.Request{
		func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, base+"?service="+harness.Service+"&scope=repository:alice/app:pull,push", nil)
			req.SetBasicAuth(harness.Alice.User, harness.Alice.Password)
			return req
		},
		func() *http.Request {
			return postForm(base, url.Values{"grant_type": {"password"}, "username": {harness.Bob.User}, "password": {harness.Bob.Password},
				"service": {harness.Service}, "client_id": {"load"}, "scope": {"repository:bob/app:pull"}})
		},
		func() *http.Request {
			return postForm(base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
				"service": {harness.Service}, "client_id": {"load"}, "scope": {"repository:bob/app:push"}})
		},
		func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, base+"?service="+harness.Service+"&scope=repository:public/app:pull", nil)
			return req
		},
	}
	return runLoad(t, loadWorkers, func(c *http.Client, w, n int) error {
		status, body, err := do(c, requests[(w+n)%len(requests)]())
		if err == nil && status == http.StatusOK && strings.Contains(body, `"token":"`) {
			return nil
		}
		return fmt.Errorf("%d %v (%d bytes) %.300s", status, err, len(body), body)
	})
}

// runLoad runs workers keep-alive clients, each calling step (with its
// client, its number and its count of steps so far) until the load is
// stopped. A step that returns an error counts as failed.
func runLoad(t *testing.T, workers int, step func(c *http.Client, w, n int) error) *load {
	l := &load{halt: make(chan struct{})}
	deadline := time.Now().Add(2 * time.Minute) // a bound, should stop never come
	for w := range workers {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for n := 0; n < 100000 && time.Now().Before(deadline); n++ {
				select {
				case <-l.halt:
					return
				default:
				}
				err := step(c, w, n)
				if err == nil {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.failures) < 5 {
					l.failures = append(l.failures, err.Error())
				}
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// during lets the load run for d and returns how many requests succeeded.
func (l *load) during(d time.Duration) int64 {
	start := l.ok.Load()
	time.Sleep(d)
	return l.ok.Load() - start
}

// stop ends the load and returns its counts; it may be called again.
func (l *load) stop() (ok, failed int64, failures []string) {
	select {
	case <-l.halt:
	default:
		close(l.halt)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), l.failures
}
