package harness

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// RequireNginx returns the path of nginx (Debian's nginx-light). When it is
// not installed the test is skipped, or fails when CI=true
// (scripts/test.sh installs it).
func RequireNginx(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil { // not on a non-root PATH
		return "/usr/sbin/nginx"
	}
	return RequireTool(t, "nginx")
}

// Nginx is an nginx started by a test: its own configuration, pid file,
// logs and temporary files in the test's temporary directory, in the
// foreground, never the system service.
type Nginx struct {
	Addr      string // 127.0.0.1:PORT, where the configuration listens
	AccessLog string // the access log path the configuration writes to
	ErrorLog  string

	cmd  *exec.Cmd
	done chan struct{}
}

// NginxMain is the main context of a test nginx around an http block that
// includes conf: the paths are in dir, one worker, and the compiled-in
// temporary directories (/var/lib/nginx/...) replaced by dir/tmp/...,
// which it creates. It returns the configuration's text.
func NginxMain(t testing.TB, bin, dir, conf string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if os.Geteuid() == 0 {
		// Otherwise the worker runs as nobody and cannot enter dir.
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, "worker_processes 1;\npid %s;\nerror_log %s info;\nevents { worker_connections 1024; }\nhttp {\n",
		filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	// Only the modules this nginx has take a temp path directive.
	out, _ := exec.Command(bin, "-V").CombinedOutput()
	for _, m := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if m != "client_body" && strings.Contains(string(out), "--without-http_"+m+"_module") {
			continue
		}
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", m, filepath.Join(dir, "tmp", m))
	}
	fmt.Fprintf(&b, "    include %s;\n}\n", conf)
	return b.String()
}

// StartNginx writes the http-context configuration conf (which must listen
// on addr, 127.0.0.1:PORT, and log requests to accessLog) into dir, wraps it
// with NginxMain and runs nginx until the test ends. It waits until addr
// accepts connections.
func StartNginx(t testing.TB, bin, dir, addr, accessLog, conf string) *Nginx {
	t.Helper()
	testutil.UsesComponent(t, "nginx")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "gatehouse.conf")
	writeFile(t, confPath, conf)
	mainPath := filepath.Join(dir, "nginx.conf")
	writeFile(t, mainPath, NginxMain(t, bin, dir, confPath))
	n := &Nginx{Addr: addr, AccessLog: accessLog, ErrorLog: filepath.Join(dir, "error.log"), done: make(chan struct{})}
	if out, err := exec.Command(bin, "-t", "-q", "-e", n.ErrorLog, "-p", dir, "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n--- %s ---\n%s", err, out, confPath, conf)
	}
	n.cmd = exec.Command(bin, "-e", n.ErrorLog, "-p", dir, "-c", mainPath, "-g", "daemon off;")
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the master and its worker, to be stopped together
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	go func() {
		_ = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("--- nginx error log ---\n%s", tail(n.ErrorLog, 40))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-n.done:
			t.Fatalf("nginx exited while starting:\n%s", tail(n.ErrorLog, 40))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s after 10 s:\n%s", addr, tail(n.ErrorLog, 40))
		}
	}
}

// stop asks nginx to stop (SIGTERM: the master stops its worker) and, if it
// is still there after 10 s, kills its process group.
func (n *Nginx) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}

// AccessLogLines returns the lines of the access log.
func (n *Nginx) AccessLogLines(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(n.AccessLog)
	if err != nil {
		t.Fatalf("nginx access log: %v", err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	return lines
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}
