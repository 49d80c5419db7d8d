package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// TestMongoReloadReplacesClients reloads from one MongoDB to another: the
// new configuration's clients answer at once, and retiring the old state
// disconnects its clients (no process-global client survives a reload, as
// docker_auth's did).
func TestMongoReloadReplacesClients(t *testing.T) {
	dir := t.TempDir()
	parse := func(srv *mongotest.Server, user string) *config.Config {
		t.Helper()
		hash, err := bcrypt.GenerateFromPassword([]byte(user+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db := srv.Client(t).Database("docker_auth")
		if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "username", Value: user}, {Key: "password", Value: string(hash)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection("acl").InsertOne(ctx, bson.D{{Key: "seq", Value: 1}, {Key: "match", Value: bson.D{}},
			{Key: "actions", Value: bson.A{"pull"}}, {Key: "comment", Value: user + "'s database"}}); err != nil {
			t.Fatal(err)
		}
		yml := fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
cache: {ttl: 0}
mongo_auth: {dial_info: {addrs: [%[2]q], timeout: 1s, database: docker_auth}, collection: users}
acl_mongo: {dial_info: {addrs: [%[2]q], timeout: 1s, database: docker_auth}, collection: acl}
`, dir, srv.Addr())
		cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfgA, cfgB := parse(mongotest.Start(t), "amy"), parse(mongotest.Start(t), "ben")
	s, err := New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	status := func(user string) int {
		return get(s, "service=registry&scope=repository:x/y:pull", user, user+"-pw").status
	}
	if a, b := status("amy"), status("ben"); a != http.StatusOK || b != http.StatusUnauthorized {
		t.Fatalf("before reload: amy %d, ben %d; want 200, 401", a, b)
	}
	old := s.state.Load()
	if err := s.Reload(cfgB); err != nil {
		t.Fatal(err)
	}
	if a, b := status("amy"), status("ben"); a != http.StatusUnauthorized || b != http.StatusOK {
		t.Fatalf("after reload: amy %d, ben %d; want 401, 200", a, b)
	}
	old.close() // what the retire timer does after retireDelay
	var m *authn.Mongo
	for _, b := range old.backends {
		if mb, ok := b.(*authn.Mongo); ok {
			m = mb
		}
	}
	if m == nil {
		t.Fatal("the old state has no MongoDB authenticator")
	}
	if _, err := m.Authenticate(context.Background(), "amy", "amy-pw"); !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("the retired authenticator still answers (err %v): its client was not disconnected", err)
	}
	if err := old.mongoACL().Refresh(context.Background()); err == nil {
		t.Error("the retired acl_mongo still loads: its client was not disconnected")
	}
	if status("ben") != http.StatusOK {
		t.Error("retiring the old state broke the new one")
	}
}
