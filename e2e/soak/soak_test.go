// Package soak runs the real gatehouse binary under a bounded, mixed load of
// well-behaved, hostile and malformed clients and checks that it neither
// fails nor grows.
package soak

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// Shape of the load. 200 connections in all: every HTTP connection is a
// keep-alive client from its own loopback address (127.1.x.y), so that the
// failed-login throttle, which counts per client IP, treats the
// well-behaved clients apart from the hostile ones.
const (
	cleanConns   = 95 // valid logins, anonymous pulls, OAuth2 password and refresh grants
	hostileConns = 95 // wrong passwords, unknown users, malformed requests
	rawConns     = 10 // raw TCP garbage, a new connection each time

	// maxRequestsPerConn bounds every loop in count as well as in time.
	maxRequestsPerConn = 200000
	// maxThink is the longest pause of a client between two requests.
	maxThink = 4 * time.Millisecond

	// rssWarmup is when the reference memory samples start; the last
	// samples may exceed them by less than rssGrowthLimit.
	rssWarmup      = 10 * time.Second
	rssGrowthLimit = 0.10
)

// soakDuration is 40 s, 22 s with -short (the memory check needs 10
// samples from the 10th second on), or SOAK_DURATION (e.g. "10m") for a
// longer run by hand.
func soakDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil && d >= 20*time.Second {
		return d
	}
	if testing.Short() {
		return 22 * time.Second
	}
	return 40 * time.Second
}

// intended are the statuses any request may get by design: 429 from the
// failed-login throttle, 503 when password checks are saturated.
var intended = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}

// kind is one sort of request and the statuses it must get (besides the
// intended ones).
type kind struct {
	name string
	want []int
	make func(s *soak, r *mrand.Rand) *http.Request
}

type soak struct {
	base         string // http://127.0.0.1:PORT
	refreshToken string
}

func (s *soak) get(q url.Values, user, password string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/auth?"+q.Encode(), nil)
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	return req
}

func (s *soak) post(form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.base+"/auth", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func scopeQuery(scopes ...string) url.Values {
	return url.Values{"service": {harness.Service}, "scope": scopes}
}

// unknownUsers is a fixed set, so that what the server remembers about
// failures stays bounded, as it would not with a new name every time.
var unknownUsers = []string{"mallory", "eve", "trudy", "root", "administrator", "test", "guest", "oracle", "postgres", "ubuntu"}

var cleanKinds = []kind{
	{"valid login GET", []int{200}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.get(scopeQuery("repository:alice/app:pull,push"), harness.Alice.User, harness.Alice.Password)
	}},
	{"valid login GET /auth/token, docker login style", []int{200}, func(s *soak, r *mrand.Rand) *http.Request {
		req := s.get(url.Values{"service": {harness.Service}, "account": {harness.Bob.User}, "client_id": {"docker"}}, harness.Bob.User, harness.Bob.Password)
		req.URL.Path = "/auth/token"
		return req
	}},
	{"anonymous GET", []int{200}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.get(scopeQuery(fmt.Sprintf("repository:public/app%d:pull", r.IntN(20))), "", "")
	}},
	{"OAuth2 password POST", []int{200}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.post(url.Values{"grant_type": {"password"}, "username": {harness.Bob.User}, "password": {harness.Bob.Password},
			"service": {harness.Service}, "client_id": {"soak"}, "scope": {"repository:bob/app:pull"}})
	}},
	{"OAuth2 refresh POST", []int{200}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.refreshToken},
			"service": {harness.Service}, "client_id": {"soak"}, "scope": {"repository:alice/app:pull"}})
	}},
}

