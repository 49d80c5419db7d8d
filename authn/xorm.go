package authn

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/sqlconn"
)

// XormConfig is the `xorm_auth:` section: users kept in a SQL table,
// docker_auth's keys plus Gatehouse's timeout, password_file and
// create_tables.
//
//	xorm_auth:
//	  database_type: postgres      # mysql | postgres | sqlite3
//	  conn_string: "host=db user=gatehouse dbname=docker_auth sslmode=verify-full"
//	  password_file: /run/secrets/db   # optional; replaces conn_string's password
//	  timeout: "5s"                # each query; past it the client gets 503
//	  create_tables: false         # true: create xorm_user when missing
//
// The table is docker_auth's: xorm_user(id, username, password_hash,
// labels), labels a JSON text {"key": ["value", …]}; the row with the
// highest id wins when a username repeats. See docs/sql.md.
type XormConfig struct {
	sqlconn.Config `yaml:",inline"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section.
func (c *XormConfig) Validate() error { return c.Config.Validate() }

// XormAssumedBcryptCost is the bcrypt cost the chain assumes for SQL users,
// whose hashes it cannot see in advance: bcrypt's default, which `gatehouse
// hash` and htpasswd -B write. Unknown accounts spend a comparison at this
// cost, and every password check takes at least as long.
const XormAssumedBcryptCost = bcrypt.DefaultCost

// xormUserQuery finds an account's rows, newest first (docker_auth takes
// the highest id). Every row whose username the database calls equal is
// read, and the first that is byte-for-byte the account is used: MySQL's
// usual collations compare case-insensitively and ignore trailing spaces.
const xormUserQuery = "SELECT username, password_hash, labels FROM xorm_user WHERE username = ? ORDER BY id DESC"

// Xorm authenticates the users of docker_auth's xorm_user table, with one
// query per request. It owns its connection pool; Close closes it.
type Xorm struct {
	db    *sqlconn.DB
	query string
}

var (
	_ Authenticator = (*Xorm)(nil)
	_ BcryptCoster  = (*Xorm)(nil)
	_ Checker       = (*Xorm)(nil)
	_ io.Closer     = (*Xorm)(nil)
)

// xormUserDDL creates xorm_user with portable types, for create_tables.
func xormUserDDL(dbType string) []string {
	table := "CREATE TABLE IF NOT EXISTS xorm_user (id " + sqlconn.AutoID(dbType) +
		", username VARCHAR(128) NOT NULL, password_hash VARCHAR(128) NOT NULL, labels TEXT"
	if dbType == sqlconn.MySQL {
		return []string{table + ", INDEX xorm_user_username (username))"}
	}
	return []string{table + ")", "CREATE INDEX IF NOT EXISTS xorm_user_username ON xorm_user (username)"}
}

// NewXorm validates cfg, reads its password file and builds the pool. It
// does not wait for the database: one that is down at startup makes
// requests fail with ErrUnavailable until it answers.
func NewXorm(cfg XormConfig) (*Xorm, error) {
	db, err := sqlconn.Open(&cfg.Config, xormUserDDL)
	if err != nil {
		return nil, err
	}
	return &Xorm{db: db, query: db.Rebind(xormUserQuery)}, nil
}

// Name returns "xorm".
func (x *Xorm) Name() string { return "xorm" }

// MaxBcryptCost returns XormAssumedBcryptCost.
func (x *Xorm) MaxBcryptCost() int { return XormAssumedBcryptCost }

// MinBcryptCost returns XormAssumedBcryptCost.
func (x *Xorm) MinBcryptCost() int { return XormAssumedBcryptCost }

// Authenticate looks account up and compares password with its bcrypt
// hash. The account is always a query parameter, never SQL text. A user
// with an empty hash can not log in.
func (x *Xorm) Authenticate(ctx context.Context, account, password string) (Account, error) {
	a, err := x.Lookup(ctx, account)
	if err != nil {
		return Account{}, err
	}
	if a.Credential == "" || bcrypt.CompareHashAndPassword([]byte(a.Credential), []byte(password)) != nil {
		return Account{}, ErrWrongPassword
	}
	return a, nil
}

// Lookup returns the account's current labels and credential (its stored
// hash) without a password.
func (x *Xorm) Lookup(ctx context.Context, account string) (Account, error) {
	// No anonymous account in SQL. A name that is not UTF-8 or holds NUL
	// can not be stored in a text column (PostgreSQL refuses to even
	// compare it): no such user, not a failing database.
	if account == "" || !utf8.ValidString(account) || strings.IndexByte(account, 0) >= 0 {
		return Account{}, ErrNoMatch
	}
	ctx, cancel := x.db.WithTimeout(ctx)
	defer cancel()
	if err := x.db.Ready(ctx); err != nil {
		return Account{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	hash, labels, err := x.find(ctx, account)
	if err != nil {
		return Account{}, err
	}
	l, err := parseLabelsJSON(labels)
	if err != nil {
		return Account{}, fmt.Errorf("%w: sql: user %q: labels: %w", ErrUnavailable, account, err)
	}
	return Account{Name: account, Labels: l, Credential: hash}, nil
}

// find runs the one query of a request.
func (x *Xorm) find(ctx context.Context, account string) (hash string, labels []byte, err error) {
	rows, err := x.db.QueryContext(ctx, x.query, account)
	if err != nil {
		return "", nil, fmt.Errorf("%w: sql: find user %q: %w", ErrUnavailable, account, err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var (
			name string
			h    sql.NullString
			l    []byte
		)
		if err := rows.Scan(&name, &h, &l); err != nil {
			return "", nil, fmt.Errorf("%w: sql: read user %q: %w", ErrUnavailable, account, err)
		}
		if name == account {
			return h.String, l, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("%w: sql: read user %q: %w", ErrUnavailable, account, err)
	}
	return "", nil, ErrNoMatch
}

// parseLabelsJSON decodes the labels column: NULL, empty or JSON null for
// none, else an object whose values are arrays of strings (a single
// string is taken as a one-value list). A malformed value is an error,
// never a silent "no labels".
func parseLabelsJSON(b []byte) (Labels, error) {
	if s := strings.TrimSpace(string(b)); s == "" || s == "null" {
		return Labels{}, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errors.New(`want a JSON object such as {"team": ["a", "b"]}`)
	}
	out := make(Labels, len(raw))
	for k, v := range raw {
		var one string
		if json.Unmarshal(v, &one) == nil {
			out[k] = []string{one}
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil || list == nil {
			return nil, fmt.Errorf("%s: want an array of strings", k)
		}
		out[k] = list
	}
	return out, nil
}

// Check runs the lookup query for no row, for /readyz: it fails when the
// database does not answer within ctx and the timeout, or when xorm_user
// or one of its columns is missing.
func (x *Xorm) Check(ctx context.Context) error {
	ctx, cancel := x.db.WithTimeout(ctx)
	defer cancel()
	if err := x.db.Ready(ctx); err != nil {
		return err
	}
	rows, err := x.db.QueryContext(ctx, "SELECT username, password_hash, labels FROM xorm_user WHERE 1 = 0")
	if err != nil {
		return fmt.Errorf("sql: %s: %w", x.db, err)
	}
	return rows.Close()
}

// Close closes the connection pool.
func (x *Xorm) Close() error { return x.db.Close() }
