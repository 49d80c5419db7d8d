package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// TestRefreshTokenEndsWithMongoPasswordChange: a refresh token of a
// mongo_auth account stops working as soon as the account's password hash
// changes in the database, with no reload, while the unchanged account's
// token keeps working.
func TestRefreshTokenEndsWithMongoPasswordChange(t *testing.T) {
	srv := mongotest.Start(t)
	users := srv.Client(t).Database("docker_auth").Collection("users")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	for _, u := range []string{"amy", "ben"} {
		if _, err := users.InsertOne(ctx, bson.D{{Key: "username", Value: u}, {Key: "password", Value: hash(u + "-pw")}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := serverFromYAML(t, dir, fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
mongo_auth: {dial_info: {addrs: [%[2]q], timeout: 5s, database: docker_auth}, collection: users}
acl: [{match: {account: "/.+/"}, actions: [pull]}]
`, dir, srv.Addr()))

	refresh := map[string]string{}
	for _, u := range []string{"amy", "ben"} {
		r := get(s, "service=registry&offline_token=true", u, u+"-pw")
		if r.status != 200 || r.body.RefreshToken == "" {
			t.Fatalf("login %s: %d %s", u, r.status, r.raw)
		}
		refresh[u] = r.body.RefreshToken
	}
	redeem := func(u string) int {
		return post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "t", "refresh_token", refresh[u])).status
	}
	if a, b := redeem("amy"), redeem("ben"); a != 200 || b != 200 {
		t.Fatalf("before the change: amy %d, ben %d", a, b)
	}
	if _, err := users.UpdateOne(ctx, bson.D{{Key: "username", Value: "amy"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "password", Value: hash("amy-new-pw")}}}}); err != nil {
		t.Fatal(err)
	}
	if a, b := redeem("amy"), redeem("ben"); a != 401 || b != 200 {
		t.Fatalf("after amy's password changed: amy %d (want 401), ben %d (want 200)", a, b)
	}
}
