package authn_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gatehouse/gatehouse/internal/faultproxy"
	"github.com/gatehouse/gatehouse/internal/leakcheck"
	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// mongoFaultTimeout is dial_info.timeout in mongoServerConfig: it bounds
// each lookup and each acl_mongo load.
const mongoFaultTimeout = time.Second

// TestMongoBackendFaults puts mongo_auth and acl_mongo, through the HTTP
// handler, in front of a FerretDB that is stopped, slowed past the timeout,
// stalled, answering garbage and dropping connections, and reloads the
// configuration during an outage. A login that needs the database must
// fail closed (503 errcode within the timeout plus slack, never a 401 nor a
// token); the static user's tokens keep coming from the last good acl_mongo
// ACL; when the database is reachable again the same server recovers and
// its next refresh picks up changes made meanwhile; when the server is
// closed no connection or goroutine is left.
func TestMongoBackendFaults(t *testing.T) {
	srv := mongotest.Start(t)
	_, rules := seedMongo(t, srv) // the seeding client talks to FerretDB directly
	proxy := faultproxy.Start(t, srv.Addr())
	snap := leakcheck.Take()
	dir := t.TempDir()
	yml := replaceOnce(t, mongoServerConfig(t, proxy.Addr(), dir), "users:\n", "cache: {ttl: 0}\n"+faultKnobs+"users:\n")
	cfg1 := parseIn(t, dir, yml)
	// cfg2 lets svc push to static/*, so the answers tell which
	// configuration is in force.
	cfg2 := parseIn(t, dir, replaceOnce(t, yml, "name: static/*}\n    actions: [pull]", "name: static/*}\n    actions: [pull, push]"))
	e := newFaultEnv(t, cfg1, mongoFaultTimeout)

	alice, alicePW := "alice", "alice-pw"
	aliceScopes := []string{"repository:blue/app:pull,push", "repository:alice/app:pull,push"}
	aliceGrants := map[string][]string{"blue/app": {"pull"}, "alice/app": {"pull", "push"}}
	// svc is a static user: no lookup in MongoDB, but svc/* and shared/*
	// are decided by acl_mongo.
	svc, svcPW := "svc", "svc-pw"
	svcScopes := []string{"repository:static/app:pull,push", "repository:svc/app:pull", "repository:shared/app:pull"}
	svcGrants := map[string][]string{"static/app": {"pull"}, "svc/app": {"pull"}}
	svcShared := map[string][]string{"static/app": {"pull"}, "svc/app": {"pull"}, "shared/app": {"pull"}}
	svcShared2 := map[string][]string{"static/app": {"pull", "push"}, "svc/app": {"pull"}, "shared/app": {"pull"}}
	burstBound := faultCheckWait + e.bound
	ok := true // the steps build on each other: stop at the first failure

	// waitLog waits for the acl_mongo loop to log a failed reload after
	// mark: the outage has reached the refresh too.
	waitLog := func(t *testing.T, mark int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(e.log.String()[mark:], "acl_mongo: reload failed; the ACL loaded before stays in force") {
			if time.Now().After(deadline) {
				t.Fatalf("no failed acl_mongo reload logged during the outage:\n%s", e.log.String()[mark:])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	ok = ok && t.Run("stopped", func(t *testing.T) {
		e.grants(t, "healthy", alice, alicePW, aliceGrants, aliceScopes...)
		e.grants(t, "healthy", svc, svcPW, svcGrants, svcScopes...)
		mark := len(e.log.String())
		srv.Stop()
		e.failClosed(t, "FerretDB stopped", alice, alicePW, aliceScopes...)
		waitLog(t, mark)
		e.grants(t, "FerretDB stopped, last good ACL", svc, svcPW, svcGrants, svcScopes...)
		srv.Restart()
		e.recovers(t, "FerretDB restarted", 10*time.Second, alice, alicePW, aliceGrants, aliceScopes...)
	})

	ok = ok && t.Run("slowed past the timeout", func(t *testing.T) {
		mark := len(e.log.String())
		proxy.Delay(3 * time.Second)
		e.failClosed(t, "every byte delayed 3s", alice, alicePW, aliceScopes...)
		e.burst(t, "every byte delayed 3s, logins", 12, burstBound, e.login(alice, alicePW, aliceScopes...))
		waitLog(t, mark)
		// A rule added while Gatehouse cannot read it: not in force yet.
		// The seeding client's pooled connections died with the restart
		// above: retry until it has reconnected.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		doc := bson.D{{Key: "seq", Value: 5},
			{Key: "match", Value: bson.D{{Key: "account", Value: "svc"}, {Key: "name", Value: "shared/*"}}},
			{Key: "actions", Value: bson.A{"pull"}}, {Key: "comment", Value: "added during the outage"}}
		for _, err := rules.InsertOne(ctx, doc); err != nil; _, err = rules.InsertOne(ctx, doc) {
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.grants(t, "delayed, last good ACL", svc, svcPW, svcGrants, svcScopes...)
		proxy.Pass()
		e.recovers(t, "delay lifted", 10*time.Second, alice, alicePW, aliceGrants, aliceScopes...)
		e.recovers(t, "delay lifted, the refresh sees the new rule", 5*time.Second, svc, svcPW, svcShared, svcScopes...)
	})

	ok = ok && t.Run("stalled, reload", func(t *testing.T) {
		mark := len(e.log.String())
		proxy.Stall()
		e.failClosed(t, "stalled", alice, alicePW, aliceScopes...)
		start := time.Now()
		if code, body := ready(t, e.s); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz while stalled: %d %s, want 503", code, body)
		}
		e.record("stalled: /readyz 503", time.Since(start))
		waitLog(t, mark)
		e.grants(t, "stalled, last good ACL", svc, svcPW, svcShared, svcScopes...)
		// Building cfg2 makes new clients; acl_mongo's first load waits
		// at most the timeout, and fails.
		if d := e.reload(t, "reload while stalled", cfg2); d > e.bound {
			t.Errorf("Reload took %s while the database is stalled, want at most %s", d, e.bound)
		}
		e.failClosed(t, "stalled, after the reload", alice, alicePW, aliceScopes...)
		e.grants(t, "stalled, after the reload, last good ACL", svc, svcPW, svcShared2, svcScopes...)
		proxy.Pass()
		e.recovers(t, "stall lifted, reloaded server", 10*time.Second, alice, alicePW, aliceGrants, aliceScopes...)
		e.grants(t, "stall lifted, reloaded server", svc, svcPW, svcShared2, svcScopes...)
	})

	ok = ok && t.Run("garbage", func(t *testing.T) {
		for _, g := range []struct {
			name   string
			answer func([]byte) []byte
		}{
			{"random bytes", faultproxy.Random(27017)},
			{"an SSH greeting", faultproxy.Fixed([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))},
			// A well-formed OP_MSG header whose body is cut short.
			{"a truncated OP_MSG", faultproxy.Fixed([]byte{0x40, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xdd, 0x07, 0, 0, 0, 0, 0, 0, 0})},
			// An LDAP bind response.
			{"an LDAP answer", faultproxy.Fixed([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00})},
		} {
			mark := len(e.log.String())
			proxy.Garbage(g.answer)
			e.failClosed(t, "garbage: "+g.name, alice, alicePW, aliceScopes...)
			waitLog(t, mark)
			e.grants(t, "garbage: "+g.name+", last good ACL", svc, svcPW, svcShared2, svcScopes...)
			proxy.Pass()
			e.recovers(t, "garbage: "+g.name+" ended", 10*time.Second, alice, alicePW, aliceGrants, aliceScopes...)
		}
	})

	ok = ok && t.Run("connections dropped", func(t *testing.T) {
		proxy.Drop()
		e.failClosed(t, "connections dropped", alice, alicePW, aliceScopes...)
		e.grants(t, "connections dropped, last good ACL", svc, svcPW, svcShared2, svcScopes...)
		proxy.Pass()
		e.recovers(t, "drops ended", 10*time.Second, alice, alicePW, aliceGrants, aliceScopes...)
	})

	// Closing the server closes the clients of every configuration it
	// built, the one replaced by the reload included.
	if ok {
		e.closeClean(t, proxy, snap)
	}
}
