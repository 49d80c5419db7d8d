package registryv3

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// TestMongoUserAndACLPushPull pushes and pulls through registry v3.1.2 as a
// user kept in MongoDB (FerretDB embedded) whose rights come only from a
// rule kept in MongoDB: erin's label team=green matches acl_mongo's seq 10
// on green/*, and seq 20 keeps everybody else out of green/*.
func TestMongoUserAndACLPushPull(t *testing.T) {
	srv := mongotest.Start(t)
	db := srv.Client(t).Database("registry_auth")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	erin := harness.Cred{User: "erin", Password: "erin-pw"}
	hash, err := bcrypt.GenerateFromPassword([]byte(erin.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{
		{Key: "username", Value: erin.User},
		{Key: "password", Value: string(hash)},
		{Key: "labels", Value: bson.D{{Key: "team", Value: bson.A{"green"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("acl").InsertMany(ctx, []any{
		bson.D{{Key: "seq", Value: 20}, {Key: "match", Value: bson.D{{Key: "name", Value: "green/*"}}},
			{Key: "actions", Value: bson.A{}}, {Key: "comment", Value: "nobody else in green/*"}},
		bson.D{{Key: "seq", Value: 10}, {Key: "match", Value: bson.D{{Key: "labels", Value: bson.D{{Key: "team", Value: "green"}}}, {Key: "name", Value: "green/*"}}},
			{Key: "actions", Value: bson.A{"*"}}, {Key: "comment", Value: "team green owns green/*"}},
	}); err != nil {
		t.Fatal(err)
	}
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		ExtraSections: fmt.Sprintf(`mongo_auth:
  dial_info: {addrs: [%[1]q], timeout: 5s, database: registry_auth}
  collection: users
acl_mongo:
  uri: "mongodb://%[1]s/registry_auth?timeoutMS=5000"
  collection: acl
  cache_ttl: 1m
`, srv.Addr()),
	})

	d := e.MustPush(t, erin, "green/app")
	e.MustPullDigest(t, erin, "green/app", d)

	_, err = e.Pull(t, harness.Bob, "green/app")
	e.RequireDeniedByRegistry(t, err, "static user bob pulling green/app (acl_mongo seq 20)")
	_, err = e.Push(t, erin, "blue/app")
	e.RequireDeniedByRegistry(t, err, "erin pushing blue/app (no rule)")
	_, err = e.Pull(t, harness.Cred{User: erin.User, Password: "not-" + erin.Password}, "green/app")
	e.RequireRejectedByGatehouse(t, err, "erin with a wrong password")
}
