// Package sqltest runs real PostgreSQL and MariaDB servers for tests, from
// the Debian packages postgresql and mariadb-server (scripts/test.sh
// installs them): each in a temporary directory, on a free loopback port,
// started at most once per test binary and stopped by Main. Every test gets
// a database of its own. When the binaries are missing the test is
// skipped, or fails when the environment variable CI is "true".
//
//	func TestMain(m *testing.M) { sqltest.Main(m) }
//
//	srv := sqltest.Postgres(t)
//	conn, db := srv.NewDB(t) // conn_string for xorm_auth; db to seed it
//	srv.Stop()               // the database is down: requests must get 503
//	srv.Start()              // same port, same data
//
// Running as root, the servers run as the postgres and mysql users, which
// the packages create (PostgreSQL refuses to run as root). Only tests
// import it.
package sqltest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// Server is a running (or stopped) database server shared by the tests of
// one binary.
type Server struct {
	// Kind is "postgres" or "mysql", xorm_auth's database_type.
	Kind string
	// Port is the loopback TCP port it listens on.
	Port int

	name    string // component name: PostgreSQL, MariaDB
	dir     string
	cmdArgs []string
	cred    *syscall.Credential
	logFile string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	n      int           // databases created
}

var (
	mu      sync.Mutex
	servers = map[string]*Server{}
	failed  = map[string]string{} // kind → why it could not start
)

// Main runs the tests and then stops the servers they started. Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	for _, s := range servers {
		s.Stop()
		_ = os.RemoveAll(s.dir)
	}
	mu.Unlock()
	os.Exit(code)
}

// Postgres returns the shared PostgreSQL server, starting it on first use.
func Postgres(t testing.TB) *Server {
	t.Helper()
	return get(t, "postgres")
}

// MariaDB returns the shared MariaDB server, starting it on first use.
func MariaDB(t testing.TB) *Server {
	t.Helper()
	return get(t, "mysql")
}

func get(t testing.TB, kind string) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	name := map[string]string{"postgres": "PostgreSQL", "mysql": "MariaDB"}[kind]
	testutil.UsesComponent(t, name)
	if s := servers[kind]; s != nil {
		return s
	}
	if why := failed[kind]; why != "" {
		t.Fatal(why)
	}
	var (
		s   *Server
		err error
	)
	if kind == "postgres" {
		s, err = setupPostgres(t)
	} else {
		s, err = setupMariaDB(t)
	}
	if err == nil {
		err = s.start()
	}
	if err != nil {
		failed[kind] = fmt.Sprintf("sqltest: %s: %v", name, err)
		if s != nil {
			s.Stop()
			t.Logf("--- %s log ---\n%s", name, s.log())
		}
		t.Fatal(failed[kind])
	}
	servers[kind] = s
	return s
}

// find locates a server binary, or skips (fails under CI=true) the test.
func find(t testing.TB, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if filepath.IsAbs(c) {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		} else if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("sqltest: %s not found: install the Debian package %s (scripts/test.sh does)", candidates[0], pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so a missing component fails")
	}
	t.Skip(msg)
	return ""
}

// workDir makes the server's directory, owned by owner when running as
// root (t.TempDir's parents are not readable by other users).
func workDir(owner string) (string, *syscall.Credential, error) {
	dir, err := os.MkdirTemp("", "sqltest-")
	if err != nil {
		return "", nil, err
	}
	if os.Geteuid() != 0 {
		return dir, nil, nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return "", nil, fmt.Errorf("running as root needs the %s user (the package creates it): %w", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", nil, err
	}
	return dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// run runs a setup command as the server's user.
func (s *Server) run(bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(bin), err, out)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start starts the server and waits until it answers.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(s.cmdArgs[0], s.cmdArgs[1:]...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed if the test binary dies without
	// running Main's cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open(s.driver(), s.dsn(s.adminDB()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = db.PingContext(ctx)
			cancel()
			_ = db.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("%s exited while starting", s.cmdArgs[0])
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after 60s: %w", err)
		}
	}
}

// Start starts a stopped server again on the same port with the same data.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("sqltest: %s: restart: %v\n%s", s.name, err, s.log())
	}
}

// Stop shuts the server down (fast shutdown: connections are dropped) and
// waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if s.Kind == "postgres" {
		sig = syscall.SIGINT // fast shutdown
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd, s.exited = nil, nil
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// driver is the database/sql driver name for seeding.
func (s *Server) driver() string {
	if s.Kind == "postgres" {
		return "pgx"
	}
	return "mysql"
}

// adminDB is the database that always exists.
func (s *Server) adminDB() string {
	if s.Kind == "postgres" {
		return "postgres"
	}
	return "mysql"
}

// dsn is the conn_string of database db, in the form docker_auth's users
// write: a libpq key=value string, a go-sql-driver/mysql DSN.
func (s *Server) dsn(db string) string {
	if s.Kind == "postgres" {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=gatehouse dbname=%s sslmode=disable", s.Port, db)
	}
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, db)
}

// NewDB creates an empty database for t and returns its conn_string and a
// pool to seed it, closed when t ends.
func (s *Server) NewDB(t testing.TB) (string, *sql.DB) {
	t.Helper()
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("t%d", s.n)
	s.mu.Unlock()
	admin, err := sql.Open(s.driver(), s.dsn(s.adminDB()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("sqltest: %s: create database: %v", s.name, err)
	}
	conn := s.dsn(name)
	db, err := sql.Open(s.driver(), conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return conn, db
}
