package authn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/mongotest"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// mongoServerConfig is an auth_config.yml with a static user "svc" and the
// static rule for admin, mongo_auth and acl_mongo on addr, one-second
// timeouts and a 100ms cache_ttl.
func mongoServerConfig(t *testing.T, addr, dir string) string {
	t.Helper()
	return fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: mongo-test
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
users:
  svc: {password: %[2]q}
mongo_auth:
  dial_info:
    addrs: [%[3]q]
    timeout: 1s
    database: docker_auth
  collection: users
acl_mongo:
  dial_info:
    addrs: [%[3]q]
    timeout: 1s
    database: docker_auth
  collection: acl
  cache_ttl: 100ms
acl:
  - match: {account: svc, name: static/*}
    actions: [pull]
    comment: the static acl comes first
`, dir, bcryptHash(t, "svc-pw"), addr)
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// seedMongo fills docker_auth.users and docker_auth.acl; the ACL documents
// are inserted out of seq order.
func seedMongo(t *testing.T, srv *mongotest.Server) (users, rules *mongo.Collection) {
	t.Helper()
	db := srv.Client(t).Database("docker_auth")
	users, rules = db.Collection("users"), db.Collection("acl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user := func(name, pw string, labels bson.D) bson.D {
		return bson.D{{Key: "username", Value: name}, {Key: "password", Value: bcryptHash(t, pw)}, {Key: "labels", Value: labels}}
	}
	if _, err := users.InsertMany(ctx, []any{
		user("alice", "alice-pw", bson.D{{Key: "team", Value: bson.A{"blue"}}}),
		user("bob", "bob-pw", bson.D{}),
		user("dave", "dave-pw", bson.D{}),
	}); err != nil {
		t.Fatal(err)
	}
	rule := func(seq int, match bson.D, actions bson.A, comment string) bson.D {
		return bson.D{{Key: "seq", Value: seq}, {Key: "match", Value: match}, {Key: "actions", Value: actions}, {Key: "comment", Value: comment}}
	}
	if _, err := rules.InsertMany(ctx, []any{
		rule(30, bson.D{{Key: "account", Value: "/.+/"}, {Key: "name", Value: "${account}/*"}}, bson.A{"*"}, "own namespace"),
		rule(10, bson.D{{Key: "labels", Value: bson.D{{Key: "team", Value: "blue"}}}, {Key: "name", Value: "blue/*"}}, bson.A{"pull"}, "team blue pulls blue/*"),
		rule(20, bson.D{{Key: "name", Value: "blue/*"}}, bson.A{}, "nobody else touches blue/*"),
	}); err != nil {
		t.Fatal(err)
	}
	return users, rules
}

// TestMongoThroughServer runs mongo_auth and acl_mongo through
// config.Parse, auth.New and the HTTP handler against FerretDB: logins,
// refusals, labels and seq order in the ACL, an ACL change after cache_ttl,
// an invalid document that leaves the ACL as it was, and the database
// stopped (503 errcode within the timeout; the last good ACL still decides)
// and restarted (recovery without a new server).
func TestMongoThroughServer(t *testing.T) {
	srv := mongotest.Start(t)
	_, rules := seedMongo(t, srv)
	dir := t.TempDir()
	file := filepath.Join(dir, "auth_config.yml")
	cfg, err := config.Parse(file, []byte(mongoServerConfig(t, srv.Addr(), dir)))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	var log testutil.SyncBuffer
	s, err := auth.New(cfg, auth.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	scopes := []string{"repository:blue/app:pull,push", "repository:alice/app:pull,push", "repository:static/app:pull", "repository:svc/app:pull"}
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return c
	}
	// eventually retries until the grants of user are want (the ACL reloads
	// every 100ms).
	eventually := func(t *testing.T, user, pw string, want map[string][]string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, body, grants := tokenGrants(t, s, user, pw, scopes...)
			if status == http.StatusOK && reflect.DeepEqual(grants, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d grants %v, want 200 %v: %s\n--- log ---\n%s", user, status, grants, want, body, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type step struct {
		name           string
		before         func(t *testing.T)
		user, password string
		status         int
		grants         map[string][]string
		code           string
	}
	nothing := func(*testing.T) {}
	stopped := time.Time{}
	for _, st := range []step{
		{"label rule seq 10 before deny seq 20", nothing, "alice", "alice-pw", 200,
			map[string][]string{"blue/app": {"pull"}, "alice/app": {"pull", "push"}}, ""},
		{"no label: deny seq 20", nothing, "bob", "bob-pw", 200, map[string][]string{}, ""},
		{"static user, static acl first, then acl_mongo", nothing, "svc", "svc-pw", 200,
			map[string][]string{"static/app": {"pull"}, "svc/app": {"pull"}}, ""},
		{"wrong password", nothing, "alice", "bob-pw", 401, nil, "UNAUTHORIZED"},
		{"unknown user", nothing, "mallory", "alice-pw", 401, nil, "UNAUTHORIZED"},
		{"operator-looking account is a name", nothing, `{"$ne": ""}`, "alice-pw", 401, nil, "UNAUTHORIZED"},
		{"ACL change visible after cache_ttl", func(t *testing.T) {
			if _, err := rules.UpdateOne(ctx(), bson.D{{Key: "seq", Value: 10}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "actions", Value: bson.A{"pull", "push"}}}}}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "alice", "alice-pw", map[string][]string{"blue/app": {"pull", "push"}, "alice/app": {"pull", "push"}})
		}, "alice", "alice-pw", 200, map[string][]string{"blue/app": {"pull", "push"}, "alice/app": {"pull", "push"}}, ""},
		{"invalid document keeps the previous ACL", func(t *testing.T) {
			res, err := rules.InsertOne(ctx(), bson.D{{Key: "seq", Value: 5}, {Key: "match", Value: bson.D{{Key: "acount", Value: "bob"}}}, {Key: "actions", Value: bson.A{"*"}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = rules.DeleteOne(context.Background(), bson.D{{Key: "_id", Value: res.InsertedID}}) })
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(log.String(), `acl document seq 5`) {
				if time.Now().After(deadline) {
					t.Fatalf("the rejected document is not named in the log:\n%s", log.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}, "bob", "bob-pw", 200, map[string][]string{}, ""},
		{"database stopped: 503", func(t *testing.T) {
			srv.Stop()
			stopped = time.Now()
			if code, body := ready(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, "mongo") {
				t.Errorf("/readyz with the database stopped: %d %s, want 503 naming mongo", code, body)
			}
		}, "dave", "dave-pw", 503, nil, "UNAVAILABLE"},
		{"database stopped: last good ACL still decides for a static user", nothing, "svc", "svc-pw", 200,
			map[string][]string{"static/app": {"pull"}, "svc/app": {"pull"}}, ""},
		{"database restarted: recovery", func(t *testing.T) {
			srv.Restart()
			eventually(t, "dave", "dave-pw", map[string][]string{})
			if code, body := ready(t, s); code != http.StatusOK {
				t.Errorf("/readyz after the restart: %d %s", code, body)
			}
		}, "dave", "dave-pw", 200, map[string][]string{}, ""},
	} {
		t.Run(st.name, func(t *testing.T) {
			st.before(t)
			start := time.Now()
			status, body, grants := tokenGrants(t, s, st.user, st.password, scopes...)
			if status != st.status {
				t.Fatalf("status %d, want %d: %s\n--- log ---\n%s", status, st.status, body, log.String())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("answered in %s, want about the 1s timeout at most", d)
			}
			if status == http.StatusOK {
				if !reflect.DeepEqual(grants, st.grants) {
					t.Errorf("grants %v, want %v", grants, st.grants)
				}
				return
			}
			checkErrcode(t, body, st.code)
		})
	}
	if stopped.IsZero() {
		t.Fatal("the stop step did not run")
	}
	if l := log.String(); !strings.Contains(l, "mongo: find user") {
		t.Errorf("the log does not give the reason of the 503:\n%s", l)
	}
}

// TestMongoACLNotLoaded builds a server while the database is down: a
// scope the static acl does not decide is a 503 (not a silent deny), one it
// decides is served.
func TestMongoACLNotLoaded(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(mongoServerConfig(t, mongotest.ClosedAddr(t), dir)))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	s, err := auth.New(cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	status, body, _ := tokenGrants(t, s, "svc", "svc-pw", "repository:svc/app:pull")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", status, body)
	}
	checkErrcode(t, body, "UNAVAILABLE")
	status, body, grants := tokenGrants(t, s, "svc", "svc-pw", "repository:static/app:pull")
	if status != http.StatusOK || !reflect.DeepEqual(grants, map[string][]string{"static/app": {"pull"}}) {
		t.Fatalf("static scope: status %d grants %v: %s", status, grants, body)
	}
}

// TestMongoConfigSections checks what config.Parse accepts around the two
// sections: mongo_auth as the only authenticator, acl_mongo without a
// static acl, and an empty section refused.
func TestMongoConfigSections(t *testing.T) {
	head := "server: {addr: \":0\"}\ntoken: {issuer: x, expiration: 600, certificate: c.pem, key: k.pem}\n"
	mongoAuth := "mongo_auth: {dial_info: {addrs: [localhost], database: d}, collection: users}\n"
	aclMongo := "acl_mongo: {uri: \"mongodb://localhost/d\", collection: acl, cache_ttl: 1m}\n"
	tests := []struct {
		name, yml string
		want      string // "" when valid
	}{
		{"mongo_auth alone, acl_mongo without acl", mongoAuth + aclMongo, ""},
		{"mongo_auth with a static acl", mongoAuth + "acl: []\n", ""},
		{"no acl at all", mongoAuth, "acl: section is required"},
		{"empty mongo_auth", "mongo_auth:\nacl: []\n", "mongo_auth: section is empty"},
		{"empty acl_mongo", mongoAuth + "acl_mongo:\n", "acl_mongo: section is empty"},
		{"dial_info and uri", "mongo_auth: {dial_info: {addrs: [h], database: d}, uri: \"mongodb://h/d\", collection: u}\nacl: []\n", "mongo_auth.uri: set dial_info or uri, not both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("auth_config.yml", []byte(head+tc.yml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// ready asks /readyz.
func ready(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return w.Code, w.Body.String()
}

// TestMongoConfigFiles checks that the files the sections name are watched
// for reloads.
func TestMongoConfigFiles(t *testing.T) {
	yml := `server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: c.pem, key: k.pem}
mongo_auth:
  dial_info: {addrs: [h], database: d, username: u, password_file: /run/mongo-pw, enable_tls: true, ca_file: /etc/mongo-ca.pem}
  collection: users
acl_mongo:
  uri: "mongodb://u@h/d"
  password_file: /run/acl-pw
  collection: acl
`
	cfg, err := config.Parse("auth_config.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	files := cfg.Files()
	for _, want := range []string{"/run/mongo-pw", "/etc/mongo-ca.pem", "/run/acl-pw"} {
		if !slices.Contains(files, want) {
			t.Errorf("Files() = %v, lacks %s", files, want)
		}
	}
}

// checkErrcode fails unless body is an errcode list with one error of code
// that reveals nothing internal.
func checkErrcode(t *testing.T, body, code string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != code {
		t.Fatalf("body %s, want an errcode body with code %s", body, code)
	}
	if strings.Contains(strings.ToLower(body), "mongo") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("body %s reveals internal detail", body)
	}
}

// TestMongoConfigErrorLines shows mongo_auth and acl_mongo problems
// reported with the file's line and key.
func TestMongoConfigErrorLines(t *testing.T) {
	yml := `server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: c.pem, key: k.pem}
mongo_auth:
  dial_info:
    addrs: []
    timeout: 10
    database: docker_auth
  colection: users
acl_mongo:
  uri: "http://mongo/db"
  collection: acl
  cache_ttl: -1m
`
	_, err := config.Parse("auth_config.yml", []byte(yml))
	if err == nil {
		t.Fatal("config.Parse accepted invalid mongo sections")
	}
	for _, want := range []string{
		"auth_config.yml:5: mongo_auth.dial_info.addrs: at least one address is required",
		"auth_config.yml:6: mongo_auth.dial_info.timeout:",
		"auth_config.yml:8: mongo_auth.colection: unknown key",
		"auth_config.yml:10: acl_mongo.uri: not a valid connection string",
		"auth_config.yml:12: acl_mongo.cache_ttl: must be positive",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%s", want, err)
		}
	}
}
