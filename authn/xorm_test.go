package authn

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/sqlconn"
	"github.com/gatehouse/gatehouse/internal/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

func hashOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newTestXorm opens xorm_auth on d, closed when t ends.
func newTestXorm(t testing.TB, d *sqltest.DB, mod ...func(*XormConfig)) *Xorm {
	t.Helper()
	cfg := XormConfig{sqlconn.Config{DatabaseType: d.Type, ConnString: d.Conn, Timeout: 2 * time.Second}}
	for _, m := range mod {
		m(&cfg)
	}
	x, err := NewXorm(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

// seedUsers creates docker_auth's tables on d and its users: alice with
// labels, bob twice (the newer row wins), carol without labels.
func seedUsers(t testing.TB, d *sqltest.DB) {
	t.Helper()
	d.CreateDockerAuthTables(t)
	d.AddUser(t, "alice", hashOf(t, "alicepw"), `{"team": ["infra", "web"], "tier": "gold"}`)
	d.AddUser(t, "bob", hashOf(t, "oldpw"), "")
	d.AddUser(t, "bob", hashOf(t, "bobpw"), `{"team": ["web"]}`)
	d.AddUser(t, "carol", hashOf(t, "carolpw"), "null")
}

// TestXormAuthenticate runs the outcomes of a login against SQLite,
// PostgreSQL and MariaDB, each seeded with docker_auth's schema.
func TestXormAuthenticate(t *testing.T) {
	for _, d := range sqltest.All(t) {
		t.Run(d.Type, func(t *testing.T) {
			seedUsers(t, d)
			x := newTestXorm(t, d)
			ctx := context.Background()
			for _, tc := range []struct {
				name, account, password string
				want                    error
				labels                  Labels
			}{
				{"login with labels", "alice", "alicepw", nil, Labels{"team": {"infra", "web"}, "tier": {"gold"}}},
				{"newest row wins", "bob", "bobpw", nil, Labels{"team": {"web"}}},
				{"older row's password", "bob", "oldpw", ErrWrongPassword, nil},
				{"null labels", "carol", "carolpw", nil, Labels{}},
				{"wrong password", "alice", "nope", ErrWrongPassword, nil},
				{"unknown user", "mallory", "x", ErrNoMatch, nil},
				{"anonymous", "", "", ErrNoMatch, nil},
				{"other case", "ALICE", "alicepw", ErrNoMatch, nil},
				{"trailing space", "alice ", "alicepw", ErrNoMatch, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					a, err := x.Authenticate(ctx, tc.account, tc.password)
					if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
						t.Fatalf("Authenticate(%q) = %v, want %v", tc.account, err, tc.want)
					}
					if tc.want == nil && (!reflect.DeepEqual(a.Labels, tc.labels) || a.Name != tc.account || !strings.HasPrefix(a.Credential, "$2")) {
						t.Errorf("account = %+v, want labels %v", a, tc.labels)
					}
				})
			}
			if err := x.Check(ctx); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// TestXormInjection: hostile account names are values, never SQL: each is
// an unknown account, and the database keeps answering.
func TestXormInjection(t *testing.T) {
	corpus := []string{
		"' OR 1=1 --", "alice'--", "alice' OR '1'='1", `alice"; DROP TABLE xorm_user; --`,
		"alice\x00", "\x00", "al\xffice", strings.Repeat("a", 10<<10), "%", "_lice", `\`, "?", "$1",
	}
	for _, d := range sqltest.All(t) {
		t.Run(d.Type, func(t *testing.T) {
			seedUsers(t, d)
			x := newTestXorm(t, d)
			for _, name := range corpus {
				if _, err := x.Authenticate(context.Background(), name, "alicepw"); !errors.Is(err, ErrNoMatch) {
					t.Errorf("Authenticate(%.40q) = %v, want ErrNoMatch", name, err)
				}
			}
			if _, err := x.Authenticate(context.Background(), "alice", "alicepw"); err != nil {
				t.Errorf("alice after the corpus: %v", err)
			}
		})
	}
}

// TestXormCredentialChanges: Lookup's credential follows the stored hash,
// so refresh tokens bound to it stop when the password changes.
func TestXormCredentialChanges(t *testing.T) {
	d := sqltest.SQLite(t)
	seedUsers(t, d)
	x := newTestXorm(t, d)
	before, err := x.Lookup(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	d.AddUser(t, "alice", hashOf(t, "newpw"), `{"team": ["infra"]}`)
	after, err := x.Lookup(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if before.Credential == after.Credential || !reflect.DeepEqual(after.Labels, Labels{"team": {"infra"}}) {
		t.Errorf("after a new row: %+v, before %+v", after, before)
	}
	d.Exec(t, "DELETE FROM xorm_user WHERE username = ?", "alice")
	if _, err := x.Lookup(context.Background(), "alice"); !errors.Is(err, ErrNoMatch) {
		t.Errorf("Lookup of a deleted user: %v, want ErrNoMatch", err)
	}
}

// TestXormFailures: what the backend can not answer is ErrUnavailable
// (503), never a 401.
func TestXormFailures(t *testing.T) {
	t.Run("malformed labels", func(t *testing.T) {
		d := sqltest.SQLite(t)
		seedUsers(t, d)
		d.AddUser(t, "dave", hashOf(t, "davepw"), `{"team": 3}`)
		if _, err := newTestXorm(t, d).Authenticate(context.Background(), "dave", "davepw"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("no table", func(t *testing.T) {
		d := sqltest.SQLite(t)
		d.Exec(t, "CREATE TABLE other (v TEXT)")
		x := newTestXorm(t, d)
		if _, err := x.Authenticate(context.Background(), "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
		if x.Check(context.Background()) == nil {
			t.Error("Check passed without xorm_user")
		}
	})
	t.Run("missing sqlite file is not created", func(t *testing.T) {
		d := &sqltest.DB{Type: "sqlite3", Conn: t.TempDir() + "/missing.db"}
		if _, err := newTestXorm(t, d).Authenticate(context.Background(), "alice", "x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("create_tables", func(t *testing.T) {
		d := &sqltest.DB{Type: "sqlite3", Conn: t.TempDir() + "/new.db"}
		x := newTestXorm(t, d, func(c *XormConfig) { c.CreateTables = true })
		if _, err := x.Authenticate(context.Background(), "alice", "x"); !errors.Is(err, ErrNoMatch) {
			t.Errorf("got %v, want ErrNoMatch from the created empty table", err)
		}
	})
}

// TestXormServerDown stops PostgreSQL and MariaDB under a running
// authenticator: ErrUnavailable while down, the right answers once back.
func TestXormServerDown(t *testing.T) {
	for _, d := range []*sqltest.DB{sqltest.Postgres(t).NewTestDB(t), sqltest.MariaDB(t).NewTestDB(t)} {
		t.Run(d.Type, func(t *testing.T) {
			seedUsers(t, d)
			x := newTestXorm(t, d)
			ctx := context.Background()
			if _, err := x.Authenticate(ctx, "alice", "alicepw"); err != nil {
				t.Fatal(err)
			}
			d.Server.Stop()
			restarted := false
			defer func() {
				if !restarted {
					d.Server.Start(t)
				}
			}()
			for _, pw := range []string{"alicepw", "wrong"} {
				if _, err := x.Authenticate(ctx, "alice", pw); !errors.Is(err, ErrUnavailable) {
					t.Errorf("server down, password %q: %v, want ErrUnavailable", pw, err)
				}
			}
			if x.Check(ctx) == nil {
				t.Error("Check passed with the server down")
			}
			d.Server.Start(t)
			restarted = true
			var err error
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if _, err = x.Authenticate(ctx, "alice", "alicepw"); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("after restart: %v", err)
			}
			if _, err := x.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("after restart, wrong password: %v", err)
			}
		})
	}
}

// TestXormConfig checks the section's validation.
func TestXormConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sqlconn.Config
		keys string // the keys in error, "" for valid
	}{
		{"mysql", sqlconn.Config{DatabaseType: "mysql", ConnString: "u:p@tcp(db:3306)/docker_auth"}, ""},
		{"postgres url", sqlconn.Config{DatabaseType: "postgres", ConnString: "postgres://u@db/docker_auth"}, ""},
		{"postgres keywords", sqlconn.Config{DatabaseType: "postgres", ConnString: "host=db dbname=docker_auth"}, ""},
		{"sqlite", sqlconn.Config{DatabaseType: "sqlite3", ConnString: "/data/auth.db"}, ""},
		{"no type", sqlconn.Config{ConnString: "x"}, "database_type"},
		{"mssql", sqlconn.Config{DatabaseType: "mssql", ConnString: "x"}, "database_type"},
		{"no conn", sqlconn.Config{DatabaseType: "mysql"}, "conn_string"},
		{"bad mysql dsn", sqlconn.Config{DatabaseType: "mysql", ConnString: "db:3306"}, "conn_string"},
		{"bad postgres", sqlconn.Config{DatabaseType: "postgres", ConnString: "host=db port=notaport"}, "conn_string"},
		{"negative timeout", sqlconn.Config{DatabaseType: "sqlite3", ConnString: "a.db", Timeout: -1}, "timeout"},
		{"password_file for sqlite", sqlconn.Config{DatabaseType: "sqlite3", ConnString: "a.db", PasswordFile: "/pw"}, "password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := XormConfig{tc.cfg}
			err := c.Validate()
			if (err == nil) != (tc.keys == "") || (err != nil && !strings.Contains(err.Error(), tc.keys)) {
				t.Fatalf("Validate() = %v, want an error at %q", err, tc.keys)
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error quotes conn_string: %v", err)
			}
		})
	}
}
