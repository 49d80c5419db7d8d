// Command load is Gatehouse's load benchmark: it builds Gatehouse, starts
// it as a separate process on a loopback port with a generated
// configuration, drives it with a closed-loop HTTP client (N connections
// over one shared http.Transport, in this process) and prints tokens/s,
// p50 and p99 latency and the server's peak RSS (VmHWM) for each case:
//
//   - static: a static user with a bcrypt cost-10 hash, answered by the
//     credential cache after the first request;
//   - anonymous: no credentials, a public pull;
//   - ldap-cached, ldap-uncached: an LDAP user (a throwaway slapd from
//     internal/ldaptest on the same machine), with the cache on and with
//     cache.ttl: 0 (every request searches and binds);
//
// each with an RSA-2048 and a P-256 key, and with 8 and 64 connections.
// In the same run it measures the ceiling of the same machine and load: a
// bare Go HTTP server (this program's hidden ceiling-serve subcommand)
// that signs one token per request with the same key and claims through
// the token package's Signer and does nothing else. Every case is printed
// with its ratio to the ceiling of its key and connection count.
//
// -keys kms-p256 and hsm-p256 add keys held by a key service (not run by
// default): a P-256 key in a KMS API server (local-kms's handlers, this
// program's hidden kms-serve subcommand, a process of its own whose CPU
// time per token is printed too) and a P-256 key in a SoftHSM2 token
// made for the run (Gatehouse built with -tags pkcs11; skipped when
// softhsm2 is not installed). Their certificates are made with
// `gatehouse certificate`, signed by the key service. Their ceiling,
// printed as ceiling-file, signs with a P-256 key file: the ratio says
// what the key service costs.
//
//	go run ./bench/load                      # everything, about 4 minutes
//	go run ./bench/load -keys p256 -conns 64 -cases ceiling,static,anonymous
//	go run ./bench/load -keys p256,kms-p256,hsm-p256 -cases ceiling,static,anonymous
//
// Everything listens on 127.0.0.1 only. Each case runs -warmup plus
// -duration (2 s + 10 s by default; at most 30 s together). The cases of
// one key and connection count (the ceiling among them) run as separate
// processes side by side and are measured in turns, ten slices each, each
// round starting with the next case, so that other work on the machine
// weighs on them alike; a case's ratio to the ceiling is the median of its
// ten per-round ratios. -compare runs the Gatehouse cases again with other
// binaries in the same turns, to measure a change. Besides tokens/s,
// latency and peak RSS, each row has the CPU time (user + system, from
// /proc) that the server and the client spent per token. Gatehouse logs at
// level info in JSON (the audit line of every token is part of the cost)
// to a file in the work directory, deleted at the end unless -keep is set.
// See docs/performance.md for the results.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

// maxCaseTime bounds warm-up plus measurement of one case.
const maxCaseTime = 30 * time.Second

// A benchmark case: what is asked, of which server.
type caseSpec struct {
	name      string
	ceiling   bool // the bare signing server, not Gatehouse
	user      string
	password  string
	scope     string
	wantSub   string
	ldap      bool
	noCache   bool
	wantGrant string // the access the token must carry, "type:name:actions"
	bin       string // a Gatehouse binary other than the one under test (-compare)
}

var allCases = []caseSpec{
	{name: "ceiling", ceiling: true, user: staticUser, password: staticPassword, scope: "repository:alice/app:pull,push",
		wantSub: staticUser, wantGrant: "repository:alice/app:pull,push"},
	{name: "static", user: staticUser, password: staticPassword, scope: "repository:alice/app:pull,push",
		wantSub: staticUser, wantGrant: "repository:alice/app:pull,push"},
	{name: "anonymous", scope: "repository:public/base:pull", wantGrant: "repository:public/base:pull"},
	{name: "ldap-cached", ldap: true, user: ldapUser.UID, password: ldapUser.Password, scope: "repository:dave/app:pull,push",
		wantSub: ldapUser.UID, wantGrant: "repository:dave/app:pull,push"},
	{name: "ldap-uncached", ldap: true, noCache: true, user: ldapUser.UID, password: ldapUser.Password,
		scope: "repository:dave/app:pull,push", wantSub: ldapUser.UID, wantGrant: "repository:dave/app:pull,push"},
}

