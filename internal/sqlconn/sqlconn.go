// Package sqlconn opens the SQL databases of xorm_auth and acl_xorm:
// docker_auth's database_type and conn_string keys mapped to database/sql
// with pure-Go drivers (pgx for postgres, go-sql-driver for mysql, modernc
// SQLite for sqlite3), a bounded pool and a per-query timeout.
package sqlconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// The database types docker_auth's database_type accepts.
const (
	MySQL    = "mysql"
	Postgres = "postgres"
	SQLite   = "sqlite3"
)

// DefaultTimeout bounds each query when timeout is not set.
const DefaultTimeout = 5 * time.Second

// MaxOpenConns bounds the connections one section keeps to its database.
const MaxOpenConns = 8

// Config holds the keys xorm_auth and acl_xorm share.
type Config struct {
	// DatabaseType is mysql, postgres or sqlite3.
	DatabaseType string `yaml:"database_type"`
	// ConnString is a go-sql-driver/mysql DSN
	// (user:pass@tcp(host:3306)/db), a libpq key=value string or
	// postgres:// URL, or a SQLite file path (or file: URI).
	ConnString string `yaml:"conn_string"`
	// PasswordFile (Gatehouse's) holds the database password, which then
	// replaces the one in conn_string (mysql, postgres).
	PasswordFile string `yaml:"password_file"`
	// Timeout (Gatehouse's) bounds each query and each connection attempt;
	// 0 means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// CreateTables (Gatehouse's) creates the section's table when it is
	// missing. Off by default: Gatehouse never changes a schema unless told.
	CreateTables bool `yaml:"create_tables"`
}

// Validate checks the keys without I/O; problems are placed at their keys
// relative to the section. Error messages never quote conn_string, which
// may hold a password.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error, key string) { errs = append(errs, cfgerr.At(err, key)) }
	switch c.DatabaseType {
	case MySQL, Postgres, SQLite:
	case "":
		add(errors.New("is required: mysql, postgres or sqlite3"), "database_type")
	default:
		add(fmt.Errorf("must be mysql, postgres or sqlite3, got %q", c.DatabaseType), "database_type")
	}
	if c.ConnString == "" {
		add(errors.New("is required"), "conn_string")
	} else if _, err := c.parse(""); err != nil {
		add(err, "conn_string")
	}
	if c.Timeout < 0 {
		add(fmt.Errorf("must not be negative, got %s", c.Timeout), "timeout")
	}
	if c.PasswordFile != "" && c.DatabaseType == SQLite {
		add(errors.New("applies only to mysql and postgres"), "password_file")
	}
	return errors.Join(errs...)
}

// Files returns the password file, for reloads.
func (c *Config) Files() []string {
	if c.PasswordFile == "" {
		return nil
	}
	return []string{c.PasswordFile}
}

// timeout returns Timeout or its default.
func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// opener is a parsed conn_string: how to open the pool and what to call it
// in logs.
type opener struct {
	open  func() (*sql.DB, error)
	where string
}

