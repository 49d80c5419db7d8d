package acl

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/sqlconn"
	"github.com/gatehouse/gatehouse/internal/sqltest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// newTestXormACL opens acl_xorm on d, closed when t ends.
func newTestXormACL(t *testing.T, d *sqltest.DB, opts ...XormOption) *Xorm {
	t.Helper()
	x, err := NewXorm(XormConfig{Config: sqlconn.Config{DatabaseType: d.Type, ConnString: d.Conn, Timeout: 2 * time.Second}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

func decideXorm(t *testing.T, x *Xorm, account, name string, labels map[string][]string) SeqDecision {
	t.Helper()
	d, err := x.Decide(&Request{Account: account, Type: "repository", Name: name, Labels: labels, Actions: []string{"pull", "push"}})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

// TestXormDecide loads rows inserted out of order on SQLite, PostgreSQL and
// MariaDB: they are evaluated by seq, first match wins, labels feed
// ${labels:…} placeholders, and the keys docker_auth's xorm wrote
// capitalized are read.
func TestXormDecide(t *testing.T) {
	for _, d := range sqltest.All(t) {
		t.Run(d.Type, func(t *testing.T) {
			d.CreateDockerAuthTables(t)
			d.SetACL(t, map[int64]string{
				30: `{"match": {}, "actions": [], "comment": "deny the rest"}`,
				10: `{"match": {"account": "admin"}, "actions": ["*"], "comment": "admin"}`,
				20: `{"Match": {"name": "${labels:team}/*"}, "Actions": ["pull", "push"], "Comment": "team"}`,
				15: `{"match": {"account": "bob"}, "actions": ["pull"], "comment": "bob reads"}`,
			})
			x := newTestXormACL(t, d)
			for _, tc := range []struct {
				name, account, repo string
				labels              map[string][]string
				seq                 int64
				actions             []string
			}{
				{"first rule", "admin", "any/thing", nil, 10, []string{"pull", "push"}},
				{"label placeholder", "alice", "web/app", map[string][]string{"team": {"infra", "web"}}, 20, []string{"pull", "push"}},
				{"label of another team", "alice", "db/app", map[string][]string{"team": {"web"}}, 30, []string{}},
				{"seq 15 before seq 20", "bob", "web/app", map[string][]string{"team": {"web"}}, 15, []string{"pull"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := decideXorm(t, x, tc.account, tc.repo, tc.labels)
					if !got.Matched || got.Seq != tc.seq || !slices.Equal(got.Actions, tc.actions) {
						t.Errorf("decision = %+v, want seq %d actions %v", got, tc.seq, tc.actions)
					}
				})
			}
		})
	}
}

// TestXormReloadAfterTTL: a change is invisible until cache_ttl has passed
// on the loop's clock, and in force after.
func TestXormReloadAfterTTL(t *testing.T) {
	d := sqltest.SQLite(t)
	d.CreateDockerAuthTables(t)
	d.SetACL(t, map[int64]string{10: `{"match": {"account": "alice"}, "actions": ["pull"], "comment": "before"}`})
	clock := newFakeClock()
	x := newTestXormACL(t, d, WithXormClock(clock))
	if got := decideXorm(t, x, "alice", "x/y", nil); got.Comment != "before" {
		t.Fatalf("initial decision %+v", got)
	}
	d.SetACL(t, map[int64]string{10: `{"match": {"account": "alice"}, "actions": ["pull", "push"], "comment": "after"}`})
	clock.Advance(t, DefaultCacheTTL-time.Second)
	if got := decideXorm(t, x, "alice", "x/y", nil); got.Comment != "before" {
		t.Fatalf("before cache_ttl the change is already in force: %+v", got)
	}
	clock.Advance(t, time.Second)
	for deadline := time.Now().Add(10 * time.Second); decideXorm(t, x, "alice", "x/y", nil).Comment != "after"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change never took effect after cache_ttl")
		}
	}
}

// TestXormInvalidRowKeepsACL adds one bad row at a time to a good table:
// each load is rejected naming the row, logged, counted, and the previous
// ACL keeps deciding.
func TestXormInvalidRowKeepsACL(t *testing.T) {
	d := sqltest.SQLite(t)
	d.CreateDockerAuthTables(t)
	good := `{"match": {"account": "alice"}, "actions": ["pull"], "comment": "good"}`
	d.SetACL(t, map[int64]string{10: good})
	var log testutil.SyncBuffer
	x := newTestXormACL(t, d, WithXormLogger(slog.New(slog.NewTextHandler(&log, nil))))
	for i, tc := range []struct {
		name, entry string
		seq         int64
		want        []string
	}{
		{"not json", `{"match": `, 20, []string{"seq 20", "JSON object"}},
		{"misspelt match key", `{"match": {"acount": "bob"}, "actions": ["*"]}`, 20, []string{"seq 20", `"match.acount"`}},
		{"null match value", `{"match": {"account": null}, "actions": ["*"]}`, 20, []string{"seq 20", "match.account is null"}},
		{"null match", `{"match": null, "actions": ["*"]}`, 20, []string{"seq 20", "match is null"}},
		{"unknown key", `{"match": {}, "actions": [], "priority": 1}`, 20, []string{"seq 20", `"priority"`}},
		{"missing actions", `{"match": {}}`, 20, []string{"seq 20", "actions"}},
		{"actions of the wrong type", `{"match": {}, "actions": "pull"}`, 20, []string{"seq 20", "actions"}},
		{"invalid regex", `{"match": {"name": "/(/"}, "actions": ["pull"]}`, 20, []string{"seq 20", "match.name"}},
		{"duplicate seq", `{"match": {"account": "bob"}, "actions": ["pull"]}`, 10, []string{"seq 10", "unique"}},
		{"key twice in two cases", `{"match": {}, "Match": {"account": "x"}, "actions": []}`, 20, []string{"seq 20", "twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.Exec(t, "INSERT INTO xorm_acl_entry (acl_entry, seq) VALUES (?, ?)", tc.entry, tc.seq)
			t.Cleanup(func() {
				d.SetACL(t, map[int64]string{10: good})
				if err := x.Refresh(context.Background()); err != nil {
					t.Fatalf("the good table no longer loads: %v", err)
				}
			})
			err := x.Refresh(context.Background())
			if err == nil {
				t.Fatal("Refresh accepted the invalid row")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			x.reload(context.Background()) // the loop's path: logs
			if !strings.Contains(log.String(), "stays in force") {
				t.Errorf("no log line for the rejected reload: %s", log.String())
			}
			if got := x.LoadFailures(); got != uint64(2*(i+1)) {
				t.Errorf("LoadFailures = %d, want %d", got, 2*(i+1))
			}
			if got := decideXorm(t, x, "alice", "x/y", nil); got.Comment != "good" || !slices.Equal(got.Actions, []string{"pull"}) {
				t.Errorf("previous ACL not in force: %+v", got)
			}
		})
	}
}

// TestXormServerDown: with the database stopped the loaded ACL stays in
// force; an authorizer that never loaded answers ErrNotLoaded (503) until
// the database is back.
func TestXormServerDown(t *testing.T) {
	d := sqltest.Postgres(t).NewTestDB(t)
	d.CreateDockerAuthTables(t)
	d.SetACL(t, map[int64]string{10: `{"match": {"account": "alice"}, "actions": ["pull"], "comment": "good"}`})
	x := newTestXormACL(t, d)
	d.Server.Stop()
	restarted := false
	defer func() {
		if !restarted {
			d.Server.Start(t)
		}
	}()
	if err := x.Refresh(context.Background()); err == nil {
		t.Error("Refresh succeeded with the database down")
	}
	if got := decideXorm(t, x, "alice", "x/y", nil); got.Comment != "good" {
		t.Errorf("loaded ACL not in force while the database is down: %+v", got)
	}
	fresh := newTestXormACL(t, d)
	if _, err := fresh.Decide(&Request{Account: "alice"}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("never loaded: %v, want ErrNotLoaded", err)
	}
	d.Server.Start(t)
	restarted = true
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = fresh.Refresh(context.Background()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no load after the database came back: %v", err)
	}
	if got := decideXorm(t, fresh, "alice", "x/y", nil); got.Comment != "good" {
		t.Errorf("after recovery: %+v", got)
	}
}
