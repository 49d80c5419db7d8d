package sqltest

import "testing"

func TestMain(m *testing.M) { Main(m) }

// TestServers starts each server, creates a database, writes and reads a
// row, and survives a stop and a start on the same port.
func TestServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *Server
	}{
		{"postgres", Postgres},
		{"mariadb", MariaDB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			_, db := srv.NewDB(t)
			if _, err := db.Exec("CREATE TABLE x (v VARCHAR(10))"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO x VALUES ('a')"); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			if err := db.Ping(); err == nil {
				t.Fatal("ping succeeded while the server is stopped")
			}
			srv.Start(t)
			var v string
			if err := db.QueryRow("SELECT v FROM x").Scan(&v); err != nil || v != "a" {
				t.Fatalf("after restart: %q, %v", v, err)
			}
		})
	}
}