var hostileKinds = []kind{
	{"wrong password GET", []int{401}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.get(scopeQuery("repository:alice/app:pull"), harness.Alice.User, "wrong-"+harness.Alice.Password)
	}},
	{"unknown user GET", []int{401}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.get(scopeQuery("repository:x/app:pull"), unknownUsers[r.IntN(len(unknownUsers))], "password")
	}},
	{"wrong password OAuth2 POST", []int{401}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.post(url.Values{"grant_type": {"password"}, "username": {harness.Bob.User}, "password": {"nope"},
			"service": {harness.Service}, "client_id": {"soak"}})
	}},
	{"forged refresh token POST", []int{401}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gh1." + randomText(r, 40)},
			"service": {harness.Service}, "client_id": {"soak"}})
	}},
	{"bad scope", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		bad := []string{"nonsense", "repository:", "a:b", "(x):y:z", "repository(:a:pull", strings.Repeat(":", 5)}
		return s.get(scopeQuery(bad[r.IntN(len(bad))]), "", "")
	}},
	{"user name with a control character", []int{401}, func(s *soak, r *mrand.Rand) *http.Request {
		// Refused before any lookup like a wrong password, and counted.
		req := s.get(scopeQuery("repository:alice/app:pull"), "", "")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("ctl\x01user:pw")))
		return req
	}},
	{"broken Basic header", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		req := s.get(scopeQuery("repository:alice/app:pull"), "", "")
		broken := []string{
			"Basic !!!not-base64!!!",
			"Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")),
			"Basic",
			"Bearer " + randomText(r, 20),
			"Digest username=alice",
		}
		req.Header.Set("Authorization", broken[r.IntN(len(broken))])
		return req
	}},
	{"two Authorization headers", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		req := s.get(scopeQuery("repository:alice/app:pull"), harness.Alice.User, harness.Alice.Password)
		req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:bob-pw")))
		return req
	}},
	{"oversized query", []int{400, 414}, func(s *soak, r *mrand.Rand) *http.Request {
		q := scopeQuery("repository:alice/app:pull")
		q.Set("pad", strings.Repeat("x", 17<<10+r.IntN(8<<10)))
		return s.get(q, harness.Alice.User, harness.Alice.Password)
	}},
	{"too many scopes", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		var scopes []string
		for i := range 65 + r.IntN(50) {
			scopes = append(scopes, fmt.Sprintf("repository:alice/app%d:pull", i))
		}
		return s.get(scopeQuery(strings.Join(scopes, " ")), harness.Alice.User, harness.Alice.Password)
	}},
	{"missing service", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		return s.get(url.Values{"scope": {"repository:alice/app:pull"}}, harness.Alice.User, harness.Alice.Password)
	}},
	{"POST not a form", []int{400}, func(s *soak, r *mrand.Rand) *http.Request {
		req := s.post(url.Values{"grant_type": {"password"}})
		req.Header.Set("Content-Type", "application/json")
		return req
	}},
	{"garbage method", []int{405}, func(s *soak, r *mrand.Rand) *http.Request {
		methods := []string{"BREW", "PUT", "DELETE", "PATCH", "PROPFIND", "X-" + strings.ToUpper(randomText(r, 6))}
		req := s.get(scopeQuery("repository:alice/app:pull"), harness.Alice.User, harness.Alice.Password)
		req.Method = methods[r.IntN(len(methods))]
		return req
	}},
}

