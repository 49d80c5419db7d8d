package authn

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gatehouse/gatehouse/internal/mongoconn"
	"github.com/gatehouse/gatehouse/internal/mongotest"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// mongoUsers inserts users into db.users of srv and returns the collection.
func mongoUsers(t *testing.T, srv *mongotest.Server, docs ...bson.D) *mongo.Collection {
	t.Helper()
	coll := srv.Client(t).Database("docker_auth").Collection("users")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(docs) > 0 {
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	return coll
}

// newTestMongo builds a Mongo authenticator for addr (dial_info) and closes
// it when the test ends.
func newTestMongo(t *testing.T, addr string, timeout time.Duration) *Mongo {
	t.Helper()
	m, err := NewMongo(MongoConfig{Config: mongoconn.Config{
		DialInfo:   &mongoconn.DialInfo{Addrs: []string{addr}, Database: "docker_auth", Timeout: timeout},
		Collection: "users",
	}})
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

func TestMongoAuthenticate(t *testing.T) {
	srv := mongotest.Start(t)
	mongoUsers(t, srv,
		bson.D{{Key: "username", Value: "alice"}, {Key: "password", Value: mustHash(t, "alice-pw")},
			{Key: "labels", Value: bson.D{{Key: "group", Value: bson.A{"dev", "ops"}}}}},
		bson.D{{Key: "username", Value: "bob"}, {Key: "password", Value: mustHash(t, "bob-pw")}},
		bson.D{{Key: "username", Value: `{"$ne": ""}`}, {Key: "password", Value: mustHash(t, "odd-pw")}},
		bson.D{{Key: "username", Value: "nopass"}},
		bson.D{{Key: "username", Value: "single"}, {Key: "password", Value: mustHash(t, "single-pw")},
			{Key: "labels", Value: bson.D{{Key: "team", Value: "blue"}}}},
		bson.D{{Key: "username", Value: "badlabels"}, {Key: "password", Value: mustHash(t, "bad-pw")},
			{Key: "labels", Value: bson.D{{Key: "team", Value: int32(7)}}}},
	)
	m := newTestMongo(t, srv.Addr(), 5*time.Second)
	if err := m.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}

	tests := []struct {
		name              string
		account, password string
		want              Labels
		wantErr           error
	}{
		{name: "login with labels", account: "alice", password: "alice-pw", want: Labels{"group": {"dev", "ops"}}},
		{name: "login without labels", account: "bob", password: "bob-pw", want: Labels{}},
		{name: "single label value", account: "single", password: "single-pw", want: Labels{"team": {"blue"}}},
		{name: "wrong password", account: "alice", password: "bob-pw", wantErr: ErrWrongPassword},
		{name: "empty password", account: "alice", password: "", wantErr: ErrWrongPassword},
		{name: "unknown user", account: "mallory", password: "alice-pw", wantErr: ErrNoMatch},
		{name: "user without password", account: "nopass", password: "", wantErr: ErrWrongPassword},
		{name: "anonymous is never a mongo user", account: "", password: "", wantErr: ErrNoMatch},
		{name: "operator-looking name is a name", account: `{"$ne": ""}`, password: "odd-pw", want: Labels{}},
		{name: "operator-looking name, other password", account: `{"$ne": ""}`, password: "alice-pw", wantErr: ErrWrongPassword},
		{name: "operator-looking unknown name", account: `{"$gt": ""}`, password: "alice-pw", wantErr: ErrNoMatch},
		{name: "regex-looking name", account: `/.*/`, password: "alice-pw", wantErr: ErrNoMatch},
		{name: "malformed labels are a backend failure", account: "badlabels", password: "bad-pw", wantErr: ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Authenticate(context.Background(), tc.account, tc.password)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Authenticate(%q) error = %v, want %v", tc.account, err, tc.wantErr)
			}
			if tc.wantErr == nil && (!reflect.DeepEqual(got.Labels, tc.want) || got.Name != tc.account || !strings.HasPrefix(got.Credential, "$2")) {
				t.Errorf("account = %+v, want labels %v, name %q and the stored hash as credential", got, tc.want, tc.account)
			}
		})
	}

	t.Run("lookup", func(t *testing.T) {
		for _, tc := range []struct {
			account string
			want    Labels
			wantErr error
		}{
			{"alice", Labels{"group": {"dev", "ops"}}, nil},
			{"mallory", nil, ErrNoMatch},
			{`{"$ne": ""}`, Labels{}, nil},
		} {
			got, err := m.Lookup(context.Background(), tc.account)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Lookup(%q) error = %v, want %v", tc.account, err, tc.wantErr)
			}
			if !reflect.DeepEqual(got.Labels, tc.want) || (err == nil && !strings.HasPrefix(got.Credential, "$2")) {
				t.Errorf("Lookup(%q) = %+v, want labels %v and the stored hash as credential", tc.account, got, tc.want)
			}
		}
	})
}

