package acl

import (
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gatehouse/gatehouse/internal/faultproxy"
	"github.com/gatehouse/gatehouse/internal/mongoconn"
	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// TestMongoWithPrevious builds acl_mongo again, as a configuration reload
// does, while the database cannot be reached: reading the same collection
// it starts from the previous one's ACL, reading another it has none
// (ErrNotLoaded, a 503), and the first load that succeeds replaces the
// inherited ACL.
func TestMongoWithPrevious(t *testing.T) {
	srv := mongotest.Start(t)
	coll := aclColl(t, srv)
	insert(t, coll, aclDoc(1, bson.D{}, bson.A{"pull"}, "all pull"))
	proxy := faultproxy.Start(t, srv.Addr())
	build := func(collection string, opts ...MongoOption) *Mongo {
		t.Helper()
		m, err := NewMongo(MongoConfig{
			Config: mongoconn.Config{
				DialInfo:   &mongoconn.DialInfo{Addrs: []string{proxy.Addr()}, Database: "docker_auth", Timeout: 300 * time.Millisecond},
				Collection: collection,
			},
			CacheTTL: time.Hour,
		}, append(opts, WithClock(newFakeClock()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	prev := build("acl")
	if prev.Len() != 1 {
		t.Fatalf("the first acl_mongo loaded %d rules, want 1", prev.Len())
	}

	proxy.Drop()
	same := build("acl", WithPrevious(prev))
	if d := decide(t, same, "alice", "x/y", nil); d.Comment != "all pull" {
		t.Errorf("same collection, database unreachable: decision %+v, want the previous ACL's", d)
	}
	if got, want := same.LoadedAt(), prev.LoadedAt(); !got.Equal(want) {
		t.Errorf("LoadedAt() = %s, want the previous load's %s", got, want)
	}
	other := build("acl2", WithPrevious(prev))
	if _, err := other.Decide(&Request{Account: "alice", Type: "repository", Name: "x/y"}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("another collection: Decide error %v, want ErrNotLoaded", err)
	}
	if none := build("acl", WithPrevious(nil)); none.Len() != 0 {
		t.Errorf("WithPrevious(nil): %d rules, want none", none.Len())
	}

	proxy.Pass()
	if _, err := coll.UpdateOne(ctx10(t), bson.D{{Key: "seq", Value: 1}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "comment", Value: "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := same.Refresh(ctx10(t)); err != nil; err = same.Refresh(ctx10(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("Refresh after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := decide(t, same, "alice", "x/y", nil); d.Comment != "changed" {
		t.Errorf("after a successful load: decision %+v, want the collection's current rule", d)
	}
}