// randomText is n random letters and digits.
func randomText(r *mrand.Rand, n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// tally counts the answers of one kind.
type tally struct {
	byStatus  map[int]int
	transport int // transport errors
	failures  int // unexpected statuses and transport errors
	examples  []string
}

type results struct {
	mu    sync.Mutex
	kinds map[string]*tally
}

func (res *results) record(k kind, status int, err error, body string) {
	res.mu.Lock()
	defer res.mu.Unlock()
	t := res.kinds[k.name]
	if t == nil {
		t = &tally{byStatus: map[int]int{}}
		res.kinds[k.name] = t
	}
	switch {
	case err != nil:
		t.transport++
		t.failures++
		if len(t.examples) < 3 {
			t.examples = append(t.examples, err.Error())
		}
	default:
		t.byStatus[status]++
		if !slices.Contains(k.want, status) && !slices.Contains(intended, status) {
			t.failures++
			if len(t.examples) < 3 {
				t.examples = append(t.examples, fmt.Sprintf("%d %.200s", status, body))
			}
		}
	}
}

// TestSoak runs the gatehouse binary for soakDuration under 200 concurrent
// connections: 95 well-behaved keep-alive clients, 95 hostile or malformed
// ones and 10 that send raw garbage over TCP. Every answer must be the one
// its kind expects, or an intended 429/503; the process must not panic,
// must still serve at the end and exit cleanly on SIGTERM, and its resident
// memory must not grow by 10% or more between the 10th second and the end.
func TestSoak(t *testing.T) {
	dir := t.TempDir()
	key := harness.WriteSigningKey(t, harness.ECP256, dir)
	cfg := harness.WriteBinaryConfig(t, dir, harness.GatehouseOptions{Key: key, Anonymous: true}, "")
	bin := harness.BuildGatehouse(t)
	proc := harness.StartProcess(t, bin, cfg, "gatehouse", harness.FreePort(t))
	proc.WaitReady(t, 10*time.Second)
	s := &soak{base: "http://" + proc.Addr}
	s.refreshToken = obtainRefreshToken(t, s)

	duration := soakDuration()
	start := time.Now()
	deadline := start.Add(duration)
	res := &results{kinds: map[string]*tally{}}
	var dials, rawSent atomic.Int64

	// Memory: one sample a second, from the start of the load.
	type sample struct {
		at  time.Duration
		kib int64
	}
	var samples []sample
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; i < int(duration/time.Second)+5; i++ {
			<-tick.C
			if time.Now().After(deadline) {
				return
			}
			kib, err := proc.RSS()
			if err != nil {
				return // the process is gone; reported below
			}
			samples = append(samples, sample{time.Since(start).Round(100 * time.Millisecond), kib})
		}
	}()

	var wg sync.WaitGroup
	for i := range cleanConns + hostileConns {
		kinds, src := cleanKinds, fmt.Sprintf("127.1.1.%d", i+1)
		if i >= cleanConns {
			kinds, src = hostileKinds, fmt.Sprintf("127.1.2.%d", i-cleanConns+1)
		}
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(i), uint64(start.UnixNano())))
			client := keepAliveClient(net.ParseIP(src), &dials)
			defer client.CloseIdleConnections()
			for n := 0; n < maxRequestsPerConn && time.Now().Before(deadline); n++ {
				k := kinds[r.IntN(len(kinds))]
				status, body, err := do(client, k.make(s, r))
				res.record(k, status, err, body)
				time.Sleep(time.Duration(r.Int64N(int64(maxThink))))
			}
		})
	}
	for i := range rawConns {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(1000+i), uint64(start.UnixNano())))
			src := &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.1.3.%d", i+1))}
			for n := 0; n < maxRequestsPerConn && time.Now().Before(deadline); n++ {
				sendGarbage(proc.Addr, src, r, deadline)
				rawSent.Add(1)
				time.Sleep(time.Duration(r.Int64N(int64(5 * time.Millisecond))))
			}
		})
	}
	wg.Wait()
	<-samplerDone
	elapsed := time.Since(start)

	// The report, then the verdicts.
	var names []string
	total, failures := 0, 0
	for name := range res.kinds {
		names = append(names, name)
	}
	sort.Strings(names)
	var report strings.Builder
	for _, name := range names {
		tl := res.kinds[name]
		n := tl.transport
		for _, c := range tl.byStatus {
			n += c
		}
		total += n
		failures += tl.failures
		fmt.Fprintf(&report, "  %-48s %7d  statuses %v  transport errors %d  failures %d\n", name, n, tl.byStatus, tl.transport, tl.failures)
	}
	t.Logf("%d HTTP requests in %v (%.0f/s) over %d HTTP connections (%d dials), %d raw garbage connections; %d failures\n%s",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), cleanConns+hostileConns, dials.Load(), rawSent.Load(), failures, report.String())
	var rss []string
	for _, sm := range samples {
		rss = append(rss, fmt.Sprintf("%v:%d", sm.at, sm.kib))
	}
	t.Logf("VmRSS samples (elapsed:KiB): %s", strings.Join(rss, " "))

	for _, name := range names {
		tl := res.kinds[name]
		if tl.failures > 0 {
			t.Errorf("%s: %d failures, e.g. %q", name, tl.failures, tl.examples)
		}
	}
	for _, k := range append(slices.Clone(cleanKinds), hostileKinds...) {
		tl := res.kinds[k.name]
		expected := 0
		if tl != nil {
			for _, st := range k.want {
				expected += tl.byStatus[st]
			}
		}
		if expected == 0 {
			t.Errorf("%s: never got its expected status %v", k.name, k.want)
		}
	}

	if !proc.Alive() {
		t.Fatalf("gatehouse exited during the soak")
	}
	resp, err := http.Get("http://" + proc.Addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz after the soak: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the soak: %d", resp.StatusCode)
	}
	// A valid login still works from a fresh address.
	if status, body, err := do(keepAliveClient(net.ParseIP("127.1.4.1"), &dials),
		s.get(scopeQuery("repository:alice/app:pull"), harness.Alice.User, harness.Alice.Password)); err != nil || status != 200 {
		t.Errorf("a valid login after the soak: %d %v %s", status, err, body)
	}

	// The process's memory saws up and down by several percent between
	// garbage collections, so a single sample against another would flag
	// noise: the reference is the median of the five samples from the 10th
	// second on, the end the median of the last five. A leak raises both the
	// end and every single late sample; the single-sample change is logged.
	warm := slices.IndexFunc(samples, func(sm sample) bool { return sm.at >= rssWarmup-500*time.Millisecond })
	if warm < 0 || len(samples)-warm < 10 {
		t.Errorf("not enough memory samples from %v on: %d samples in all", rssWarmup, len(samples))
	} else {
		median := func(ss []sample) int64 {
			v := make([]int64, 0, len(ss))
			for _, sm := range ss {
				v = append(v, sm.kib)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		first, last := median(samples[warm:warm+5]), median(samples[len(samples)-5:])
		growth := float64(last-first) / float64(first)
		one, end := samples[warm], samples[len(samples)-1]
		t.Logf("VmRSS median %d KiB over %v-%v, median %d KiB over %v-%v: %+.1f%% (limit %+.0f%%); single samples %d KiB at %v, %d KiB at %v: %+.1f%%",
			first, one.at, samples[warm+4].at, last, samples[len(samples)-5].at, end.at, 100*growth, 100*rssGrowthLimit,
			one.kib, one.at, end.kib, end.at, 100*float64(end.kib-one.kib)/float64(one.kib))
		if growth >= rssGrowthLimit {
			t.Errorf("resident memory grew %.1f%% from the %v samples to the last (%d to %d KiB)", 100*growth, rssWarmup, first, last)
		}
	}

	// No panic, recovered or not, anywhere in the log.
	if lines, n, err := proc.LogLines("panic", 5); err != nil {
		t.Errorf("reading the log: %v", err)
	} else if n > 0 {
		t.Errorf("%d log lines mention a panic:\n%s", n, strings.Join(lines, "\n"))
	}
	if lines, n, _ := proc.LogLines(`level=ERROR`, 5); n > 0 {
		t.Logf("%d error lines in the log, e.g.:\n%s", n, strings.Join(lines, "\n"))
	}
	if code := proc.Stop(t, 35*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, proc.LogTail(20))
	}
	if fi, err := os.Stat(proc.LogPath); err == nil {
		t.Logf("log: %d bytes", fi.Size())
	}
}

