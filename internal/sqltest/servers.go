package sqltest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// setupPostgres creates a cluster with initdb (trust authentication for
// the superuser gatehouse, no fsync) and the command that serves it on a
// free port, with its socket in the cluster's directory.
func setupPostgres(t testing.TB) (*Server, error) {
	initdb := find(t, "postgresql", "initdb", "/usr/lib/postgresql/17/bin/initdb", "/usr/lib/postgresql/16/bin/initdb", "/usr/lib/postgresql/15/bin/initdb")
	bin := filepath.Join(filepath.Dir(initdb), "postgres")
	dir, cred, err := workDir("postgres")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "postgres", Port: port, name: "PostgreSQL", dir: dir, cred: cred, logFile: filepath.Join(dir, "server.log")}
	data := filepath.Join(dir, "data")
	if err := s.run(initdb, "-D", data, "-U", "gatehouse", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return s, err
	}
	s.cmdArgs = []string{bin, "-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"}
	return s, nil
}

// setupMariaDB creates a data directory with mariadb-install-db and the
// command that serves it on a free port without grant checks (every client
// is the superuser), with its socket in the directory.
func setupMariaDB(t testing.TB) (*Server, error) {
	bin := find(t, "mariadb-server", "mariadbd", "/usr/sbin/mariadbd", "/usr/sbin/mysqld")
	install := find(t, "mariadb-server", "mariadb-install-db", "/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
	dir, cred, err := workDir("mysql")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "mysql", Port: port, name: "MariaDB", dir: dir, cred: cred, logFile: filepath.Join(dir, "server.log")}
	data := filepath.Join(dir, "data")
	if err := s.run(install, "--no-defaults", "--datadir="+data, "--skip-test-db", "--auth-root-authentication-method=normal",
		"--skip-name-resolve", fmt.Sprintf("--basedir=%s", "/usr")); err != nil {
		return s, err
	}
	s.cmdArgs = []string{bin, "--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "mysqld.sock"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--innodb-flush-log-at-trx-commit=0", "--max-connections=200"}
	return s, nil
}
