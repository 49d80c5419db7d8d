package registryv3

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/redistest"
)

// accountIPLimit is throttle.account_ip_failures in TestSharedThrottleBehindNginx.
const accountIPLimit = 4

// TestSharedThrottleBehindNginx runs three gatehouse processes sharing one
// redis-server (throttle.store) behind nginx configured by
// examples/nginx/gatehouse.conf (round robin). It proves that
//
//   - wrong passwords for one account spread round-robin over the three
//     replicas are throttled (429) after the same number of failures as
//     against one replica, each replica having answered some of them: with
//     per-replica counts none would have reached the limit;
//   - under continuous load through nginx (logins, anonymous requests,
//     wrong passwords), the store killed with SIGKILL and started again
//     leaves every request answered as it should be (never a 5xx); while
//     it is down each replica reports it under /readyz "degraded" and
//     counts fallbacks, staying ready;
//   - once the store is back, the replicas share the counts again.
func TestSharedThrottleBehindNginx(t *testing.T) {
	nginxBin := harness.RequireNginx(t)
	redis := redistest.Start(t)
	dir := t.TempDir()
	key := harness.WriteSigningKey(t, harness.ECP256, dir)
	throttle := fmt.Sprintf("throttle:\n  account_ip_failures: %d\n  ip_failures: 100000\n  store: {type: redis, addrs: [%s]}\n",
		accountIPLimit, strconv.Quote(redis.Addr))
	cfg := harness.WriteBinaryConfig(t, dir, harness.GatehouseOptions{Key: key, Anonymous: true, ExtraSections: throttle},
		"  real_ip_header: X-Forwarded-For\n  real_ip_pos: -1\n")
	replicas, addrs := startReplicas(t, harness.BuildGatehouse(t), cfg)
	ngx, port := startExampleNginx(t, nginxBin, dir, addrs)
	nginxAddr := fmt.Sprintf("127.0.0.1:%d", port)
	client := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	viaNginx := "http://" + nginxAddr + "/auth"

	// Against one replica, from an address of its own (the replica takes
	// the last X-Forwarded-For entry).
	alone, _ := guessesUntilThrottled(t, client, "http://"+replicas[0].Addr+"/auth", "198.51.100.1", "alice", "alone")
	if alone != accountIPLimit {
		t.Fatalf("one replica: throttled after %d failures, want %d (account_ip_failures)", alone, accountIPLimit)
	}
	spread := func(phase, account string) {
		t.Helper()
		got, ids := guessesUntilThrottled(t, client, viaNginx, "", account, phase)
		answered := map[string]bool{}
		for _, id := range ids {
			answered[upstreamOf(t, ngx, "client_id="+id+"&")] = true
		}
		if got != alone {
			t.Fatalf("%s: throttled after %d failures spread over %d replicas, want %d as against one", phase, got, len(answered), alone)
		}
		if len(answered) != len(replicas) {
			t.Fatalf("%s: the %d failures were answered by %v only, want all %d replicas (round robin)", phase, got, answered, len(replicas))
		}
		t.Logf("%s: %d wrong passwords for %s answered by %d replicas in turn, then 429, as against one replica",
			phase, got, account, len(answered))
	}
	spread("shared", "alice")

	// The store killed and started again under load.
	load := startThrottleLoad(t, viaNginx)
	before := load.during(time.Second)
	redis.Stop()
	down := load.during(2 * time.Second)
	for _, p := range replicas {
		status, body := get(t, client, "http://"+p.Addr+"/readyz")
		if status != http.StatusOK || !strings.Contains(body, `"throttle_store":"not answering`) {
			t.Errorf("%s /readyz with the store down: %d %s, want 200 naming the store under degraded", p.Name, status, body)
		}
		if n := metricValue(t, client, p, "gatehouse_throttle_store_fallbacks_total"); n == 0 {
			t.Errorf("%s counted no fallback with the store down", p.Name)
		}
	}
	redis.Restart()
	for _, p := range replicas {
		waitStoreAnswers(t, client, p)
	}
	after := load.during(time.Second)
	ok, failed, failures := load.stop()
	t.Logf("%d requests through nginx: %d with the store, %d with it killed, %d after its restart; %d answered wrongly",
		ok+failed, before, down, after, failed)
	if failed != 0 {
		t.Errorf("%d requests were not answered as they should be, e.g.:\n%s", failed, strings.Join(failures, "\n"))
	}
	if before == 0 || down == 0 || after == 0 {
		t.Errorf("a phase of the load served nothing: %d, %d, %d", before, down, after)
	}

	spread("after-restart", "bob")
}