// result is one measured row.
type result struct {
	c        caseSpec
	key      string
	conns    int
	n        int           // successful requests in the window
	errs     int64         // failed requests in the window
	firstErr string        // the first failure, for the report
	elapsed  time.Duration // the measurement window
	p50, p99 time.Duration
	rssKB    int64 // the server's VmHWM
	// CPU time (user + system) of the server process and of this process
	// (the client) during the measurement.
	serverCPU, clientCPU time.Duration
	// CPU time of the key service's own process (the KMS server) during
	// the measurement; zero for a key file or an HSM module in the server.
	serviceCPU time.Duration
	skipped    string
	sliceRates []float64 // tokens/s of each round's slice, in round order
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// ratioTo is r's throughput relative to the ceiling c of the same group:
// the median, over the rounds, of r's tokens/s in a round divided by c's
// in the same round. The two slices of a round ran seconds apart, so a
// burst of other work on the machine that hits one round moves one
// paired ratio, not the result.
func ratioTo(r, c result) float64 {
	if len(r.sliceRates) == 0 || len(r.sliceRates) != len(c.sliceRates) {
		return r.rate() / c.rate()
	}
	q := make([]float64, len(r.sliceRates))
	for i := range q {
		q[i] = r.sliceRates[i] / c.sliceRates[i]
	}
	slices.Sort(q)
	if n := len(q); n%2 == 0 {
		return (q[n/2-1] + q[n/2]) / 2
	}
	return q[len(q)/2]
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == ceilingCommand {
		os.Exit(serveCeiling(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == kmsCommand {
		os.Exit(serveKMS(os.Args[2:]))
	}
	os.Exit(run())
}

// procs tracks the servers this program started, to stop them on ^C.
var procs struct {
	sync.Mutex
	set     map[*os.Process]bool
	cleanup []func()
}

func track(p *os.Process, on bool) {
	procs.Lock()
	defer procs.Unlock()
	if procs.set == nil {
		procs.set = map[*os.Process]bool{}
	}
	if on {
		procs.set[p] = true
	} else {
		delete(procs.set, p)
	}
}

func stopAll() {
	procs.Lock()
	defer procs.Unlock()
	for p := range procs.set {
		_ = p.Kill()
	}
	for i := len(procs.cleanup) - 1; i >= 0; i-- {
		procs.cleanup[i]()
	}
	procs.cleanup = nil
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "gatehouse-load-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	defer func() {
		stopAll()
		if o.keep {
			fmt.Println("work directory kept:", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	results, err := runAll(ctx, o, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	fmt.Println()
	printTable(os.Stdout, results)
	fmt.Println()
	printTargets(os.Stdout, results)
	return 0
}

func runAll(ctx context.Context, o *options, dir string) ([]result, error) {
	printMachine(os.Stdout, o)
	bin := o.gatehouse
	if bin == "" {
		bin = filepath.Join(dir, "gatehouse")
		fmt.Println("building gatehouse…")
		// As `make build` builds the image's binary: static and stripped,
		// so peak RSS is what a deployment sees.
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/gatehouse/gatehouse")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building gatehouse (run from the repository): %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	hash, err := bcryptHash()
	if err != nil {
		return nil, err
	}
	var slapd *ldaptest.Server
	ldapSkip := ""
	if slices.ContainsFunc(o.cases, func(c caseSpec) bool { return c.ldap }) {
		srv, stopSlapd, err := startSlapd(dir)
		switch {
		case errors.Is(err, errNoSlapd):
			ldapSkip = "slapd is not installed (Debian: apt-get install slapd ldap-utils); LDAP cases skipped"
			fmt.Println(ldapSkip)
		case err != nil:
			return nil, fmt.Errorf("starting slapd: %w", err)
		default:
			slapd = srv
			procs.Lock()
			procs.cleanup = append(procs.cleanup, stopSlapd)
			procs.Unlock()
			fmt.Println("slapd listening on", srv.Addr)
		}
	}
	var results []result
	for _, k := range o.keys {
		kp, stopKey, skip, err := openKey(ctx, dir, bin, self, k)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			for _, n := range o.conns {
				for _, c := range o.cases {
					results = append(results, result{c: c, key: kp.name, conns: n, skipped: skip})
				}
			}
			continue
		}
		procs.Lock()
		procs.cleanup = append(procs.cleanup, stopKey)
		procs.Unlock()
		for _, n := range o.conns {
			var cases []caseSpec
			for _, c := range o.cases {
				if c.ceiling && kp.ceiling != nil {
					c.name = "ceiling-file" // the bare server signs with a P-256 file
				}
				if c.ldap && slapd == nil {
					results = append(results, result{c: c, key: kp.name, conns: n, skipped: ldapSkip})
				} else {
					cases = append(cases, c)
				}
			}
			rs, err := runGroup(ctx, o, dir, bin, self, kp, hash, slapd, cases, n)
			if err != nil {
				return nil, fmt.Errorf("%s, %d connections: %w", kp.name, n, err)
			}
			for _, r := range rs {
				printRow(os.Stdout, r, rs)
			}
			results = append(results, rs...)
		}
	}
	return results, nil
}

// rounds is how many slices each case's measurement is cut into. The
// cases of a group take turns, slice by slice, so a change in the
// machine's background load during the run affects them alike, and each
// case's ratio to the ceiling compares measurements made side by side.
const rounds = 10

// server is one running server process of a group.
type server struct {
	c       caseSpec
	cmd     *exec.Cmd
	exited  chan struct{}
	url     string
	logPath string
	tr      *http.Transport
	res     result
	lat     []time.Duration
}

// runGroup starts one server per case (the ceiling or a Gatehouse with
// the case's configuration), warms each up, then measures them in turns
// for o.duration each, and stops them.
func runGroup(ctx context.Context, o *options, dir, bin, self string, kp keyPair, hash string, slapd *ldaptest.Server, cases []caseSpec, conns int) ([]result, error) {
	var servers []*server
	defer func() {
		for _, s := range servers {
			_ = s.cmd.Process.Kill()
			<-s.exited
			track(s.cmd.Process, false)
			s.tr.CloseIdleConnections()
			if !o.keep && s.logPath != os.DevNull {
				_ = os.Remove(s.logPath)
			}
		}
	}()
	for _, c := range cases {
		s, err := startServer(o, dir, bin, self, kp, hash, slapd, c, conns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		servers = append(servers, s)
		if err := waitReady(ctx, s.url, c, s.exited, s.logPath); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	for _, s := range servers {
		drive(ctx, s.tr, s.url, s.c.user, s.c.password, conns, o.warmup)
	}
	slice := o.duration / rounds
	for round := range rounds {
		// Each round starts with the next case, so no case always
		// follows the same one.
		for i := range servers {
			s := servers[(round+i)%len(servers)]
			srv0, cli0, svc0 := processCPU(s.cmd.Process.Pid), processCPU(os.Getpid()), processCPU(kp.servicePid)
			d := drive(ctx, s.tr, s.url, s.c.user, s.c.password, conns, slice)
			s.res.serverCPU += processCPU(s.cmd.Process.Pid) - srv0
			s.res.clientCPU += processCPU(os.Getpid()) - cli0
			s.res.serviceCPU += processCPU(kp.servicePid) - svc0
			s.lat = append(s.lat, d.lat...)
			s.res.sliceRates = append(s.res.sliceRates, float64(len(d.lat))/d.elapsed.Seconds())
			s.res.errs += d.errs
			s.res.elapsed += d.elapsed
			if s.res.firstErr == "" {
				s.res.firstErr = d.firstErr
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	var out []result
	for _, s := range servers {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s: the server exited during the run (log: %s)", s.c.name, s.logPath)
		default:
		}
		r := s.res
		r.c, r.key, r.conns, r.n = s.c, kp.name, conns, len(s.lat)
		var err error
		if r.rssKB, err = peakRSS(s.cmd.Process.Pid); err != nil {
			return nil, err
		}
		if len(s.lat) > 0 {
			slices.Sort(s.lat)
			r.p50, r.p99 = s.lat[len(s.lat)/2], s.lat[(len(s.lat)-1)*99/100]
		}
		out = append(out, r)
	}
	return out, nil
}

// startServer starts the server of case c on a free loopback port, its
// output going to a log file (or /dev/null with -log discard).
func startServer(o *options, dir, bin, self string, kp keyPair, hash string, slapd *ldaptest.Server, c caseSpec, conns int) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{c: c, logPath: os.DevNull, exited: make(chan struct{}),
		url: "http://" + addr + "/auth?service=" + benchService + "&scope=" + c.scope,
		tr: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		}}
	if o.logTo == "file" {
		s.logPath = filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", c.name, kp.name, conns))
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	if c.ceiling {
		ck := kp
		if kp.ceiling != nil {
			ck = *kp.ceiling
		}
		s.cmd = exec.Command(self, ceilingCommand, "-addr", addr, "-cert", ck.cert, "-key", ck.key)
	} else {
		co := configOptions{addr: addr, key: kp, hash: hash, noCache: c.noCache, logLevel: o.logLevel}
		if c.ldap {
			co.ldap = slapd
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.yml", c.name, kp.name, conns))
		if err := os.WriteFile(cfgPath, []byte(gatehouseConfig(co)), 0o600); err != nil {
			return nil, err
		}
		bin = cmp.Or(c.bin, kp.bin, bin)
		s.cmd = exec.Command(bin, "serve", cfgPath)
		if kp.env != nil {
			s.cmd.Env = append(os.Environ(), kp.env...)
		}
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	track(s.cmd.Process, true)
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	return s, nil
}