// parse maps conn_string to a driver configuration; password, when set,
// replaces conn_string's.
func (c *Config) parse(password string) (*opener, error) {
	to := c.timeout()
	switch c.DatabaseType {
	case MySQL:
		mc, err := mysql.ParseDSN(c.ConnString)
		if err != nil {
			return nil, errors.New("not a go-sql-driver/mysql DSN such as user:password@tcp(host:3306)/docker_auth")
		}
		if password != "" {
			mc.Passwd = password
		}
		if mc.Timeout == 0 {
			mc.Timeout = to
		}
		if mc.ReadTimeout == 0 {
			mc.ReadTimeout = to
		}
		if mc.WriteTimeout == 0 {
			mc.WriteTimeout = to
		}
		return &opener{where: "mysql " + mc.User + "@" + mc.Addr + "/" + mc.DBName, open: func() (*sql.DB, error) {
			conn, err := mysql.NewConnector(mc)
			if err != nil {
				return nil, err
			}
			return sql.OpenDB(conn), nil
		}}, nil
	case Postgres:
		pc, err := pgx.ParseConfig(c.ConnString)
		if err != nil {
			return nil, errors.New("not a libpq connection string (host=… dbname=…) or postgres:// URL")
		}
		if password != "" {
			pc.Password = password
		}
		if pc.ConnectTimeout == 0 {
			pc.ConnectTimeout = to
		}
		where := fmt.Sprintf("postgres %s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database)
		return &opener{where: where, open: func() (*sql.DB, error) { return stdlib.OpenDB(*pc), nil }}, nil
	case SQLite:
		dsn := sqliteDSN(c.ConnString, c.CreateTables, to)
		return &opener{where: "sqlite3 " + strings.SplitN(strings.TrimPrefix(c.ConnString, "file:"), "?", 2)[0],
			open: func() (*sql.DB, error) { return sql.Open("sqlite", dsn) }}, nil
	}
	return nil, errors.New("needs a valid database_type")
}

// sqliteDSN turns a path into a file: URI, opened read-only unless tables
// may be created (so a mistyped path is an error, not a new empty
// database), with a busy timeout. A file: URI is used as given.
func sqliteDSN(conn string, create bool, timeout time.Duration) string {
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", timeout.Milliseconds())
	if strings.HasPrefix(conn, "file:") {
		if strings.Contains(conn, "?") {
			return conn + "&" + busy
		}
		return conn + "?" + busy
	}
	mode := "ro"
	if create {
		mode = "rwc"
	}
	path := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(conn)
	return "file:" + path + "?" + url.Values{"mode": {mode}}.Encode() + "&" + busy
}

// DB is one section's pool.
type DB struct {
	*sql.DB
	// Type is the database type, which decides the SQL dialect.
	Type string
	// Timeout bounds each query; callers derive their deadline with
	// WithTimeout.
	Timeout time.Duration
	where   string
	ddl     []string
	created atomic.Bool
}

// Open reads the password file, if any, and builds the pool. It does not
// connect: a database that is down at startup only makes the first queries
// fail. ddl returns, for the database type, the statements Ready runs
// (CREATE … IF NOT EXISTS) when create_tables is set.
func Open(cfg *Config, ddl func(dbType string) []string) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	password := ""
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, cfgerr.At(fmt.Errorf("sql: %w", err), "password_file")
		}
		if password = strings.TrimRight(string(b), " \t\r\n"); password == "" {
			return nil, cfgerr.At(fmt.Errorf("sql: %s is empty", cfg.PasswordFile), "password_file")
		}
	}
	o, err := cfg.parse(password)
	if err != nil {
		return nil, cfgerr.At(err, "conn_string")
	}
	db, err := o.open()
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("sql: %w", err), "conn_string")
	}
	db.SetMaxOpenConns(MaxOpenConns)
	db.SetMaxIdleConns(MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	d := &DB{DB: db, Type: cfg.DatabaseType, Timeout: cfg.timeout(), where: o.where}
	if cfg.CreateTables {
		d.ddl = ddl(cfg.DatabaseType)
	} else {
		d.created.Store(true)
	}
	return d, nil
}

// WithTimeout derives the context of one query: ctx's deadline or Timeout
// from now, whichever comes first.
func (d *DB) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.Timeout)
}

// Ready runs the create_tables statements once, before the first query
// that needs them; until they succeed every call tries again.
func (d *DB) Ready(ctx context.Context) error {
	if d.created.Load() {
		return nil
	}
	for _, stmt := range d.ddl {
		if _, err := d.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sql: create_tables: %w", err)
		}
	}
	d.created.Store(true)
	return nil
}

// Rebind rewrites the ? placeholders of query for the database: $1, $2, …
// for postgres. The queries are constants without ? in literals.
func (d *DB) Rebind(query string) string {
	if d.Type != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// AutoID is the column type of an auto-increment primary key in dbType,
// for create_tables.
func AutoID(dbType string) string {
	switch dbType {
	case Postgres:
		return "BIGSERIAL PRIMARY KEY"
	case MySQL:
		return "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
	}
	return "INTEGER PRIMARY KEY AUTOINCREMENT"
}

// String names the database for logs; it never holds credentials.
func (d *DB) String() string { return d.where }