// guessesUntilThrottled sends wrong passwords for account to base (with
// X-Forwarded-For: ip when ip is set) and returns how many were answered
// 401 before the first 429 (at most 30), and the client_id of each. Any
// other answer fails the test.
func guessesUntilThrottled(t *testing.T, c *http.Client, base, ip, account, phase string) (int, []string) {
	t.Helper()
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("guess-%s-%d", phase, i)
		q := url.Values{"service": {harness.Service}, "client_id": {id}, "scope": {"repository:" + account + "/app:pull"}}
		req, _ := http.NewRequest(http.MethodGet, base+"?"+q.Encode(), nil)
		req.SetBasicAuth(account, "wrong")
		if ip != "" {
			req.Header.Set("X-Forwarded-For", ip)
		}
		status, body, err := do(c, req)
		switch {
		case err != nil:
			t.Fatalf("%s, guess %d: %v", phase, i+1, err)
		case status == http.StatusUnauthorized:
			ids = append(ids, id)
		case status == http.StatusTooManyRequests:
			return i, ids
		default:
			t.Fatalf("%s, guess %d: status %d: %s", phase, i+1, status, body)
		}
	}
	return 30, ids
}

var upstreamRE = regexp.MustCompile(`upstream=\[([^\]]*)\]`)

// upstreamOf returns the replica that answered the one request whose
// access log line contains marker. nginx writes the line after answering,
// so the log is read again for up to 5 s.
func upstreamOf(t *testing.T, ngx *harness.Nginx, marker string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range ngx.AccessLogLines(t) {
			if strings.Contains(line, marker) {
				if m := upstreamRE.FindStringSubmatch(line); m != nil {
					return m[1]
				}
				t.Fatalf("no upstream in %q", line)
			}
		}
	}
	t.Fatalf("no access log line has %q", marker)
	return ""
}

// startThrottleLoad sends, through nginx, logins with the right password
// (200 and a token), anonymous pulls (200 and a token) and wrong passwords
// for carol (401, or 429 once throttled): any other answer, a 5xx above
// all, counts as failed.
func startThrottleLoad(t *testing.T, base string) *load {
	type kind struct {
		who    harness.Cred
		scope  string
		status []int
	}
	kinds := []kind{
		{harness.Admin, "repository:any/app:pull", []int{http.StatusOK}},
		{harness.Anonymous, "repository:public/app:pull", []int{http.StatusOK}},
		{harness.Cred{User: harness.Carol.User, Password: "wrong"}, "repository:carol/app:pull", []int{http.StatusUnauthorized, http.StatusTooManyRequests}},
	}
	return runLoad(t, 6, func(c *http.Client, w, n int) error {
		k := kinds[(w+n)%len(kinds)]
		req, _ := http.NewRequest(http.MethodGet, base+"?service="+harness.Service+"&scope="+k.scope+"&client_id=load", nil)
		if k.who != harness.Anonymous {
			req.SetBasicAuth(k.who.User, k.who.Password)
		}
		status, body, err := do(c, req)
		if err == nil && slices.Contains(k.status, status) && (status != http.StatusOK || strings.Contains(body, `"token":"`)) {
			return nil
		}
		return fmt.Errorf("%s: %d %v, want %v: %.300s", k.who.Describe(), status, err, k.status, body)
	})
}

// get fetches url and returns its status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	status, body, err := do(c, req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return status, body
}

// metricValue reads one unlabelled metric from p's /metrics.
func metricValue(t *testing.T, c *http.Client, p *harness.Process, name string) float64 {
	t.Helper()
	_, body := get(t, c, "http://"+p.Addr+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, line, err)
			}
			return f
		}
	}
	t.Fatalf("%s has no metric %s", p.Name, name)
	return 0
}

// waitStoreAnswers waits until p's /readyz no longer reports the throttle
// store as degraded.
func waitStoreAnswers(t *testing.T, c *http.Client, p *harness.Process) {
	t.Helper()
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var status int
		status, body = get(t, c, "http://"+p.Addr+"/readyz")
		var ready struct {
			Degraded map[string]string `json:"degraded"`
		}
		if status == http.StatusOK && json.Unmarshal([]byte(body), &ready) == nil && ready.Degraded["throttle_store"] == "" {
			return
		}
	}
	t.Fatalf("%s: the throttle store does not answer again: %s", p.Name, body)
}
