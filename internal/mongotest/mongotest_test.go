package mongotest

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestRestartKeepsData checks the helper itself: data survives a stop and a
// restart on the same port, and a TLS server answers over TLS.
func TestRestartKeepsData(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *Server
	}{
		{"plain", Start},
		{"tls", StartTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			coll := srv.Client(t).Database("db").Collection("c")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "k", Value: "v"}}); err != nil {
				t.Fatal(err)
			}
			addr := srv.Addr()
			srv.Stop()
			srv.Restart()
			if srv.Addr() != addr {
				t.Fatalf("restarted on %s, want %s", srv.Addr(), addr)
			}
			var got struct{ K string }
			if err := coll.FindOne(ctx, bson.D{}).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.K != "v" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}
