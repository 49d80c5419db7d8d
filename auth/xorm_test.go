package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// xormServer seeds d with docker_auth's tables (alice in team web, the
// rule "${labels:team}/*" at seq 20) and serves a configuration whose users
// and rules are all in d.
func xormServer(t *testing.T, d *sqltest.DB) *Server {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alicepw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d.CreateDockerAuthTables(t)
	d.AddUser(t, "alice", string(hash), `{"team": ["web"]}`)
	d.SetACL(t, map[int64]string{
		20: `{"match": {"name": "${labels:team}/*"}, "actions": ["pull", "push"], "comment": "own team"}`,
		10: `{"match": {"account": "admin"}, "actions": ["*"]}`,
	})
	dir := t.TempDir()
	yml := fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
cache: {ttl: 0}
xorm_auth: {database_type: %[2]s, conn_string: %[3]q, timeout: 2s}
acl_xorm: {database_type: %[2]s, conn_string: %[3]q, timeout: 2s}
`, dir, d.Type, d.Conn)
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// grantedActions returns the actions of the token's only access entry.
func grantedActions(t *testing.T, r result) []string {
	t.Helper()
	c := claimsOf(t, r.body.Token)
	if len(c.Access) != 1 {
		t.Fatalf("access = %+v", c.Access)
	}
	return c.Access[0].Actions
}

// TestXormThroughServer runs token requests against SQL users and SQL
// rules on SQLite, PostgreSQL and MariaDB: the user's labels from the
// database feed the ${labels:team} rule from the database, and hostile
// account names are 401 or 400, never 500 or 503.
func TestXormThroughServer(t *testing.T) {
	injection := []string{"' OR 1=1 --", "alice'--", "alice' OR '1'='1", "alice\x00", "\x00", strings.Repeat("a", 10<<10)}
	for _, d := range sqltest.All(t) {
		t.Run(d.Type, func(t *testing.T) {
			s := xormServer(t, d)
			for _, tc := range []struct {
				name, user, pass, scope string
				status                  int
				actions                 []string
			}{
				{"own team", "alice", "alicepw", "repository:web/app:pull,push", http.StatusOK, []string{"pull", "push"}},
				{"other team", "alice", "alicepw", "repository:db/app:pull,push", http.StatusOK, []string{}},
				{"wrong password", "alice", "nope", "repository:web/app:pull", http.StatusUnauthorized, nil},
				{"unknown user", "mallory", "alicepw", "repository:web/app:pull", http.StatusUnauthorized, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := get(s, "service=registry&scope="+url.QueryEscape(tc.scope), tc.user, tc.pass)
					if r.status != tc.status {
						t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
					}
					if tc.status == http.StatusOK {
						if got := grantedActions(t, r); !slices.Equal(got, tc.actions) {
							t.Errorf("granted %v, want %v", got, tc.actions)
						}
					}
				})
			}
			for _, name := range injection {
				r := get(s, "service=registry&scope=repository:web/app:pull", name, "alicepw")
				if r.status != http.StatusUnauthorized && r.status != http.StatusBadRequest {
					t.Errorf("account %.40q: status %d, want 401 or 400: %s", name, r.status, r.raw)
				}
			}
		})
	}
}

// TestXormServerDownThroughServer stops PostgreSQL under a running server:
// logins answer 503 (never 401) while it is down, and work again once it is
// back; /readyz follows.
func TestXormServerDownThroughServer(t *testing.T) {
	d := sqltest.Postgres(t).NewTestDB(t)
	s := xormServer(t, d)
	query := "service=registry&scope=repository:web/app:pull"
	if r := get(s, query, "alice", "alicepw"); r.status != http.StatusOK {
		t.Fatalf("before: %d %s", r.status, r.raw)
	}
	d.Server.Stop()
	restarted := false
	defer func() {
		if !restarted {
			d.Server.Start(t)
		}
	}()
	for _, pw := range []string{"alicepw", "wrong"} {
		if r := get(s, query, "alice", pw); r.status != http.StatusServiceUnavailable {
			t.Errorf("database down, password %q: status %d, want 503: %s", pw, r.status, r.raw)
		}
	}
	if code := readyz(s); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %d", code)
	}
	d.Server.Start(t)
	restarted = true
	status := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status = get(s, query, "alice", "alicepw").status; status == http.StatusOK {
			break
		}
	}
	if status != http.StatusOK {
		t.Fatalf("after the database came back: %d", status)
	}
	if code := readyz(s); code != http.StatusOK {
		t.Errorf("/readyz after recovery: %d", code)
	}
}

func readyz(s *Server) int {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code
}

// TestXormLoadFailureMetric: a rejected reload of acl_xorm is counted in
// gatehouse_acl_load_failures_total.
func TestXormLoadFailureMetric(t *testing.T) {
	d := sqltest.SQLite(t)
	s := xormServer(t, d)
	d.Exec(t, "INSERT INTO xorm_acl_entry (acl_entry, seq) VALUES (?, ?)", `{"match": {"acount": "x"}, "actions": []}`, 30)
	if err := s.state.Load().xormACL().Refresh(context.Background()); err == nil {
		t.Fatal("the invalid row was accepted")
	}
	rec := httptest.NewRecorder()
	s.Metrics().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := `gatehouse_acl_load_failures_total{acl="acl_xorm"} 1`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q", want)
	}
}