// TestMongoUnavailable checks that a database that does not answer is a
// backend failure within the configured timeout, never a wrong password and
// never a hang.
func TestMongoUnavailable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"nothing listens", mongotest.ClosedAddr(t)},
		{"server accepts and never answers", mongotest.Blackhole(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMongo(t, tc.addr, timeout)
			start := time.Now()
			_, err := m.Authenticate(context.Background(), "alice", "alice-pw")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error = %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > timeout+time.Second {
				t.Errorf("took %s with a %s timeout", d, timeout)
			}
			if _, err := m.Lookup(context.Background(), "alice"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Lookup error = %v, want ErrUnavailable", err)
			}
			if err := m.Check(context.Background()); err == nil {
				t.Error("Check succeeded against a database that does not answer")
			}
		})
	}
	t.Run("request deadline shorter than the timeout", func(t *testing.T) {
		m := newTestMongo(t, mongotest.Blackhole(t), time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := m.Authenticate(ctx, "alice", "alice-pw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s; the request's deadline was 200ms", d)
		}
	})
}

// TestMongoTLS logs in over TLS, trusting the server's CA with ca_file.
func TestMongoTLS(t *testing.T) {
	srv := mongotest.StartTLS(t)
	mongoUsers(t, srv, bson.D{{Key: "username", Value: "alice"}, {Key: "password", Value: mustHash(t, "alice-pw")}})
	m, err := NewMongo(MongoConfig{Config: mongoconn.Config{
		DialInfo: &mongoconn.DialInfo{Addrs: []string{srv.Addr()}, Database: "docker_auth", Timeout: 5 * time.Second,
			EnableTLS: true, CAFile: srv.TLS().CAFile},
		Collection: "users",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Authenticate(context.Background(), "alice", "alice-pw"); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
}

// TestMongoCloseTwice checks Close is idempotent and stops the index check.
func TestMongoCloseTwice(t *testing.T) {
	m, err := NewMongo(MongoConfig{Config: mongoconn.Config{URI: "mongodb://" + mongotest.ClosedAddr(t) + "/docker_auth?timeoutMS=200", Collection: "users"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = m.Close()
		_ = m.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
}

// TestMongoIndexWarning checks the startup warning about a missing index on
// username, and its absence once the index exists.
func TestMongoIndexWarning(t *testing.T) {
	srv := mongotest.Start(t)
	coll := mongoUsers(t, srv, bson.D{{Key: "username", Value: "alice"}})
	cfg := MongoConfig{Config: mongoconn.Config{
		DialInfo:   &mongoconn.DialInfo{Addrs: []string{srv.Addr()}, Database: "docker_auth", Timeout: 5 * time.Second},
		Collection: "users",
	}}
	logs := func() string {
		var buf testutil.SyncBuffer
		m, err := NewMongo(cfg, WithMongoLogger(slog.New(slog.NewTextHandler(&buf, nil))))
		if err != nil {
			t.Fatal(err)
		}
		<-m.checkDone
		_ = m.Close()
		return buf.String()
	}
	if got := logs(); !strings.Contains(got, "no index on username") {
		t.Errorf("without an index, log = %q; want the warning", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "username", Value: 1}},
		Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	if got := logs(); strings.Contains(got, "index") {
		t.Errorf("with the index, log = %q; want no warning", got)
	}
}
