package harness

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildGatehouse builds the gatehouse command (the module's main package)
// into a temporary directory and returns the binary's path.
func BuildGatehouse(t testing.TB) string {
	t.Helper()
	return BuildGatehouseTags(t, "")
}

// BuildGatehouseTags is BuildGatehouse with the build tags tags (comma
// separated; "" for none). With tags it builds with cgo (CGO_ENABLED=1), as
// the pkcs11 tag needs.
func BuildGatehouseTags(t testing.TB, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatehouse")
	args := []string{"build", "-o", bin}
	cmd := exec.Command("go")
	if tags != "" {
		args = append(args, "-tags", tags)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	cmd.Args = append(cmd.Args, append(args, "github.com/gatehouse/gatehouse")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building gatehouse (tags %q): %v\n%s", tags, err, out)
	}
	return bin
}

// AddrEnv is the environment variable the configuration of
// WriteBinaryConfig takes server.addr from, so that one file serves
// several processes.
const AddrEnv = "GATEHOUSE_ADDR"

// WriteBinaryConfig writes, into dir, the htpasswd file and an
// auth_config.yml for the gatehouse binary: the seed policy of
// StartGatehouse with options o, listening on ${env:GATEHOUSE_ADDR}, with
// serverExtra (indented `server:` keys, e.g. "  real_ip_header: X-Forwarded-For\n")
// added to the server section. It returns the configuration's path.
func WriteBinaryConfig(t testing.TB, dir string, o GatehouseOptions, serverExtra string) string {
	t.Helper()
	htpasswdPath := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswdPath, fmt.Sprintf("%s:%s\n", Carol.User, hash(t, Carol.Password)))
	const addr = "server:\n  addr: \":5001\"\n"
	cfg := authConfig(t, o, htpasswdPath)
	if !strings.HasPrefix(cfg, addr) {
		t.Fatalf("WriteBinaryConfig: the configuration does not start with %q:\n%s", addr, cfg)
	}
	cfg = "server:\n  addr: \"${env:" + AddrEnv + "}\"\n" + serverExtra + strings.TrimPrefix(cfg, addr)
	path := filepath.Join(dir, "auth_config.yml")
	writeFile(t, path, cfg)
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a gatehouse binary started by a test. Its standard error (the
// log) goes to a file in the test's temporary directory.
type Process struct {
	Name    string
	Addr    string // 127.0.0.1:PORT
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, once done is closed
}

// StartProcess runs bin with the configuration cfgPath, listening on
// 127.0.0.1:port (through AddrEnv). The process is stopped when the test
// ends, with SIGTERM and, if it is still there after 10 s, SIGKILL; if the
// test failed, the end of its log is printed.
func StartProcess(t testing.TB, bin, cfgPath, name string, port int) *Process {
	t.Helper()
	p := &Process{
		Name:    name,
		Addr:    fmt.Sprintf("127.0.0.1:%d", port),
		LogPath: filepath.Join(t.TempDir(), name+".log"),
		done:    make(chan struct{}),
	}
	logFile, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	p.cmd = exec.Command(bin, cfgPath)
	p.cmd.Env = append(os.Environ(), AddrEnv+"="+p.Addr)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Alive() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("--- %s (%s) log, last 60 lines ---\n%s", name, p.Addr, p.LogTail(60))
		}
	})
	return p
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Alive reports whether the process has not exited.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitReady polls /readyz until it answers 200, and fails the test if that
// takes longer than timeout or the process exits first.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !p.Alive() {
			t.Fatalf("%s exited while starting (%v):\n%s", p.Name, p.err, p.LogTail(60))
		}
		resp, err := client.Get("http://" + p.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s not ready on %s after %v:\n%s", p.Name, p.Addr, timeout, p.LogTail(60))
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && p.Alive() {
		t.Fatalf("killing %s: %v", p.Name, err)
	}
	<-p.done
}

// Reload sends SIGHUP: the process reloads its configuration.
func (p *Process) Reload(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("reloading %s: %v", p.Name, err)
	}
}

// Stop sends SIGTERM and returns the exit code once the process has
// exited, or fails the test if that takes longer than timeout.
func (p *Process) Stop(t testing.TB, timeout time.Duration) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.Name, timeout)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("%s: %v", p.Name, p.err)
	return -1
}

// RSS returns the resident set size (VmRSS in /proc/PID/status) in KiB.
func (p *Process) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.Pid())
}

// Log returns everything the process has logged so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string { return tail(p.LogPath, n) }

// LogLines returns the lines of the log that contain substr, case
// insensitively, at most limit of them, and how many there are in all. It
// reads the log as a stream, so a large log costs little memory.
func (p *Process) LogLines(substr string, limit int) ([]string, int, error) {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	substr = strings.ToLower(substr)
	var found []string
	n := 0
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 4<<20)
	for s.Scan() {
		if strings.Contains(strings.ToLower(s.Text()), substr) {
			n++
			if len(found) < limit {
				found = append(found, s.Text())
			}
		}
	}
	return found, n, s.Err()
}

// NewExternalEnv starts a registry from newRegistry that trusts key's
// certificate and sends clients to realm for tokens: a Gatehouse the test
// runs itself, such as processes behind a load balancer. The Env's
// Gatehouse has only Host and Realm; its requests are not recorded.
func NewExternalEnv(t testing.TB, newRegistry RegistryFactory, key SigningKey, realm string) *Env {
	t.Helper()
	u, err := url.Parse(realm)
	if err != nil {
		t.Fatalf("realm %q: %v", realm, err)
	}
	logOffset := registryLogOffset()
	e := &Env{
		Key: key,
		Gatehouse: &Gatehouse{Host: u.Host, Realm: realm,
			exchanges: &recorder{name: "gatehouse"}, log: &syncBuffer{}},
		registryLog: &recorder{name: "registry"},
		transport:   http.DefaultTransport.(*http.Transport).Clone(),
	}
	t.Cleanup(e.transport.CloseIdleConnections)
	h := newRegistry(t, RegistryAuth{Realm: realm, Service: Service, Issuer: Issuer, RootCertBundle: key.CertPath})
	e.Registry = serve(t, e.registryLog.wrap(h))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry %s, realm %s\n--- requests to the registry ---\n%s--- registry log ---\n%s",
				e.Registry, realm, e.registryLog, registryLogSince(logOffset))
		}
	})
	return e
}
