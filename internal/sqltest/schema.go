package sqltest

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"

	_ "modernc.org/sqlite" // "sqlite" driver
)

// DB is one test database: its xorm_auth/acl_xorm keys and a pool to seed it.
type DB struct {
	// Type is the database_type: postgres, mysql or sqlite3.
	Type string
	// Conn is the conn_string.
	Conn string
	// SQL seeds and changes the data.
	SQL *sql.DB
	// Server is nil for SQLite.
	Server *Server
}

// Rebind rewrites ? placeholders as $n for PostgreSQL.
func (d *DB) Rebind(q string) string {
	if d.Type != "postgres" {
		return q
	}
	out, n := []byte{}, 0
	for i := range len(q) {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// Exec runs a statement with ? placeholders, failing t on error.
func (d *DB) Exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := d.SQL.Exec(d.Rebind(q), args...); err != nil {
		t.Fatalf("sqltest: %s: %s: %v", d.Type, q, err)
	}
}

// SQLite returns a database file in t's temporary directory, read by
// Gatehouse through the conn_string form docker_auth used: a path.
func SQLite(t testing.TB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker_auth.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &DB{Type: "sqlite3", Conn: path, SQL: db}
}

// NewTestDB returns an empty database of s for t.
func (s *Server) NewTestDB(t testing.TB) *DB {
	t.Helper()
	conn, db := s.NewDB(t)
	return &DB{Type: s.Kind, Conn: conn, SQL: db, Server: s}
}

// All returns a fresh database on each of SQLite, PostgreSQL and MariaDB,
// for table-driven tests; each case is named by its Type.
func All(t testing.TB) []*DB {
	t.Helper()
	return []*DB{SQLite(t), Postgres(t).NewTestDB(t), MariaDB(t).NewTestDB(t)}
}

// CreateDockerAuthTables creates xorm_user and xorm_acl_entry as
// docker_auth's xorm Sync2 does, so tests read an existing docker_auth
// database (labels is a JSON column on PostgreSQL and MariaDB).
func (d *DB) CreateDockerAuthTables(t testing.TB) {
	t.Helper()
	switch d.Type {
	case "postgres":
		d.Exec(t, "CREATE TABLE xorm_user (id BIGSERIAL PRIMARY KEY NOT NULL, username VARCHAR(128) NOT NULL, password_hash VARCHAR(128) NOT NULL, labels JSON NULL)")
	case "mysql":
		d.Exec(t, "CREATE TABLE xorm_user (id BIGINT(20) PRIMARY KEY AUTO_INCREMENT NOT NULL, username VARCHAR(128) NOT NULL, password_hash VARCHAR(128) NOT NULL, labels JSON NULL) DEFAULT CHARSET utf8mb4")
	default:
		d.Exec(t, "CREATE TABLE xorm_user (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, username TEXT NOT NULL, password_hash TEXT NOT NULL, labels TEXT NULL)")
	}
	d.Exec(t, "CREATE TABLE xorm_acl_entry (acl_entry TEXT NULL, seq BIGINT NULL)")
}

// AddUser inserts a row into xorm_user; labels is its JSON text ("" for
// NULL).
func (d *DB) AddUser(t testing.TB, name, hash, labels string) {
	t.Helper()
	var l any
	if labels != "" {
		l = labels
	}
	d.Exec(t, "INSERT INTO xorm_user (username, password_hash, labels) VALUES (?, ?, ?)", name, hash, l)
}

// SetACL replaces the rows of xorm_acl_entry: seq → acl_entry JSON text.
func (d *DB) SetACL(t testing.TB, rows map[int64]string) {
	t.Helper()
	d.Exec(t, "DELETE FROM xorm_acl_entry")
	for seq, entry := range rows {
		d.Exec(t, "INSERT INTO xorm_acl_entry (acl_entry, seq) VALUES (?, ?)", entry, seq)
	}
}
