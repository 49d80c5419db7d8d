package acl

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gatehouse/gatehouse/internal/mongoconn"
	"github.com/gatehouse/gatehouse/internal/mongotest"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// fakeClock drives the reload loop: After returns channels that fire when
// Advance moves the time past them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance waits until the loop waits on the clock, then moves time by d.
func (c *fakeClock) Advance(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.waiters) == 0 {
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the reload loop never waited on the clock")
		}
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func aclColl(t *testing.T, srv *mongotest.Server) *mongo.Collection {
	t.Helper()
	return srv.Client(t).Database("docker_auth").Collection("acl")
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func insert(t *testing.T, coll *mongo.Collection, docs ...bson.D) {
	t.Helper()
	if _, err := coll.InsertMany(ctx10(t), docs); err != nil {
		t.Fatal(err)
	}
}

// aclDoc makes an acl_mongo document.
func aclDoc(seq any, match bson.D, actions bson.A, comment string) bson.D {
	return bson.D{{Key: "seq", Value: seq}, {Key: "match", Value: match}, {Key: "actions", Value: actions}, {Key: "comment", Value: comment}}
}

func newTestMongoACL(t *testing.T, addr string, opts ...MongoOption) *Mongo {
	t.Helper()
	m, err := NewMongo(MongoConfig{
		Config: mongoconn.Config{
			DialInfo:   &mongoconn.DialInfo{Addrs: []string{addr}, Database: "docker_auth", Timeout: 2 * time.Second},
			Collection: "acl",
		},
		CacheTTL: time.Minute,
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

func decide(t *testing.T, m *Mongo, account, name string, labels map[string][]string) MongoDecision {
	t.Helper()
	d, err := m.Decide(&Request{Account: account, Type: "repository", Name: name, Service: "registry",
		Labels: labels, Actions: []string{"pull", "push"}})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

// TestMongoOrderAndLabels loads documents inserted out of order and checks
// that seq, not insertion order, decides, and that labels are matched.
func TestMongoOrderAndLabels(t *testing.T) {
	srv := mongotest.Start(t)
	insert(t, aclColl(t, srv),
		aclDoc(int32(30), bson.D{{Key: "account", Value: "alice"}}, bson.A{}, "alice: nothing else"),
		aclDoc(int64(10), bson.D{{Key: "account", Value: "alice"}, {Key: "name", Value: "alice/*"}}, bson.A{"*"}, "alice owns alice/*"),
		aclDoc(float64(20), bson.D{{Key: "labels", Value: bson.D{{Key: "group", Value: "ops"}}}, {Key: "name", Value: "shared/*"}}, bson.A{"pull"}, "ops pull shared/*"),
		aclDoc(int32(40), bson.D{{Key: "account", Value: "/.+/"}, {Key: "name", Value: "${labels:team}/*"}}, bson.A{"pull", "push"}, "team repos"),
	)
	m := newTestMongoACL(t, srv.Addr())
	if m.Len() != 4 {
		t.Fatalf("Len() = %d, want 4", m.Len())
	}
	tests := []struct {
		name, account, repo string
		labels              map[string][]string
		matched             bool
		seq                 int64
		actions             []string
	}{
		{"seq 10 before seq 30", "alice", "alice/app", nil, true, 10, []string{"pull", "push"}},
		{"seq 20 by label before seq 30", "alice", "shared/x", map[string][]string{"group": {"dev", "ops"}}, true, 20, []string{"pull"}},
		{"seq 30 denies the rest", "alice", "shared/x", nil, true, 30, []string{}},
		{"label placeholder", "bob", "blue/app", map[string][]string{"team": {"red", "blue"}}, true, 40, []string{"pull", "push"}},
		{"label of another team", "bob", "green/app", map[string][]string{"team": {"red", "blue"}}, false, 0, []string{}},
		{"no rule", "bob", "alice/app", nil, false, 0, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(t, m, tc.account, tc.repo, tc.labels)
			if d.Matched != tc.matched || (tc.matched && d.Seq != tc.seq) || !slices.Equal(d.Actions, tc.actions) {
				t.Errorf("decision = %+v, want matched %v seq %d actions %v", d, tc.matched, tc.seq, tc.actions)
			}
		})
	}
}

// TestMongoReloadAfterTTL checks a change is invisible until cache_ttl has
// passed on the loop's clock, and visible after.
func TestMongoReloadAfterTTL(t *testing.T) {
	srv := mongotest.Start(t)
	coll := aclColl(t, srv)
	insert(t, coll, aclDoc(10, bson.D{{Key: "account", Value: "alice"}}, bson.A{"pull"}, "before"))
	clock := newFakeClock()
	m := newTestMongoACL(t, srv.Addr(), WithClock(clock))
	if d := decide(t, m, "alice", "x/y", nil); d.Comment != "before" {
		t.Fatalf("initial decision %+v", d)
	}
	if _, err := coll.UpdateOne(ctx10(t), bson.D{{Key: "seq", Value: 10}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "actions", Value: bson.A{"pull", "push"}}, {Key: "comment", Value: "after"}}}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(t, time.Minute-time.Second)
	if d := decide(t, m, "alice", "x/y", nil); d.Comment != "before" {
		t.Fatalf("before cache_ttl the change is already in force: %+v", d)
	}
	clock.Advance(t, time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for decide(t, m, "alice", "x/y", nil).Comment != "after" {
		if time.Now().After(deadline) {
			t.Fatal("the change never took effect after cache_ttl")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := decide(t, m, "alice", "x/y", nil); !slices.Equal(d.Actions, []string{"pull", "push"}) {
		t.Errorf("after reload %+v", d)
	}
}

// TestMongoInvalidDocumentKeepsACL adds one bad document at a time to a
// good collection: each load is rejected with a message naming the
// document, logged, and the previous ACL keeps deciding.
func TestMongoInvalidDocumentKeepsACL(t *testing.T) {
	srv := mongotest.Start(t)
	coll := aclColl(t, srv)
	insert(t, coll, aclDoc(10, bson.D{{Key: "account", Value: "alice"}}, bson.A{"pull"}, "good"))
	var log testutil.SyncBuffer
	m := newTestMongoACL(t, srv.Addr(), WithMongoLogger(slog.New(slog.NewTextHandler(&log, nil))))

	tests := []struct {
		name string
		doc  bson.D
		want []string // substrings of the error
	}{
		{"misspelt match key", aclDoc(20, bson.D{{Key: "acount", Value: "bob"}}, bson.A{"*"}, ""), []string{"seq 20", `"match.acount"`}},
		{"null match value", aclDoc(20, bson.D{{Key: "account", Value: nil}}, bson.A{"*"}, ""), []string{"seq 20", "match.account is null"}},
		{"unknown top-level field", append(aclDoc(20, bson.D{}, bson.A{}, ""), bson.E{Key: "priority", Value: 1}), []string{"seq 20", `"priority"`}},
		{"missing seq", bson.D{{Key: "match", Value: bson.D{}}, {Key: "actions", Value: bson.A{"*"}}}, []string{"_id", "seq is required"}},
		{"fractional seq", aclDoc(1.5, bson.D{}, bson.A{}, ""), []string{"seq must be an integer"}},
		{"duplicate seq", aclDoc(10, bson.D{{Key: "account", Value: "bob"}}, bson.A{"pull"}, ""), []string{"seq 10", "unique"}},
		{"invalid regex", aclDoc(20, bson.D{{Key: "name", Value: "/(/"}}, bson.A{"pull"}, ""), []string{"seq 20", "match.name"}},
		{"invalid ip", aclDoc(20, bson.D{{Key: "ip", Value: "10.0.0.0/33"}}, bson.A{"pull"}, ""), []string{"seq 20", "match.ip"}},
		{"missing actions", bson.D{{Key: "seq", Value: 20}, {Key: "match", Value: bson.D{}}}, []string{"seq 20", "actions"}},
		{"null actions", aclDoc(20, bson.D{}, nil, ""), []string{"seq 20", "actions is null"}},
		{"actions of the wrong type", bson.D{{Key: "seq", Value: 20}, {Key: "match", Value: bson.D{}}, {Key: "actions", Value: "pull"}}, []string{"seq 20", "decode"}},
		{"match of the wrong type", bson.D{{Key: "seq", Value: 20}, {Key: "match", Value: "all"}, {Key: "actions", Value: bson.A{}}}, []string{"seq 20", "decode"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := coll.InsertOne(ctx10(t), tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if _, err := coll.DeleteOne(context.Background(), bson.D{{Key: "_id", Value: res.InsertedID}}); err != nil {
					t.Fatal(err)
				}
				if err := m.Refresh(context.Background()); err != nil {
					t.Fatalf("the good collection no longer loads: %v", err)
				}
			})
			err = m.Refresh(context.Background())
			if err == nil {
				t.Fatal("Refresh accepted the invalid document")
			}
			t.Logf("rejected: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			m.reload(context.Background()) // the loop's path: logs
			if !strings.Contains(log.String(), "stays in force") {
				t.Errorf("no log line for the rejected reload: %s", log.String())
			}
			if d := decide(t, m, "alice", "x/y", nil); d.Comment != "good" || !slices.Equal(d.Actions, []string{"pull"}) {
				t.Errorf("previous ACL not in force: %+v", d)
			}
			if d := decide(t, m, "bob", "x/y", nil); d.Matched {
				t.Errorf("rejected document decides: %+v", d)
			}
		})
	}
}

// TestMongoLoadedLater starts with the database down: Decide answers
// ErrNotLoaded (the caller's 503) until the loop's retry finds it up.
func TestMongoLoadedLater(t *testing.T) {
	addr := mongotest.ClosedAddr(t)
	clock := newFakeClock()
	var log testutil.SyncBuffer
	m, err := NewMongo(MongoConfig{
		Config: mongoconn.Config{
			DialInfo:   &mongoconn.DialInfo{Addrs: []string{addr}, Database: "docker_auth", Timeout: 300 * time.Millisecond},
			Collection: "acl",
		},
		CacheTTL: time.Hour,
	}, WithClock(clock), WithMongoLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Decide(&Request{Account: "alice"}); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Decide before any load: %v, want ErrNotLoaded", err)
	}
	if !strings.Contains(log.String(), "load failed") {
		t.Errorf("the failed first load is not logged: %s", log.String())
	}
	srv := mongotest.StartAt(t, addr)
	insert(t, aclColl(t, srv), aclDoc(1, bson.D{}, bson.A{"pull"}, "all pull"))
	clock.Advance(t, loadRetry) // not cache_ttl: retries are sooner
	deadline := time.Now().Add(10 * time.Second)
	for m.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("never loaded after the database came up; log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := decide(t, m, "alice", "x/y", nil); d.Comment != "all pull" {
		t.Errorf("decision %+v", d)
	}
}

// TestMongoCloseStopsLoop checks Close returns promptly while the loop
// waits, and twice.
func TestMongoCloseStopsLoop(t *testing.T) {
	srv := mongotest.Start(t)
	m := newTestMongoACL(t, srv.Addr(), WithClock(newFakeClock()))
	done := make(chan error, 1)
	go func() { done <- errors.Join(m.Close(), m.Close()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	select {
	case <-m.done:
	default:
		t.Fatal("the reload loop still runs after Close")
	}
}

func TestMongoConfigValidate(t *testing.T) {
	base := mongoconn.Config{URI: "mongodb://h/db", Collection: "acl"}
	tests := []struct {
		name string
		ttl  time.Duration
		want string // "" for valid
	}{
		{"default", 0, ""},
		{"one minute", time.Minute, ""},
		{"negative", -time.Second, "cache_ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := (&MongoConfig{Config: base, CacheTTL: tc.ttl}).Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want a problem at %q", err, tc.want)
			}
		})
	}
}