// keepAliveClient is an HTTP client with one keep-alive connection, dialled
// from the loopback address src.
func keepAliveClient(src net.IP, dials *atomic.Int64) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConns:        1,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends req and reads the whole answer, so that the connection is
// reused.
func do(c *http.Client, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("reading the body of a %d: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, string(body), nil
}

// garbage are the raw payloads: not HTTP at all, or HTTP broken in ways a
// client library would not send.
var garbage = []func(r *mrand.Rand) []byte{
	func(r *mrand.Rand) []byte { b := make([]byte, 1+r.IntN(4096)); rand.Read(b); return b },
	func(r *mrand.Rand) []byte { return []byte("GET /auth HTTP/1.1\r\nHost: x\r\n\x00\x01bad: y\r\n\r\n") },
	func(r *mrand.Rand) []byte { return []byte("GET /auth?service=x HTTP/9.9\r\nHost: x\r\n\r\n") },
	func(r *mrand.Rand) []byte { return []byte("G\x7fT /auth HTTP/1.1\r\nHost: x\r\n\r\n") },
	func(r *mrand.Rand) []byte {
		// A truncated body: the server waits for the rest, then gives up.
		return []byte("POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=pass")
	},
	func(r *mrand.Rand) []byte {
		return []byte("POST /auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	},
	func(r *mrand.Rand) []byte {
		return []byte("GET /auth?service=" + harness.Service + " HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + strings.Repeat("A", 40<<10) + "\r\n\r\n")
	},
	func(r *mrand.Rand) []byte {
		return []byte("GET /auth?service=x HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 40) + "\r\n")
	},
	func(r *mrand.Rand) []byte {
		return []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + randomText(r, 200)) // a TLS ClientHello
	},
	func(r *mrand.Rand) []byte { return []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + randomText(r, 64)) },
	func(r *mrand.Rand) []byte { return []byte("GET /auth HTTP/1.1\r\nHost: x") }, // never finished
}

// sendGarbage dials addr from src, writes a garbage payload, reads what
// comes back for at most a second (or until deadline) and hangs up. Errors
// are expected and ignored.
func sendGarbage(addr string, src *net.TCPAddr, r *mrand.Rand, deadline time.Time) {
	d := net.Dialer{LocalAddr: src, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	until := time.Now().Add(time.Second)
	if deadline.Before(until) {
		until = deadline
	}
	_ = c.SetDeadline(until)
	_, _ = c.Write(garbage[r.IntN(len(garbage))](r))
	_, _ = io.Copy(io.Discard, c)
}

// obtainRefreshToken gets alice a refresh token with an OAuth2 password
// grant, for the refresh requests of the load.
func obtainRefreshToken(t *testing.T, s *soak) string {
	t.Helper()
	status, body, err := do(http.DefaultClient, s.post(url.Values{"grant_type": {"password"}, "username": {harness.Alice.User},
		"password": {harness.Alice.Password}, "service": {harness.Service}, "client_id": {"soak"}, "access_type": {"offline"}}))
	if err != nil || status != http.StatusOK {
		t.Fatalf("OAuth2 password grant: %d %v %s", status, err, body)
	}
	var answer struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.RefreshToken == "" {
		t.Fatalf("no refresh token in %s (%v)", body, err)
	}
	return answer.RefreshToken
}
