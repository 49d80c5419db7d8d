package sqlconn

import (
	"testing"
	"time"
)

func TestSQLiteDSN(t *testing.T) {
	for _, tc := range []struct {
		name, conn string
		create     bool
		want       string
	}{
		{"path read-only", "/data/auth.db", false, "file:/data/auth.db?mode=ro&_pragma=busy_timeout(5000)"},
		{"path created", "auth.db", true, "file:auth.db?mode=rwc&_pragma=busy_timeout(5000)"},
		{"uri characters escaped", "/d/a?b#c%.db", false, "file:/d/a%3fb%23c%25.db?mode=ro&_pragma=busy_timeout(5000)"},
		{"file uri kept", "file:auth.db?cache=shared", false, "file:auth.db?cache=shared&_pragma=busy_timeout(5000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqliteDSN(tc.conn, tc.create, 5*time.Second); got != tc.want {
				t.Errorf("sqliteDSN(%q) = %q, want %q", tc.conn, got, tc.want)
			}
		})
	}
}

func TestRebind(t *testing.T) {
	q := "SELECT a FROM t WHERE b = ? AND c = ?"
	for _, tc := range []struct{ typ, want string }{
		{Postgres, "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{MySQL, q},
		{SQLite, q},
	} {
		if got := (&DB{Type: tc.typ}).Rebind(q); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.typ, got, tc.want)
		}
	}
}
